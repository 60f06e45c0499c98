"""Votes -> preference datasets: one row per battle with a decisive majority verdict.

The aggregation runs in the database (one GROUP BY battle with a count per choice, joined to the
battle's sides) and in vectorised numpy (majority, agreement, margin, filters), so no vote row
reaches Python. Each generation's text is read and built once and spread to the rows by position
(an Arrow take); the parquet file keeps one copy of each distinct text in its dictionary.

Which votes count and what a battle's verdict is are decided by :mod:`storage.counted_votes`,
for the leaderboard and the judge cross-check as well as here: flagged votes, flagged or banned
annotators and battles whose text names a model are left out (each but the ban can be relaxed).
A ``left``/``right`` verdict gives a chosen/rejected pair; a ``both_bad`` verdict gives none, and
in the KTO format both texts become "undesirable" rows (the absolute-quality signal); a ``tie``
never yields a pair.

Agreement is the share of counted votes for the verdict; margin is
``(votes for chosen - votes for rejected) / votes``.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any

from core.errors import UserError
from generation.parser import ANSWER_CLOSE, ANSWER_OPEN, THINK_CLOSE, THINK_OPEN
from storage.counted_votes import CountedVotes

FORMATS = ("dpo", "reward", "kto")
LAYOUTS = ("trl", "openrlhf", "verl")
TEXT_MODES = ("full", "answer")


@dataclass(frozen=True)
class PreferenceFilters:
    """Which votes count and which battles are kept. Every field is recorded with a training run."""

    min_agreement: float = 0.0
    min_votes: int = 1
    include_flagged_votes: bool = False
    include_flagged_annotators: bool = False
    include_named: bool = False
    since: datetime | None = None
    until: datetime | None = None
    text: str = "full"

    def __post_init__(self) -> None:
        if not 0.0 <= self.min_agreement <= 1.0:
            raise UserError(f"--min-agreement must be between 0 and 1, got {self.min_agreement}")
        if self.min_votes < 1:
            raise UserError(f"--min-votes must be at least 1, got {self.min_votes}")
        if self.text not in TEXT_MODES:
            raise UserError(f"--text must be one of {', '.join(TEXT_MODES)}, got {self.text!r}")
        for name in ("since", "until"):
            value = getattr(self, name)
            if value is not None and value.tzinfo is None:
                raise UserError(f"--{name} needs a timezone (for example 2026-01-01T00:00:00+00:00)")
        if self.since and self.until and self.since >= self.until:
            raise UserError(f"--since ({self.since.isoformat()}) must be before --until ({self.until.isoformat()})")

    def counted(self) -> CountedVotes:
        """The votes that count for this export (:class:`storage.counted_votes.CountedVotes`)."""
        return CountedVotes(include_flagged_votes=self.include_flagged_votes,
                            include_flagged_annotators=self.include_flagged_annotators,
                            include_named=self.include_named, since=self.since, until=self.until)

    def describe(self) -> str:
        """The active filters in words, for messages such as 'no battle left after ...'."""
        parts = self.counted().left_out()
        if self.min_votes > 1:
            parts.append(f"min votes {self.min_votes}")
        if self.min_agreement > 0:
            parts.append(f"min agreement {self.min_agreement}")
        parts.append("ties never paired")
        parts.append("both-bad battles only as KTO undesirable rows")
        return ", ".join(parts)

    def as_record(self) -> dict[str, Any]:
        record = asdict(self)
        for name in ("since", "until"):
            record[name] = record[name].isoformat() if record[name] else None
        return record


def preference_pairs(session, *, filters: PreferenceFilters, both_bad: bool = False):
    """Decisive battles as (prompt, chosen, rejected) rows, plus the counts of what was left out.

    With ``both_bad`` the battles whose verdict is both-bad are kept too (``verdict`` column
    ``both_bad``, left text as ``chosen``, margin 0): only the KTO format uses them, as two
    undesirable rows.

    Returns ``(frame, report)``. ``frame`` columns: battle_id, prompt, chosen, rejected, margin,
    agreement, annotators, chosen_model, rejected_model, category, target_words, language,
    sorted by battle_id. ``report`` counts battles at each filter step. Raises UserError naming
    the filters when nothing is left.

    Each generation's text is read and built once; the text columns are Arrow ``take``s of those
    few thousand strings by position, so no per-row Python string is made.
    """
    import numpy as np
    import pandas as pd
    import sqlalchemy as sa

    from storage.counted_votes import battle_tallies
    from storage.engine import driver_rows
    from storage.models import Battle, Generation, ModelEntry, Prompt

    verdicts = battle_tallies(session, counted=filters.counted())
    report: dict[str, int] = {"battles_with_valid_votes": int(len(verdicts))}
    keep = verdicts["annotators"].to_numpy() >= filters.min_votes
    report["dropped_min_votes"] = int((~keep).sum())
    verdict = verdicts["verdict"].to_numpy()
    bad = verdict == "both_bad"
    if both_bad:
        report["both_bad"] = int((keep & bad).sum())
    else:
        report["dropped_both_bad"] = int((keep & bad).sum())
        keep &= ~bad
    tie = verdict == "tie"
    report["dropped_ties"] = int((keep & tie).sum())
    keep &= ~tie
    low = verdicts["agreement"].to_numpy() < filters.min_agreement
    report["dropped_min_agreement"] = int((keep & low).sum())
    keep &= ~low
    missing_side = (verdicts["left_id"].to_numpy() < 0) | (verdicts["right_id"].to_numpy() < 0)
    report["dropped_deleted_generation"] = int((keep & missing_side).sum())
    kept = verdicts[keep & ~missing_side]
    if kept.empty:
        raise UserError(f"no preference pair left after the filters ({filters.describe()}); counts: {_counts(report)}")

    referenced = sa.union(sa.select(Battle.left_generation_id.label("gid")), sa.select(Battle.right_generation_id))
    gens = pd.DataFrame(driver_rows(session, sa.select(Generation.id, Generation.think, Generation.answer,
                                                        ModelEntry.name)
                                     .join(ModelEntry, ModelEntry.id == Generation.model_id)
                                     .where(Generation.id.in_(sa.select(referenced.subquery().c.gid)))),
                        columns=["gid", "think", "answer", "model"])
    gens["text"] = completion_texts(gens["think"], gens["answer"], mode=filters.text)
    gens = gens.set_index("gid")
    prompts = pd.DataFrame(driver_rows(session, sa.select(Prompt.id, Prompt.text, Prompt.category,
                                                           Prompt.target_words, Prompt.language)),
                           columns=["prompt_id", "prompt", "category", "target_words", "language"])
    prompts = prompts.set_index("prompt_id")

    verdict = kept["verdict"].to_numpy()
    right_wins = verdict == "right"
    left_ids, right_ids = kept["left_id"].to_numpy(), kept["right_id"].to_numpy()
    chosen_ids = np.where(right_wins, right_ids, left_ids)
    rejected_ids = np.where(right_wins, left_ids, right_ids)
    n_chosen = np.where(right_wins, kept["right"], kept["left"])
    n_rejected = np.where(right_wins, kept["left"], kept["right"])
    annotators = kept["annotators"].to_numpy()
    chosen_at, rejected_at = gens.index.get_indexer(chosen_ids), gens.index.get_indexer(rejected_ids)
    prompt_at = prompts.index.get_indexer(kept["prompt_id"].to_numpy())
    frame = pd.DataFrame({
        "battle_id": kept["battle_id"].to_numpy(),
        "prompt": _spread(prompts["prompt"], prompt_at),
        "chosen": _spread(gens["text"], chosen_at),
        "rejected": _spread(gens["text"], rejected_at),
        "margin": np.where(verdict == "both_bad", 0.0, (n_chosen - n_rejected) / annotators),
        "agreement": kept["agreement"].to_numpy(),
        "annotators": annotators,
        "chosen_model": _spread(gens["model"], chosen_at),
        "rejected_model": _spread(gens["model"], rejected_at),
        "category": prompts["category"].take(prompt_at).to_numpy(),
        "target_words": prompts["target_words"].astype("Int64").take(prompt_at).to_numpy(),
        "language": prompts["language"].take(prompt_at).to_numpy(),
        "chosen_generation_id": chosen_ids,
        "rejected_generation_id": rejected_ids,
        "verdict": verdict,
    })
    report["pairs"] = int(len(frame))
    frame.attrs["fingerprint"] = _pairs_fingerprint(frame, gens["text"])
    return frame, report


def _spread(values, positions):
    """``values`` (one string per generation or prompt) at ``positions``, as an array of the same dtype.

    For Arrow-backed strings: one Arrow ``take`` into a buffer from the system allocator. The text columns
    of a large export are hundreds of MB, and Arrow's default pool (mimalloc) maps them as huge pages, which
    a machine short of free memory was seen to take seconds of kernel time to hand over.
    """
    import pandas as pd
    import pyarrow as pa
    import pyarrow.compute as pc

    if not isinstance(values.array, pd.arrays.ArrowStringArray):
        return values.array.take(positions)
    taken = pc.take(pa.array(values.array), positions, memory_pool=pa.system_memory_pool())
    return pd.array(taken, dtype=values.dtype)


def _pairs_fingerprint(frame, texts) -> str:
    """SHA-256 over every row's ids, counts and margin, and each distinct generation text once.

    Equal to hashing the rows' full content (the texts are determined by the generation ids), but
    a million-vote export hashes a few thousand texts instead of hundreds of thousands of copies.
    """
    import hashlib

    import pandas as pd

    used = pd.unique(frame[["chosen_generation_id", "rejected_generation_id"]].to_numpy().ravel())
    digest = hashlib.sha256()
    numeric = frame[["battle_id", "chosen_generation_id", "rejected_generation_id", "annotators", "margin", "agreement"]]
    digest.update(pd.util.hash_pandas_object(numeric, index=False).to_numpy().tobytes())
    digest.update(pd.util.hash_pandas_object(frame["prompt"], index=False).to_numpy().tobytes())
    chosen_texts = texts.loc[sorted(int(g) for g in used)]
    digest.update(pd.util.hash_pandas_object(chosen_texts, index=True).to_numpy().tobytes())
    return digest.hexdigest()


def completion_texts(think, answer, *, mode: str):
    """What the model wrote, as one string per row (vectorised over pandas Series).

    ``full`` keeps the plan: ``<think>PLAN</think>\\n<answer>TEXT</answer>`` when a plan exists,
    else the answer alone (models prompted without the think template). ``answer``: the answer.
    """
    import numpy as np

    if mode == "answer":
        return answer.fillna("")
    think, answer = think.fillna(""), answer.fillna("")
    wrapped = THINK_OPEN + think + THINK_CLOSE + "\n" + ANSWER_OPEN + answer + ANSWER_CLOSE
    return np.where(think.str.len() > 0, wrapped, answer)


def _counts(report: dict[str, int]) -> str:
    return ", ".join(f"{k}={v}" for k, v in report.items())


def shape_rows(frame, *, fmt: str, layout: str):
    """The pairs in the requested format and column layout (see FORMATS and LAYOUTS).

    - ``dpo``/``reward``: prompt, chosen, rejected (+ margin, agreement, battle_id, annotators, ...).
    - ``kto``: prompt, completion, label (True for chosen), two rows per battle; a both-bad battle
      (``verdict`` column) gives two rows labelled False.
    - layout ``trl``: plain strings, which TRL tokenises *raw* (no chat template); ``lwz train``
      renders them as conversations with the base model's template.
    - layout ``openrlhf``: chosen/rejected as whole conversations (user + assistant messages), prompt
      as a message list: ``--apply_chat_template --chosen_key chosen --rejected_key rejected``.
    - layout ``verl``: prompt as a message list, chosen/rejected as response strings (verl's
      preference datasets read ``prompt``/``chosen``/``rejected`` with a chat prompt).
    """
    import pandas as pd

    if fmt not in FORMATS:
        raise UserError(f"--format must be one of {', '.join(FORMATS)}, got {fmt!r}")
    if layout not in LAYOUTS:
        raise UserError(f"--layout must be one of {', '.join(LAYOUTS)}, got {layout!r}")
    if fmt == "kto" and layout == "openrlhf":
        raise UserError("--format kto has no openrlhf layout: use --layout trl or verl")
    extra = ["margin", "agreement", "battle_id", "annotators", "chosen_model", "rejected_model",
             "category", "target_words", "language", "chosen_generation_id", "rejected_generation_id"]
    all_bad = (frame["verdict"] == "both_bad").to_numpy() if "verdict" in frame.columns else None
    if all_bad is not None and all_bad.any() and fmt != "kto":
        frame = frame[~all_bad]
    out = frame[["prompt", "chosen", "rejected", *extra]].copy()
    if fmt == "kto":
        base = out.drop(columns=["chosen", "rejected"])
        first_label = ~all_bad if all_bad is not None else True
        good = base.assign(completion=out["chosen"].to_numpy(), label=first_label, model=out["chosen_model"].to_numpy(),
                           generation_id=out["chosen_generation_id"].to_numpy())
        bad = base.assign(completion=out["rejected"].to_numpy(), label=False, model=out["rejected_model"].to_numpy(),
                          generation_id=out["rejected_generation_id"].to_numpy())
        out = pd.concat([good, bad]).sort_values(["battle_id", "label"], ascending=[True, False], kind="stable")
        out = out[["prompt", "completion", "label", "margin", "agreement", "battle_id", "annotators", "model",
                   "category", "target_words", "language", "generation_id"]].reset_index(drop=True)
    if layout in ("openrlhf", "verl"):
        user = [[{"role": "user", "content": p}] for p in out["prompt"]]
        if layout == "openrlhf":
            for column in ("chosen", "rejected"):
                out[column] = [u + [{"role": "assistant", "content": c}] for u, c in zip(user, out[column])]
        out["prompt"] = user
    return out


# A parquet column chunk keeps its dictionary (each distinct value stored once) up to this size, then falls back
# to plain values. Pyarrow's 1 MiB default gives up after a few hundred long texts; an export repeats a few
# thousand generation texts across hundreds of thousands of rows, so a larger dictionary is ~20x smaller on disk.
_PARQUET_DICTIONARY_BYTES = 128 << 20


def write_table(frame, path) -> str:
    """Write ``frame`` to ``path`` (.parquet, or .jsonl/.json for JSON lines) atomically. Returns the format."""
    from pathlib import Path

    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in (".parquet", ".jsonl", ".json"):
        raise UserError(f"--out must end in .parquet or .jsonl, got {path.name!r}")
    if not path.parent.exists():
        raise UserError(f"folder {path.parent} does not exist")
    staging = path.with_name(path.name + ".partial")
    try:
        if suffix == ".parquet":
            frame.to_parquet(staging, index=False, dictionary_pagesize_limit=_PARQUET_DICTIONARY_BYTES)
        else:
            frame.to_json(staging, orient="records", lines=True, force_ascii=False)
        staging.replace(path)
    finally:
        staging.unlink(missing_ok=True)
    return "parquet" if suffix == ".parquet" else "jsonl"


def export_preferences(session, *, out, fmt: str = "dpo", layout: str = "trl",
                       filters: PreferenceFilters | None = None) -> dict[str, Any]:
    """Aggregate the votes and write the dataset. Returns a report: counts, rows, fingerprint, path.

    The fingerprint is the file's SHA-256, the same one ``lwz train --data FILE`` records.
    """
    filters = filters or PreferenceFilters()
    shape_rows_check(fmt=fmt, layout=layout)
    frame, report = preference_pairs(session, filters=filters, both_bad=fmt == "kto")
    rows = shape_rows(frame, fmt=fmt, layout=layout)
    kind = write_table(rows, out)
    return {"path": str(out), "file_format": kind, "format": fmt, "layout": layout, "rows": int(len(rows)),
            "fingerprint": file_sha256(out), "filters": filters.as_record(), **report}


def shape_rows_check(*, fmt: str, layout: str) -> None:
    """Reject a format/layout combination before any query runs."""
    import pandas as pd

    shape_rows(pd.DataFrame(columns=["prompt", "chosen", "rejected", "margin", "agreement", "battle_id",
                                     "annotators", "chosen_model", "rejected_model", "category",
                                     "target_words", "language", "chosen_generation_id",
                                     "rejected_generation_id", "verdict"]), fmt=fmt, layout=layout)


def file_sha256(path) -> str:
    """SHA-256 of a file's bytes, read in 1 MiB blocks."""
    import hashlib

    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def frame_fingerprint(frame) -> str:
    """A SHA-256 of the rows' content (column names and values), stable across file formats."""
    import hashlib

    import pandas as pd

    digest = hashlib.sha256(",".join(map(str, frame.columns)).encode())
    hashed = pd.util.hash_pandas_object(frame.astype(str), index=False).to_numpy()
    digest.update(hashed.tobytes())
    return digest.hexdigest()
