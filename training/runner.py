"""One training run from options to a recorded (and optionally registered) checkpoint.

Order matters: options are checked, the base model resolved, the data read and the TRL config
built *before* any model is loaded, so every mistake a user can make costs seconds. The run is
recorded as ``running`` just before the model loads and finished as ``complete`` or ``failed``;
an interrupted run saves what it has as a partial checkpoint and lists it in the record. TRL
saves a checkpoint every ``--save-steps``; the run's row records the last step saved, and
``--resume`` continues from the latest checkpoint in ``--out``. With ``--register``, the
reward-hacking gate (``training.gate``) compares checkpoint and parent on held-out prompts first;
a refused registration still finishes the run as ``complete`` (the gate's report in its metrics)
and then raises the refusal as a UserError.

A ``pretrain`` run (continual pretraining on plain text) streams its corpus (``training.corpus``) and records the tokens
seen (``metrics.tokens``, counted on across ``--resume``) and registers without the gate: there is no
reward to hack, and the gate's length and format checks measure instruction following, which a
continually pretrained base is not trained for (it is the start point of the next stage, as in the
paper). The run's ``metrics.gate`` says so.
"""

from __future__ import annotations

import json
import resource
import shutil
import sys
import time
from pathlib import Path
from typing import Any, Callable

from core.errors import UserError


NO_GATE_REASON = ("continual pretraining optimises no reward, so there is nothing to hack; the gate's length and format "
                  "checks measure instruction following, which a pretrained base is not trained for")


def run_training(engine, options, *, log: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Train as ``options`` say. Returns the run summary (run id, metrics, counts, registered model)."""
    from storage.engine import session_scope
    from storage.runs import finish_run, start_run
    from training.checkpoints import (check_register_name, model_context, register_checkpoint, resolve_base,
                                      vllm_serve_command)
    from training.kinds import kind_of
    from training.options import is_main_process, latest_checkpoint
    from training.trainers import (ROWS_FOLDER, build_config, build_trainer, has_gpu, length_report,
                                   make_progress_callback, make_save_callback, quiet_known_warnings)

    log = log or (lambda line: print(line, file=sys.stderr, flush=True))
    options.check()
    kind = kind_of(options.kind)
    with session_scope(engine) as session:
        folder, base_entry = resolve_base(session, base=options.base)
        check_register_name(session, name=options.register)
    template = options.template
    if template == "auto":
        template = base_entry.template if base_entry is not None else "none"
    api = served_api(options.api, base_entry)
    rows, fingerprint, data_report = kind.rows(options, lambda: session_scope(engine), template=template, api=api)
    gpu = has_gpu()
    context = model_context(folder) if kind.context_max_length else None
    config = build_config(options, gpu=gpu, context=context)
    resume_from = latest_checkpoint(options.out) if options.resume else None
    log(f"[lwz train] {options.kind} on {folder} ({'GPU' if gpu else 'CPU'}): {data_report['kept']} "
        f"{kind.unit}, "
        f"dataset {fingerprint[:12]}; left out: {_dropped(data_report) or 'nothing'}"
        + (f"; resuming from {resume_from}" if resume_from else ""))
    record = {**options.record(), "template": template, "api": api, "base_folder": str(folder), "device": "gpu" if gpu else "cpu",
              "trl": _trl_fields(config), "model_context": context, "resumed_from": resume_from}
    main = is_main_process()
    run_id = None
    if main:
        with session_scope(engine) as session:
            run = start_run(session, kind=options.kind, base_model=base_entry.name if base_entry else str(folder),
                            config=record, dataset_fingerprint=fingerprint, output_dir=str(Path(options.out).resolve()))
        run_id = run.id
    progress = make_progress_callback()
    callbacks = [progress] + ([make_save_callback(engine, run_id)] if run_id is not None else [])
    started = time.perf_counter()
    trainer = None
    quiet_known_warnings()
    try:
        trainer = build_trainer(options.kind, model_path=str(folder), config=config, rows=rows, options=options,
                                callbacks=callbacks)
        lengths = length_report(options.kind, trainer, given=data_report["kept"],
                                max_length=getattr(config, "max_length", None))
        if kind.reads_texts:
            log(f"[lwz train] streaming {lengths['documents']} documents from disk, packed as read into sequences "
                f"of {lengths['max_length']} tokens ({config.packing_strategy}); nothing dropped or truncated")
        else:
            log(f"[lwz train] lengths: {_dropped(lengths) or 'nothing dropped or truncated'} "
                f"(max_length={lengths['max_length']})")
        if hasattr(trainer.train_dataset, "__len__") and not len(trainer.train_dataset):
            raise UserError(f"every example is longer than max_length={lengths['max_length']} tokens: raise --max-length")
        trainer.train(resume_from_checkpoint=resume_from)
        trainer.save_model(options.out)  # every rank takes part (sharded states); transformers writes on rank 0
        if trainer.is_world_process_zero():
            shutil.rmtree(Path(options.out) / ROWS_FOLDER, ignore_errors=True)
            trainer.processing_class.save_pretrained(options.out)
            log(f"[lwz train] saved the checkpoint to {Path(options.out).resolve()}")
    except BaseException as exc:
        partial = _save_partial(trainer, options.out, step=progress.step)
        reason = "interrupted" if isinstance(exc, KeyboardInterrupt) else f"{type(exc).__name__}: {_first_line(exc)}"
        metrics = {"error": reason, "step": progress.step, "checkpoints": _checkpoints(options.out, partial),
                   "data": data_report, "log": progress.history[-50:]}
        if kind.reads_texts:
            metrics["tokens"] = {"seen": progress.tokens, "this_run": progress.tokens - progress.tokens_at_start}
        if main:
            with session_scope(engine) as session:
                finish_run(session, run_id=run_id, status="failed", metrics=_jsonable(metrics))
        log(f"[lwz train] run {run_id} failed ({reason}); partial checkpoint: {partial or 'none'}")
        raise
    metrics = {
        "steps": progress.step, "seconds": round(time.perf_counter() - started, 2),
        "seconds_per_step": round((time.perf_counter() - started) / max(progress.step, 1), 3),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "data": data_report, "lengths": lengths, "final": _final_metrics(progress.history),
        "log": progress.history[-200:],
    }
    if kind.generates:
        metrics["lengths"]["truncated_completions"] = _clipped(progress.history, config)
        metrics.update(grpo_metrics(progress.history, trainer))
        if metrics["zero_advantage_steps"]:
            log(f"[lwz train] {metrics['zero_advantage_steps']} of {progress.step} steps had equal rewards within "
                "every group: their advantages were zero, so nothing was learned from them")
    if kind.reads_texts:
        seen = trainer.state.num_input_tokens_seen
        metrics["tokens"] = {"seen": seen, "this_run": seen - progress.tokens_at_start,
                             "max_length": lengths["max_length"]}
        log(f"[lwz train] {seen} tokens seen ({seen - progress.tokens_at_start} in this run)")
    model_id = None
    summary: dict[str, Any] = {"run_id": run_id, "kind": options.kind, "output_dir": str(Path(options.out).resolve()),
                               "dataset_fingerprint": fingerprint, "template": template}
    if not main:
        return {**summary, "metrics": {k: v for k, v in metrics.items() if k != "log"}}
    gate = None
    registered_template = template if template != "none" else "direct"
    if options.register and kind.registers == "gate":
        from training.gate import gate_checkpoint, refusal_line, report_lines

        gate = metrics["gate"] = gate_checkpoint(options, parent_folder=folder, parent_entry=base_entry,
                                                 template=registered_template)
        for line in report_lines(gate):
            log(line)
    elif options.register:
        metrics["gate"] = {"ran": False, "refused": False, "reason": NO_GATE_REASON}
    with session_scope(engine) as session:
        if options.register and not (gate and gate["refused"]):
            entry = register_checkpoint(session, name=options.register, folder=options.out, parent=base_entry,
                                        template=registered_template)
            model_id = entry.id
            summary["registered"] = {"name": entry.name, "id": entry.id, "parent": base_entry.name if base_entry else None}
            summary["vllm_serve"] = vllm_serve_command(options.out, name=options.register, api=api)
        finish_run(session, run_id=run_id, status="complete", metrics=_jsonable(metrics), model_id=model_id)
    (Path(options.out) / "lwz_run.json").write_text(json.dumps(_jsonable({**summary, "metrics": metrics}), indent=1))
    if gate is not None and gate["refused"]:
        raise UserError(refusal_line(gate, name=options.register, out=str(Path(options.out).resolve())))
    return {**summary, "metrics": {k: v for k, v in metrics.items() if k != "log"}}


def served_api(api: str, entry) -> str:
    """The path the model is trained for: the option, else (``auto``) the base model entry's ``api``, else chat."""
    if api != "auto":
        return api
    return str(((entry.sampling if entry is not None else None) or {}).get("api") or "chat")


def grpo_metrics(history: list[dict[str, Any]], trainer) -> dict[str, Any]:
    """Each reward's mean (over the logged steps, and at the last one), the steps whose groups all had
    equal rewards (zero advantages: nothing learned), and the quality reward's length counts."""
    steps = [entry for entry in history if "loss" in entry]
    rewards: dict[str, dict[str, float]] = {}
    names = sorted({k.split("/")[1] for e in steps for k in e if k.startswith("rewards/") and k.endswith("/mean")})
    for name in names:
        values = [e[f"rewards/{name}/mean"] for e in steps if isinstance(e.get(f"rewards/{name}/mean"), (int, float))]
        if values:
            rewards[name] = {"mean": round(sum(values) / len(values), 6), "last": values[-1], "steps": len(values)}
    zero = sum(1 for e in steps if e.get("frac_reward_zero_std") == 1.0)
    out: dict[str, Any] = {"rewards": rewards, "zero_advantage_steps": zero}
    for func in getattr(trainer, "reward_funcs", []) or []:
        if getattr(func, "__name__", "") == "quality" and hasattr(func, "stats"):
            out["quality_reward"] = {**func.stats, "max_length": func.max_length}
    return out


def _save_partial(trainer, out: str, *, step: int) -> str | None:
    """Save the model as it is now into ``OUT/partial-step-N``; None when there is nothing to save."""
    if trainer is None:
        return None
    target = Path(out) / f"partial-step-{step}"
    try:
        trainer.save_model(str(target))
        trainer.processing_class.save_pretrained(str(target))
    except Exception:  # a failed save must not hide the original error; the record says none was saved
        return None
    return str(target.resolve())


def _checkpoints(out: str, partial: str | None) -> list[str]:
    folder = Path(out)
    found = sorted(str(p.resolve()) for p in folder.glob("checkpoint-*") if p.is_dir()) if folder.is_dir() else []
    return found + ([partial] if partial else [])


def _dropped(report: dict[str, Any]) -> str:
    return ", ".join(f"{k}={v}" for k, v in report.items()
                     if (k.startswith(("dropped", "rows_")) or k in ("truncated", "too_long")) and v)


def _final_metrics(history: list[dict[str, Any]]) -> dict[str, Any]:
    final: dict[str, Any] = {}
    for entry in history:
        final.update({k: v for k, v in entry.items() if isinstance(v, (int, float))})
    return final


def _clipped(history: list[dict[str, Any]], config) -> int:
    per_step = config.per_device_train_batch_size * config.gradient_accumulation_steps
    return int(round(sum(e.get("completions/clipped_ratio", 0.0) * per_step for e in history if "loss" in e)))


def _trl_fields(config) -> dict[str, Any]:
    keep = ("learning_rate", "per_device_train_batch_size", "gradient_accumulation_steps", "max_steps", "max_length",
            "beta", "num_generations", "max_completion_length", "use_vllm", "vllm_mode", "vllm_server_base_url",
            "scale_rewards", "loss_type", "seed", "use_cpu", "bf16", "precompute_ref_log_probs", "temperature",
            "top_p", "epsilon", "multi_objective_aggregation", "reward_weights", "generation_batch_size",
            "steps_per_generation")
    return {k: getattr(config, k) for k in keep if hasattr(config, k)}


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else ""


def _jsonable(value: Any) -> Any:
    return json.loads(json.dumps(value, default=lambda v: v.item() if hasattr(v, "item") else str(v)))
