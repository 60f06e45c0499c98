"""Training data: read an exported file (or build it from the database) and shape it for TRL.

Every row that is left out is counted with its reason; the report goes to the run record.
Prompts take the form the model is served in (``training.prompts``): conversations with the base
model's template on the chat path, the template's exact raw text on the completions path.
Continual pretraining streams plain documents instead (``training.corpus``), with no template.

One loader per row shape (:func:`load_pairs`, :func:`load_kto`, :func:`load_prompts`);
``training.kinds`` names which kind reads which.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from core.errors import UserError
from training.prompts import training_completion, training_prompt
from training.ranges import present, range_problem, word_range


def read_table(path: str):
    """A parquet or JSON-lines file as a DataFrame; a broken file is a UserError naming it."""
    import pandas as pd

    file = Path(path)
    suffix = file.suffix.lower()
    try:
        if suffix == ".parquet":
            return pd.read_parquet(file)
        if suffix in (".jsonl", ".json"):
            return pd.read_json(file, lines=True)
    except Exception as exc:  # pyarrow and pandas raise many types; the first line says what broke
        raise UserError(f"cannot read {path}: {str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__}") from None
    raise UserError(f"{path}: expected a .parquet or .jsonl file from lwz export")


def _plain(value: Any, role: str) -> str | None:
    """A cell as text: a string as is; a message list (openrlhf/verl layouts) by its last ``role`` message."""
    if value is None or (isinstance(value, float) and value != value):
        return None
    if isinstance(value, str):
        return value
    messages = [m for m in list(value) if isinstance(m, dict) and m.get("role") == role]
    return str(messages[-1].get("content") or "") if messages else None


def preference_dataset(frame, *, template: str, api: str = "chat"):
    """Rows with prompt/chosen/rejected -> (TRL conversational rows, report of what was dropped)."""
    missing = [c for c in ("prompt", "chosen", "rejected") if c not in frame.columns]
    if missing:
        hint = " (a prompt set is for grpo)" if "min_words" in frame.columns or "reward_model" in frame.columns else ""
        raise UserError(f"the dataset has no {', '.join(missing)} column{hint}: export it with lwz export preferences")
    report = {"rows": int(len(frame)), "dropped_empty": 0, "dropped_identical": 0}
    rows = []
    margins = "margin" in frame.columns
    for record in frame.to_dict("records"):
        prompt, chosen, rejected = (_plain(record["prompt"], "user"), _plain(record["chosen"], "assistant"),
                                    _plain(record["rejected"], "assistant"))
        if not prompt or not chosen or not rejected or not chosen.strip() or not rejected.strip():
            report["dropped_empty"] += 1
            continue
        if chosen == rejected:
            report["dropped_identical"] += 1
            continue
        row = {"prompt": training_prompt(prompt, template=template, api=api),
               "chosen": training_completion(chosen, api=api), "rejected": training_completion(rejected, api=api)}
        if margins:
            row["margin"] = float(record["margin"] or 0.0)
        rows.append(row)
    report["kept"] = len(rows)
    return rows, report


def kto_dataset(frame, *, template: str, api: str = "chat"):
    """Rows with prompt/completion/label (``lwz export preferences --format kto``) -> (TRL rows, report)."""
    missing = [c for c in ("prompt", "completion", "label") if c not in frame.columns]
    if missing:
        raise UserError(f"kto needs prompt, completion and label columns (no {', '.join(missing)}): "
                        "export it with lwz export preferences --format kto")
    report = {"rows": int(len(frame)), "dropped_empty": 0}
    rows = []
    for record in frame.to_dict("records"):
        prompt, completion = _plain(record["prompt"], "user"), _plain(record["completion"], "assistant")
        if not prompt or not completion or not completion.strip():
            report["dropped_empty"] += 1
            continue
        rows.append({"prompt": training_prompt(prompt, template=template, api=api),
                     "completion": training_completion(completion, api=api), "label": bool(record["label"])})
    report["kept"] = len(rows)
    report["undesirable"] = sum(not row["label"] for row in rows)
    return rows, report


def prompt_dataset(frame, *, template: str, tolerance: float, l_max: int | None = None, api: str = "chat"):
    """Rows with a prompt and a target -> (GRPO rows, report).

    The length reward's range is the row's ``min_words``/``max_words`` (or verl's
    ``reward_model.ground_truth``), else ``target_words * (1 ± tolerance)``. Checked here, before
    any model loads: a ``[0, 0]`` range (the paper's mark for a request that cannot be met) is left
    out and counted; an inverted or negative range, or an ``l_max`` not above a row's upper bound,
    is a UserError naming the rows. Rows with neither a range nor a target are left out, and the
    report lists them (``rows_no_target``, 1-based row numbers).
    """
    if "chosen" in frame.columns or "prompt" not in frame.columns:
        raise UserError("grpo needs a prompt set with target lengths (lwz export prompts), not a preference file")
    report: dict[str, Any] = {"rows": int(len(frame)), "dropped_empty": 0, "dropped_no_target": 0,
                              "dropped_unmeetable_range": 0}
    rows, no_target, unmeetable, bad = [], [], [], []
    for number, record in enumerate(frame.to_dict("records"), start=1):
        prompt = _plain(record.get("prompt"), "user")
        low, high = record.get("min_words"), record.get("max_words")
        truth = (record.get("reward_model") or {}).get("ground_truth") if isinstance(record.get("reward_model"), dict) else None
        if truth and not (present(low) and present(high)):
            low, high = truth.get("min_words"), truth.get("max_words")
        target = record.get("target_words")
        if not prompt or not prompt.strip():
            report["dropped_empty"] += 1
            continue
        if present(low) != present(high):
            bad.append(f"row {number}: only one of min_words/max_words")
            continue
        if not present(low):
            bounds = word_range(target=int(target), tolerance=tolerance) if present(target) else None
            if bounds is None:
                no_target.append(number)
                continue
            low, high = bounds
        problem = range_problem(low, high, l_max=l_max)
        if problem is not None and problem.startswith("[0, 0]"):
            unmeetable.append(number)
            continue
        if problem is not None:
            bad.append(f"row {number}: {problem}")
            continue
        rows.append({"prompt": training_prompt(prompt, template=template, api=api), "request": prompt,
                     "min_words": int(low),
                     "max_words": int(high), "target_words": int(target) if present(target) else int((low + high) / 2)})
    if bad:
        more = f" (and {len(bad) - 5} more)" if len(bad) > 5 else ""
        raise UserError(f"bad word ranges in the prompt set: {'; '.join(bad[:5])}{more}")
    report["dropped_no_target"], report["dropped_unmeetable_range"] = len(no_target), len(unmeetable)
    if no_target:
        report["rows_no_target"] = _numbers(no_target)
    if unmeetable:
        report["rows_unmeetable_range"] = _numbers(unmeetable)
    report["kept"] = len(rows)
    return rows, report


def _numbers(numbers: list[int], limit: int = 20) -> str:
    shown = ", ".join(map(str, numbers[:limit]))
    return shown + (f" and {len(numbers) - limit} more" if len(numbers) > limit else "")




def load_pairs(options, session_factory, *, template: str, api: str):
    """reward/dpo rows (prompt, chosen, rejected) from ``--data`` or the database's votes."""
    frame, fingerprint, source, source_report = _frame(options, session_factory, votes="pairs")
    return _finish(*preference_dataset(frame, template=template, api=api), fingerprint, source, source_report)


def load_kto(options, session_factory, *, template: str, api: str):
    """kto rows (prompt, completion, label) from ``--data`` or the database's votes, both-bad battles included."""
    frame, fingerprint, source, source_report = _frame(options, session_factory, votes="kto")
    return _finish(*kto_dataset(frame, template=template, api=api), fingerprint, source, source_report)


def load_prompts(options, session_factory, *, template: str, api: str):
    """grpo rows (prompt, request, range) from ``--data`` or the database's prompts."""
    frame, fingerprint, source, source_report = _frame(options, session_factory, votes=None)
    rows, report = prompt_dataset(frame, template=template, tolerance=options.prompts_tolerance,
                                  l_max=options.l_max, api=api)
    return _finish(rows, report, fingerprint, source, source_report)


def _frame(options, session_factory, *, votes: str | None):
    """``(frame, fingerprint, source, report)`` from ``--data`` or the database: the stored prompts
    (``votes=None``), the decisive pairs (``"pairs"``) or the KTO rows (``"kto"``).

    The fingerprint is the file's SHA-256 (as ``lwz export`` reports it) or, from the database,
    a SHA-256 over the pairs' ids, counts, margins and texts. ``session_factory`` opens a session
    (only called for ``--from-db``).
    """
    from training.preferences import PreferenceFilters, file_sha256, frame_fingerprint, preference_pairs, shape_rows
    from training.prompt_set import prompt_rows

    source_report: dict[str, Any] = {}
    if options.data:
        frame, source = read_table(options.data), options.data
    elif votes is None:
        with session_factory() as session:
            frame, source_report = prompt_rows(session, tolerance=options.prompts_tolerance,
                                               default_words=options.default_words)
        source = "database prompts"
    else:
        with session_factory() as session:
            frame, source_report = preference_pairs(session, filters=options.filters or PreferenceFilters(),
                                                    both_bad=votes == "kto")
        if votes == "kto":
            fingerprint_attr = frame.attrs.get("fingerprint")
            frame = shape_rows(frame, fmt="kto", layout="trl")
            frame.attrs["fingerprint"] = fingerprint_attr
        source = "database votes"
    if frame.empty:
        raise UserError(f"the dataset {source} has no rows")
    fingerprint = file_sha256(options.data) if options.data else (frame.attrs.get("fingerprint")
                                                                  or frame_fingerprint(frame))
    return frame, fingerprint, source, source_report


def _finish(rows: list, report: dict[str, Any], fingerprint: str, source: str, source_report: dict[str, Any]):
    """Merge the source's and the shaping's counts; a UserError naming what removed every row."""
    merged = dict(source_report)
    for key, value in report.items():
        merged[key] = merged.get(key, 0) + value if key.startswith("dropped") and key in merged else value
    report = {**merged, "source": source}
    if not rows:
        reasons = ", ".join(f"{k}={v}" for k, v in report.items() if k.startswith(("dropped", "rows_")) and v)
        raise UserError(f"no usable training row in {source}: {reasons or 'all rows were empty'}")
    return rows, fingerprint, report
