"""Does each section of a planned text stay on its own main point?

The ``plan`` template writes every section from one point of its outline (the row keeps them in
``params["sections"]``, with where each section sits in the answer). A section on its point is
closer to that point than to the plan's other points. :func:`on_point` measures it with sentence
embeddings: per section, the cosine similarity to its own point against the mean similarity to
every other point of the plan. That mean is the exact expectation of a shuffled pairing (the
section with another section's point), so no sample is drawn and no seed is needed.

The embedder is the project's offline all-MiniLM-L6-v2 (``evaluation.metrics.default_embedder``).
It reads at most 256 word pieces, so a section is embedded in chunks of CHUNK_WORDS words and the
chunk vectors averaged: the whole section counts, not only its opening.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Callable, Optional, Sequence

from generation.counting import has_cjk

CHUNK_WORDS = 150
"""A section is embedded in pieces of this many words (within the model's 256 word pieces)."""


@dataclass(frozen=True)
class SectionFigure:
    """One section against its point. ``own``: cosine similarity to its own point (None when the
    point or the section is empty); ``others``: mean similarity to the other points of the plan
    (None when there is none); ``margin``: own - others; ``rank``: the share of the other points
    less similar to it than its own (1.0: its own point is the closest)."""

    index: int
    point: str
    own: Optional[float]
    others: Optional[float]
    margin: Optional[float]
    rank: Optional[float]


@dataclass(frozen=True)
class OnPoint:
    """Figures over a text's sections. ``with_point``: the share of sections with a non-empty
    point; ``own``/``others``/``margin``: means over the sections measured; ``above_shuffled``:
    the share of them closer to their own point than to the others on average; ``closest``: the
    share whose own point is the closest of all."""

    sections: tuple[SectionFigure, ...]
    with_point: float
    own: Optional[float]
    others: Optional[float]
    margin: Optional[float]
    above_shuffled: Optional[float]
    closest: Optional[float]

    def as_dict(self) -> dict:
        return asdict(self)


def on_point(sections: Sequence[str], points: Sequence[str], *,
             embed: Optional[Callable[[list[str]], object]] = None) -> OnPoint:
    """Each section (text) against its point (``points[i]`` for ``sections[i]``). ``embed`` maps
    a list of strings to row vectors; by default the offline all-MiniLM-L6-v2 model."""
    import numpy as np

    if len(sections) != len(points):
        raise ValueError(f"{len(sections)} sections but {len(points)} points: give one point per section")
    points = [(p or "").strip() for p in points]
    pointed = [i for i, p in enumerate(points) if p]
    chunks = [_chunks(text) for text in sections]
    measured = [i for i in pointed if chunks[i]]
    figures: list[SectionFigure] = []
    if measured:
        if embed is None:
            from evaluation.metrics import default_embedder

            embed = default_embedder()
        flat = [piece for i in measured for piece in chunks[i]]
        vectors = _unit(np.asarray(embed(flat + [points[i] for i in pointed]), dtype=np.float64))
        point_vectors = dict(zip(pointed, vectors[len(flat):]))
        start = 0
        section_vectors = {}
        for i in measured:
            section_vectors[i] = _unit(vectors[start:start + len(chunks[i])].mean(axis=0, keepdims=True))[0]
            start += len(chunks[i])
    for i, point in enumerate(points):
        if i not in measured:
            figures.append(SectionFigure(i, point, None, None, None, None))
            continue
        own = float(section_vectors[i] @ point_vectors[i])
        other = [float(section_vectors[i] @ point_vectors[j]) for j in pointed if j != i]
        others = sum(other) / len(other) if other else None
        figures.append(SectionFigure(i, point, own, others, None if others is None else own - others,
                                     sum(1 for o in other if o < own) / len(other) if other else None))
    compared = [f for f in figures if f.margin is not None]
    return OnPoint(
        sections=tuple(figures),
        with_point=len(pointed) / len(points) if points else 0.0,
        own=_mean([f.own for f in figures if f.own is not None]),
        others=_mean([f.others for f in compared]),
        margin=_mean([f.margin for f in compared]),
        above_shuffled=_mean([1.0 if f.margin > 0 else 0.0 for f in compared]),
        closest=_mean([1.0 if f.rank == 1.0 else 0.0 for f in compared]),
    )


def section_texts(answer: str, sections: Sequence[dict]) -> list[str]:
    """Each recorded section's text (a row's ``params["sections"]``), cut from the answer at its
    recorded ``start``/``end``; "" for a record without them (rows written before they were kept)."""
    return [answer[s["start"]:s["end"]] if "start" in s and "end" in s else "" for s in sections]


def row_on_point(answer: str, params: dict, *, embed: Optional[Callable[[list[str]], object]] = None) -> OnPoint:
    """:func:`on_point` of a stored ``plan``-template text, from its answer and params."""
    sections = list((params or {}).get("sections") or [])
    return on_point(section_texts(answer, sections), [s.get("point", "") for s in sections], embed=embed)


def _chunks(text: str) -> list[str]:
    """The section in pieces of CHUNK_WORDS words (of CHUNK_WORDS characters for CJK text)."""
    if has_cjk(text or ""):
        text = "".join(text.split())
        return [text[i:i + CHUNK_WORDS] for i in range(0, len(text), CHUNK_WORDS)]
    words = (text or "").split()
    return [" ".join(words[i:i + CHUNK_WORDS]) for i in range(0, len(words), CHUNK_WORDS)]


def _unit(vectors):
    import numpy as np

    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return vectors / np.where(norms == 0, 1.0, norms)


def _mean(values: list[float]) -> Optional[float]:
    return sum(values) / len(values) if values else None
