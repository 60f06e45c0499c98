"""The arena's domain: blind pairwise battles between texts written for the same request.

Owns:
- ``pairing``: which battle an annotator sees next, and which side each text takes;
- ``pool``: forming battles from pooled texts (and keeping texts that name a model out);
- ``fill``: pre-generating texts for a prompt set with several models, then forming battles;
- ``live``: a battle written on demand by two models for a request an annotator types;
- ``rules``: the arena's settings and vote rules (who may vote on what, once per battle,
  criteria, the reason cap, the too-fast flag);
- ``reading``: how far an annotator read before voting (the page's report, clamped) and the
  words the too-fast flag counts;
- ``service``: what the Arena tab, the CLI and the tests call: next battle, vote, skip, reveal;
- ``seed``: hand-made demo pools for screenshots, tests and benchmarks.

Must not touch: Gradio (the Arena *tab* in ``webapp/`` is a thin adapter over ``service``), the
command line (``lwz_cli/battles.py`` is the top floor over ``fill`` and ``pool``), or SQL
beyond the queries ``storage/`` offers. Model names never leave this package before a vote is
stored, except to researchers through ``storage.arena.list_battles``.
"""
