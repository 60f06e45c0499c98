"""Each prompt's word range, predicted by a served model under the paper's rules.

LongWriter-Zero (arXiv 2506.18841) does not take a prompt's range from a fixed tolerance: a model
reads each request and predicts the range a good answer needs. Here any OpenAI-compatible server
(``--ranges-from URL --range-model NAME``) is asked, once per prompt, with :data:`RANGE_PROMPT`; its
answer is parsed (:func:`parse_range`) and checked against the rules that ``training.ranges`` owns
(multiples of 100, at most 12,000 words, at most 3,000 wide, within ±10% of a count the request
names, ``[0, 0]`` when the request cannot be met). An answer that breaks a rule is rejected: the
prompt is left out of the export and the report says which prompt and why. The accepted ranges are
stored in the exported file (``min_words``/``max_words``, with ``range_source`` naming the model).
"""

from __future__ import annotations

import re
from typing import Any, Callable

from core.errors import UserError
from training.ranges import UNMEETABLE, UPPER_MAX, WIDTH_MAX, paper_range_problem

RANGE_PROMPT = (
    "You decide how long a good answer to a writing request should be.\n"
    "Read the request below and give the range of words, a lower and an upper bound, that a complete, "
    "high-quality answer needs. Rules:\n"
    f"- both bounds are multiples of 100; the upper bound is at most {UPPER_MAX}; the range is at most "
    f"{WIDTH_MAX} words wide;\n"
    "- if the request names a word count, both bounds stay within 10% of that count;\n"
    "- if the request cannot be met (it is not a writing task, or asks for the impossible), answer [0, 0].\n"
    "End your reply with the range as a JSON list of two integers, for example [800, 1200].\n\n"
    "Request:\n{request}"
)
_PAIR = re.compile(r"\[\s*(-?\d+)\s*,\s*(-?\d+)\s*\]")


def parse_range(text: str) -> tuple[int, int]:
    """The last ``[low, high]`` pair of integers in a reply (after any ``</think>``); ValueError saying why not."""
    answer = text.rsplit("</think>", 1)[-1]
    pairs = _PAIR.findall(answer)
    if not pairs:
        shown = " ".join(answer.split())[:80]
        raise ValueError(f"no [low, high] pair of whole numbers in the answer ({shown!r})")
    low, high = pairs[-1]
    return int(low), int(high)


def openai_asker(*, base_url: str, model: str, api_key: str = "EMPTY", max_tokens: int = 1024,
                 timeout: float = 120.0) -> Callable[[str], str]:
    """``ask(prompt) -> reply`` over an OpenAI-compatible chat endpoint, greedy; a failure is a UserError."""
    import openai

    client = openai.OpenAI(base_url=base_url, api_key=api_key, timeout=timeout, max_retries=1)

    def ask(prompt: str) -> str:
        try:
            reply = client.chat.completions.create(model=model, messages=[{"role": "user", "content": prompt}],
                                                   temperature=0.0, max_tokens=max_tokens)
        except openai.APIError as exc:
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise UserError(f"--ranges-from {base_url}: the range model {model!r} did not answer ({first})") from None
        return reply.choices[0].message.content or ""

    return ask


def predict_ranges(frame, *, ask: Callable[[str], str], source: str):
    """``frame`` (prompt, target_words or None) with each prompt's predicted range -> (frame, report).

    The prompt's stored target, when it has one, is the count the request names (the ±10% rule).
    Rows whose answer cannot be parsed or breaks a rule are left out and listed in the report
    (``rows_range_rejected``: row number and reason); ``[0, 0]`` answers are kept and counted
    (``range_unmeetable``: training leaves them out, as the paper does).
    """
    lows, highs, keep, rejected = [], [], [], []
    for number, (prompt, target) in enumerate(zip(frame["prompt"], frame["target_words"]), start=1):
        explicit = int(target) if target is not None and target == target else None
        try:
            low, high = parse_range(ask(RANGE_PROMPT.replace("{request}", prompt)))
        except ValueError as exc:
            rejected.append(f"row {number}: {exc}")
            keep.append(False)
            continue
        problem = paper_range_problem(low, high, explicit=explicit)
        if problem is not None:
            rejected.append(f"row {number}: {problem}")
            keep.append(False)
            continue
        keep.append(True)
        lows.append(low)
        highs.append(high)
    kept = frame[keep].copy()
    kept["min_words"], kept["max_words"] = lows, highs
    kept["target_words"] = [int(t) if t is not None and t == t else (lo + hi) // 2
                            for t, lo, hi in zip(kept["target_words"], lows, highs)]
    kept["range_source"] = source
    report: dict[str, Any] = {"range_asked": int(len(frame)), "range_accepted": len(lows),
                              "dropped_range_rejected": len(rejected),
                              "range_unmeetable": sum((lo, hi) == UNMEETABLE for lo, hi in zip(lows, highs))}
    if rejected:
        report["rows_range_rejected"] = "; ".join(rejected[:20]) + (f"; and {len(rejected) - 20} more"
                                                                    if len(rejected) > 20 else "")
    return kept.reset_index(drop=True), report
