"""The battle pool: which texts may meet, forming battles, and marking texts that name a model.

Battles are formed from generations in the pool (``in_pool``: sent from the Write tab or made
by ``lwz battles fill``), only between different models on the same prompt, and only from
complete answers (see :func:`storage.arena.pool_entries`). Sides are drawn with a seeded
``random.Random`` and stored on the battle, with the seed. A battle whose texts name a model
or vendor gets ``extra["names_model"] = True`` and is left out of anonymous ratings.
"""

from __future__ import annotations

import random
import re
from pathlib import Path
from typing import Iterable, Sequence

from sqlmodel import Session

from core.errors import UserError

DEFAULT_NAME_WORDS: tuple[str, ...] = (
    "ChatGPT", "GPT-3", "GPT-3.5", "GPT-4", "GPT-4o", "GPT", "OpenAI", "Claude", "Anthropic", "Gemini",
    "DeepMind", "LLaMA", "Llama 2", "Llama 3", "Meta AI", "Mistral", "Mixtral", "Qwen", "Tongyi",
    "Alibaba Cloud", "DeepSeek", "SmolLM", "SmolLM2", "Hugging Face", "HuggingFace", "ChatGLM", "GLM-4",
    "Zhipu", "LongWriter", "THU-KEG", "Baichuan", "01.AI", "Wenxin", "Phi-3", "Gemma",
)
"""Default words that name a model or vendor; matched case-insensitively on word boundaries."""


def load_name_words(path: str | Path | None) -> tuple[str, ...]:
    """The word list from a file (one entry a line, ``#`` comments), or the default list for None."""
    if path is None:
        return DEFAULT_NAME_WORDS
    file = Path(path)
    if not file.is_file():
        raise UserError(f"no such word list: {file} (one model or vendor name a line)")
    words = tuple(
        line.strip() for line in file.read_text(encoding="utf-8").splitlines()
        if line.strip() and not line.strip().startswith("#")
    )
    if not words:
        raise UserError(f"the word list {file} is empty")
    return words


def name_pattern(words: Iterable[str]) -> re.Pattern[str]:
    """One case-insensitive regex matching any of ``words`` as whole words (longest first)."""
    parts = sorted({w.strip() for w in words if w.strip()}, key=len, reverse=True)
    if not parts:
        return re.compile(r"(?!x)x")
    alternatives = "|".join(re.escape(p) for p in parts)
    return re.compile(rf"(?<![\w-])(?:{alternatives})(?![\w-])", re.IGNORECASE)


def names_found(texts: Sequence[str], *, words: Iterable[str]) -> list[str]:
    """The distinct model or vendor names that occur in any of ``texts`` (as written, lower-cased)."""
    pattern = name_pattern(words)
    found: list[str] = []
    for text in texts:
        for match in pattern.finditer(text or ""):
            name = match.group(0).lower()
            if name not in found:
                found.append(name)
    return found


def form_battles(
    session: Session,
    *,
    seed: int,
    name_words: Iterable[str] = DEFAULT_NAME_WORDS,
    max_per_prompt: int | None = None,
    mode: str = "pool",
) -> list[int]:
    """Create every missing battle between pool generations; returns the new battle ids.

    Idempotent: a pair that already has a battle is not formed again. The side order comes
    from ``random.Random(seed)`` and the seed is stored in ``battle.extra``. The registered
    model names are always part of the word list, so a text naming its own model is caught.
    """
    from storage.arena import battle_pairs, create_battle_with_extra, pool_entries
    from storage.catalog import list_models
    from storage.models import Generation
    from arena.pairing import PoolEntry, plan_battles

    entries = [PoolEntry(g, p, m) for g, p, m in pool_entries(session)]
    rng = random.Random(seed)
    planned = plan_battles(entries, existing_pairs=battle_pairs(session), rng=rng, max_per_prompt=max_per_prompt)
    words = list(name_words) + [m.name for m in list_models(session)]
    pattern_words = tuple(words)
    created = []
    for plan in planned:
        texts = []
        for gid in (plan.left_generation_id, plan.right_generation_id):
            gen = session.get(Generation, gid)
            texts += [gen.think, gen.answer]
        names = names_found(texts, words=pattern_words)
        extra = {"seed": seed, "names_model": bool(names)}
        if names:
            extra["names_found"] = names
        battle = create_battle_with_extra(
            session, prompt_id=plan.prompt_id, left_generation_id=plan.left_generation_id,
            right_generation_id=plan.right_generation_id, mode=mode, extra=extra,
        )
        created.append(battle.id)
    return created
