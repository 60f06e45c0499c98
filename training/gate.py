"""The reward-hacking gate: a checkpoint enters the arena only if it writes no worse than its parent.

A policy trained against automatic rewards can learn to pad (loop a paragraph, repeat the
prompt's keywords) rather than to write. Before ``--register``, parent and child each write one
text per held-out prompt (``training/gate_prompts.jsonl`` unless ``--gate-prompts`` says
otherwise), and the automatic checks of ``evaluation.metrics`` are averaged per model:

- ``distinct_4``: distinct 4-grams / all 4-grams of the answer (lower is more repetitive);
- ``longest_repeat``: the longest span, in tokens, that occurs twice in the answer;
- ``keyword_stuffing``: prompt keywords observed / expected (about 1 for natural writing);
- ``length_score``: LongBench-Write's S_l against the prompt's target, 0..100;
- ``format_valid``: the share of outputs that are one ``<think>`` then one non-empty ``<answer>``.

A check *regresses* when the child's mean is worse than the parent's by more than its threshold
(:class:`GateThresholds`). Any regression refuses registration unless the run says ``--force``;
the report, forced or not, goes into the training run's metrics.

Everything here is pure except :func:`service_generator`, which runs the project's generation
service on the local backend; tests pass their own ``generate`` callable to :func:`run_gate`.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

from core.errors import UserError

DEFAULT_PROMPTS = Path(__file__).with_name("gate_prompts.jsonl")
CHECKS = ("distinct_4", "longest_repeat", "keyword_stuffing", "length_score", "format_valid")


@dataclass(frozen=True)
class GateThresholds:
    """How much worse than the parent the child's mean may be before a check counts as regressed."""

    distinct_4_drop: float = field(default=0.05, metadata={
        "help": "distinct-4 may fall by at most this much (absolute; a looping text falls by 0.3 or more)"})
    repeat_growth: float = field(default=0.5, metadata={
        "help": "the longest repeated span may grow by at most this fraction of the parent's ..."})
    repeat_min_tokens: float = field(default=8.0, metadata={
        "help": "... or by this many tokens, whichever is more (a parent with no repeat would otherwise allow none)"})
    stuffing_rise: float = field(default=1.0, metadata={
        "help": "keyword stuffing (observed/expected keyword count, ~1 for natural text) may rise by at most this"})
    length_drop: float = field(default=10.0, metadata={
        "help": "the length score (0..100) may fall by at most this many points"})
    format_drop: float = field(default=0.1, metadata={
        "help": "the share of well-formed outputs may fall by at most this much"})


@dataclass(frozen=True)
class GatePrompt:
    """One held-out prompt and its target length in words."""

    prompt: str
    target: int


def load_gate_prompts(path: str | Path | None = None) -> list[GatePrompt]:
    """The held-out prompts (LongBench-Write lines: ``prompt`` and ``length``); every row needs a length."""
    from storage.catalog import parse_prompt_lines

    file = Path(path) if path is not None else DEFAULT_PROMPTS
    if not file.is_file():
        raise UserError(f"--gate-prompts: no such file: {file}")
    with file.open(encoding="utf-8") as handle:
        rows = parse_prompt_lines(handle, source=str(file), keep=())
    missing = [str(number) for number, row in enumerate(rows, start=1) if row["target_words"] is None]
    if missing:
        raise UserError(f"{file}: the gate needs a 'length' (target words) on every prompt; rows {', '.join(missing)} lack one")
    if not rows:
        raise UserError(f"{file}: no prompts for the gate")
    return [GatePrompt(row["text"], row["target_words"]) for row in rows]


def text_checks(text: str, prompt: str, target: int) -> dict[str, float]:
    """The five checks of one full output (tags included). Repetition, stuffing and length are
    measured on the answer; format on the whole text."""
    from evaluation.metric_report import split_output
    from evaluation.metrics import distinct_n, format_valid, keyword_stuffing, length_score, longest_repeated_ngram
    from generation.counting import count_words

    _, answer = split_output(text or "")
    return {
        "distinct_4": distinct_n(answer, 4),
        "longest_repeat": float(longest_repeated_ngram(answer)),
        "keyword_stuffing": keyword_stuffing(prompt, answer),
        "length_score": length_score(count_words(answer), target),
        "format_valid": 1.0 if format_valid(text or "") else 0.0,
    }


def _means(texts: Sequence[str], prompts: Sequence[str], targets: Sequence[int]) -> dict[str, float]:
    rows = [text_checks(t, p, n) for t, p, n in zip(texts, prompts, targets)]
    return {check: round(sum(r[check] for r in rows) / len(rows), 4) for check in CHECKS}


def _regression(check: str, parent: float, child: float, t: GateThresholds) -> float | None:
    """How far past its threshold the child is (> 0 means regressed), or None when within it."""
    if check == "distinct_4":
        excess = (parent - child) - t.distinct_4_drop
    elif check == "longest_repeat":
        excess = (child - parent) - max(t.repeat_growth * parent, t.repeat_min_tokens)
    elif check == "keyword_stuffing":
        excess = (child - parent) - t.stuffing_rise
    elif check == "length_score":
        excess = (parent - child) - t.length_drop
    else:
        excess = (parent - child) - t.format_drop
    return excess if excess > 1e-9 else None


def gate_report(parent_texts: Sequence[str], child_texts: Sequence[str], prompts: Sequence[str],
                targets: Sequence[int], thresholds: GateThresholds | None = None) -> dict[str, Any]:
    """Per-check means for parent and child, and the checks the child regressed on past their thresholds.

    Returns ``{"prompts": n, "parent": {check: mean}, "child": {...}, "regressed": [check, ...],
    "thresholds": {...}}``; ``regressed`` keeps the order of :data:`CHECKS`.
    """
    thresholds = thresholds or GateThresholds()
    n = len(prompts)
    if not n or not (len(parent_texts) == len(child_texts) == len(targets) == n):
        raise ValueError(f"need one parent text, child text and target per prompt; got {len(parent_texts)}, "
                         f"{len(child_texts)}, {len(targets)} for {n} prompts")
    parent, child = _means(parent_texts, prompts, targets), _means(child_texts, prompts, targets)
    regressed = [c for c in CHECKS if _regression(c, parent[c], child[c], thresholds) is not None]
    return {"prompts": n, "parent": parent, "child": child, "regressed": regressed, "thresholds": asdict(thresholds)}


def run_gate(generate: Callable[[Any, str, int], str], *, parent: Any, child: Any, prompts: Sequence[GatePrompt],
             force: bool, thresholds: GateThresholds | None = None) -> dict[str, Any]:
    """Have ``generate(model, prompt, target) -> full text`` write each prompt with ``parent`` and
    ``child``, and report. ``refused`` is true when a check regressed and ``force`` is not set;
    ``forced`` when one regressed and ``force`` let it through anyway."""
    parent_texts = [generate(parent, p.prompt, p.target) for p in prompts]
    child_texts = [generate(child, p.prompt, p.target) for p in prompts]
    report = gate_report(parent_texts, child_texts, [p.prompt for p in prompts], [p.target for p in prompts],
                         thresholds)
    report["forced"] = bool(report["regressed"]) and force
    report["refused"] = bool(report["regressed"]) and not force
    return report


def refusal_line(report: dict[str, Any], *, name: str, out: str) -> str:
    """The one line a refused registration ends with: which checks regressed, by how much, and what to do."""
    if report.get("error"):
        return (f"--register {name} refused: {report['error']}; the checkpoint is kept in {out}: "
                "rerun with --force to register it unchecked")
    parts = ", ".join(f"{c} {report['parent'][c]:g} -> {report['child'][c]:g}" for c in report["regressed"])
    return (f"--register {name} refused by the reward-hacking gate: {parts} (parent -> checkpoint, "
            f"{report['prompts']} held-out prompts); the checkpoint is kept in {out}: inspect it, or rerun with --force")


def report_lines(report: dict[str, Any]) -> list[str]:
    """The report as log lines: one per check, parent and checkpoint side by side."""
    if report.get("error"):
        return [f"[lwz train] reward-hacking gate did not run: {report['error']}"
                + ("; registered anyway (--force)" if report.get("forced") else "")]
    lines = [f"[lwz train] reward-hacking gate on {report['prompts']} held-out prompts (parent -> checkpoint):"]
    for check in CHECKS:
        mark = "  REGRESSED" if check in report["regressed"] else ""
        lines.append(f"[lwz train]   {check:<17} {report['parent'][check]:>9g} -> {report['child'][check]:<9g}{mark}".rstrip())
    if report.get("forced"):
        lines.append("[lwz train]   registered anyway (--force); the run's metrics record it")
    return lines


def service_generator(*, max_tokens: int, seed: int) -> Callable[[Any, str, int], str]:
    """A ``generate(entry, prompt, target)`` that runs ``generation.service.stream_generation`` with a
    model entry (local backend) and returns the full tagged text. A failed generation is a UserError."""
    import asyncio

    from generation.parser import tagged
    from generation.service import GenerationRequest, collect_text

    async def collect(entry, request) -> str:
        plan, text = await collect_text(entry, request,
                                        failure=f"the reward-hacking gate could not generate with {entry.name}")
        return tagged(plan, text) if plan.strip() else text

    def generate(entry, prompt: str, target: int) -> str:
        request = GenerationRequest(prompt=prompt, target_words=target, max_tokens=max_tokens, seed=seed)
        return asyncio.run(collect(entry, request))

    return generate


def gate_entries(*, parent_folder, parent_entry, child_folder, name: str, template: str):
    """Unsaved local-backend model entries for the parent (its weights folder) and the checkpoint,
    both prompted with the template the checkpoint will be registered with."""
    from storage.models import ModelEntry

    sampling = dict(parent_entry.sampling or {}) if parent_entry is not None else {}
    parent = ModelEntry(name=parent_entry.name if parent_entry is not None else str(parent_folder), backend="local",
                        path=str(parent_folder), template=template, sampling=sampling)
    child = ModelEntry(name=name, backend="local", path=str(Path(child_folder).resolve()), template=template,
                       sampling=dict(sampling))
    return parent, child


def gate_checkpoint(options, *, parent_folder, parent_entry, template: str) -> dict[str, Any]:
    """The gate as ``lwz train --register`` runs it: the service writes with parent and checkpoint.
    When generation itself fails the report carries the ``error`` and refuses unless ``--force``."""
    parent, child = gate_entries(parent_folder=parent_folder, parent_entry=parent_entry, child_folder=options.out,
                                 name=options.register, template=template)
    generate = service_generator(max_tokens=options.gate_max_tokens, seed=options.seed)
    settings = {"seed": options.seed, "max_tokens": options.gate_max_tokens, "template": template,
                "prompts_file": str(options.gate_prompts or DEFAULT_PROMPTS)}
    try:
        report = run_gate(generate, parent=parent, child=child, prompts=load_gate_prompts(options.gate_prompts),
                          force=options.force)
    except UserError as exc:
        report = {"error": str(exc), "regressed": [], "forced": options.force, "refused": not options.force}
    return {**report, **settings}
