"""The GRPO prompt set: each stored prompt with its target word range (the length reward's input).

The range is ``[target*(1-tolerance), target*(1+tolerance)]`` around the prompt's
``target_words``; prompts without a target take ``default_words`` or are left out and counted.
"""

from __future__ import annotations

from typing import Any

from core.errors import UserError
from training.ranges import word_range


def prompt_rows(session, *, tolerance: float = 0.2, default_words: int | None = None,
                category: str | None = None):
    """Prompts as a DataFrame (prompt, target_words, min_words, max_words, category, language, prompt_id)
    and a report of what was left out. Raises UserError when nothing is left."""
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
    missing = targets.isna().to_numpy()
    report["dropped_no_target"] = int(missing.sum())
    frame = frame[~missing].assign(target_words=targets[~missing].astype("int64").to_numpy())
    if frame.empty:
        where = f" in category {category!r}" if category else ""
        hint = "" if default_words else " (give --default-words N for prompts without one)"
        raise UserError(f"no prompt with a target length{where}: {report['prompts']} prompts, "
                        f"{report['dropped_no_target']} without a target{hint}")
    bounds = [word_range(target=int(t), tolerance=tolerance) for t in frame["target_words"]]
    frame["min_words"] = [b[0] for b in bounds]
    frame["max_words"] = [b[1] for b in bounds]
    frame = frame[["prompt", "target_words", "min_words", "max_words", "category", "language", "prompt_id"]]
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
                   category: str | None = None) -> dict[str, Any]:
    from training.preferences import file_sha256, write_table

    frame, report = prompt_rows(session, tolerance=tolerance, default_words=default_words, category=category)
    rows = shape_prompts(frame, layout=layout)
    kind = write_table(rows, out)
    return {"path": str(out), "file_format": kind, "layout": layout, "fingerprint": file_sha256(out), **report}
