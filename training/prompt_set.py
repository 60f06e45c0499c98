"""The GRPO prompt set: each stored prompt with its target word range (the length reward's input).

The range is ``[target*(1-tolerance), target*(1+tolerance)]`` around the prompt's
``target_words``; prompts without a target take ``default_words`` or are left out and counted.
With a range model (``training.range_model``) each prompt's range is predicted under the paper's
rules instead, and prompts without a target are kept (the model judges their length).
"""

from __future__ import annotations

from typing import Any

from core.errors import UserError
from training.ranges import word_range


def prompt_rows(session, *, tolerance: float = 0.2, default_words: int | None = None,
                category: str | None = None, need_target: bool = True):
    """Prompts as a DataFrame (prompt, target_words, min_words, max_words, category, language, prompt_id)
    and a report of what was left out. Raises UserError when nothing is left. With ``need_target=False``
    prompts without a target are kept, with no range (a range model gives it)."""
    import pandas as pd
    import sqlalchemy as sa

    from storage.models import Prompt

    if not 0 <= tolerance < 1:
        raise UserError(f"--tolerance must be in [0, 1), got {tolerance}")
    if default_words is not None and default_words <= 0:
        raise UserError(f"--default-words must be positive, got {default_words}")
    query = sa.select(Prompt.id, Prompt.text, Prompt.target_words, Prompt.category, Prompt.language).order_by(Prompt.id)
    if category is not None:
        query = query.where(Prompt.category == category)
    frame = pd.DataFrame(session.execute(query).all(),
                         columns=["prompt_id", "prompt", "target_words", "category", "language"])
    report = {"prompts": int(len(frame))}
    targets = frame["target_words"].astype("Float64")
    if default_words is not None:
        report["default_target_used"] = int(targets.isna().sum())
        targets = targets.fillna(float(default_words))
    missing = targets.isna().to_numpy() & need_target
    report["dropped_no_target"] = int(missing.sum())
    frame = frame[~missing].assign(target_words=[None if t is pd.NA else int(t) for t in targets[~missing]])
    if frame.empty:
        where = f" in category {category!r}" if category else ""
        hint = "" if default_words else " (give --default-words N for prompts without one)"
        raise UserError(f"no prompt with a target length{where}: {report['prompts']} prompts, "
                        f"{report['dropped_no_target']} without a target{hint}")
    bounds = [word_range(target=t, tolerance=tolerance) or (None, None) for t in frame["target_words"]]
    frame["min_words"] = [b[0] for b in bounds]
    frame["max_words"] = [b[1] for b in bounds]
    frame["range_source"] = [f"target ±{tolerance:g}" if b[0] is not None else None for b in bounds]
    frame = frame[["prompt", "target_words", "min_words", "max_words", "range_source", "category", "language",
                   "prompt_id"]]
    report["rows"] = int(len(frame))
    return frame.reset_index(drop=True), report


def shape_prompts(frame, *, layout: str):
    """``trl``: prompt as a one-message conversation (what GRPO wants for an instruct model).
    ``openrlhf``: prompt as a plain string. ``verl``: verl's RL layout (data_source, prompt messages,
    ability, reward_model with the range as ground truth, extra_info)."""
    if layout == "trl":
        return frame.assign(prompt=[[{"role": "user", "content": p}] for p in frame["prompt"]])
    if layout == "openrlhf":
        return frame
    if layout == "verl":
        import pandas as pd

        return pd.DataFrame({
            "data_source": "lwz",
            "prompt": [[{"role": "user", "content": p}] for p in frame["prompt"]],
            "ability": "writing",
            "reward_model": [{"style": "rule", "ground_truth": {"min_words": int(lo), "max_words": int(hi)}}
                             for lo, hi in zip(frame["min_words"], frame["max_words"])],
            "extra_info": [{"prompt_id": int(i), "target_words": int(t), "category": c}
                           for i, t, c in zip(frame["prompt_id"], frame["target_words"], frame["category"])],
        })
    raise UserError(f"--layout must be one of trl, openrlhf, verl, got {layout!r}")


def export_prompts(session, *, out, layout: str = "trl", tolerance: float = 0.2, default_words: int | None = None,
                   category: str | None = None, ask_range=None, range_source: str | None = None) -> dict[str, Any]:
    """Write the prompt set to ``out``. With ``ask_range`` (``training.range_model.openai_asker``) every
    prompt's range is the model's, checked against the paper's rules; nothing is written when no
    prompt keeps a range."""
    from training.preferences import file_sha256, write_table

    frame, report = prompt_rows(session, tolerance=tolerance, default_words=default_words, category=category,
                                need_target=ask_range is None)
    if ask_range is not None:
        from training.range_model import predict_ranges

        frame, predicted = predict_ranges(frame, ask=ask_range, source=range_source or "range model")
        report = {**report, **predicted, "rows": int(len(frame))}
        if frame.empty:
            raise UserError(f"the range model's answer broke the rules for every prompt: "
                            f"{predicted.get('rows_range_rejected', '')}")
    rows = shape_prompts(frame, layout=layout)
    kind = write_table(rows, out)
    return {"path": str(out), "file_format": kind, "layout": layout, "fingerprint": file_sha256(out), **report}
