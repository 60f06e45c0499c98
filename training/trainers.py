"""TRL trainers for the four run kinds, with CPU defaults and an honest count of truncation.

``build_config`` makes the TRL config without loading anything heavy (so bad values fail before
a model loads); ``build_trainer`` loads the model through TRL; ``length_report`` compares what
TRL kept and truncated against what it was given, because TRL's RewardTrainer drops long pairs
and DPOTrainer and KTOTrainer truncate them without saying so.

``max_length`` defaults to the base model's context (``max_position_embeddings``), not TRL's 1,024:
the texts this system exists for are thousands of words long. Checkpoints are TRL's own
(``save_strategy="steps"``), and ``--resume`` hands the latest to ``trainer.train``.
"""

from __future__ import annotations

import sys
from typing import Any

from core.errors import UserError

CPU_DEFAULTS = {
    "reward": {"per_device_train_batch_size": 2, "learning_rate": 1e-5},
    "dpo": {"per_device_train_batch_size": 2, "learning_rate": 5e-6, "beta": 0.1},
    "kto": {"per_device_train_batch_size": 2, "learning_rate": 5e-6, "beta": 0.1},
    "grpo": {"per_device_train_batch_size": 4, "num_generations": 4, "max_completion_length": 128,
             "learning_rate": 1e-6},
}


# Messages (regular expressions) of warnings repeated at every step on this stack.
QUIET_WARNINGS = (r"`is_gradient_checkpointing` is deprecated",)


def has_gpu() -> bool:
    import torch

    return torch.cuda.is_available()


def build_config(options, *, gpu: bool, context: int | None = None):
    """The TRL config for ``options`` (flags > YAML > CPU defaults). Invalid values are UserErrors.

    ``context`` (the base model's, in tokens) is the default ``max_length`` of reward/dpo/kto runs.
    """
    import trl

    from training.options import DEFAULT_SAVE_STEPS, PAIR_KINDS

    classes = {"reward": trl.RewardConfig, "dpo": trl.DPOConfig, "kto": trl.KTOConfig, "grpo": trl.GRPOConfig}
    cls = classes[options.kind]
    fields = set(cls.__dataclass_fields__)
    unknown = sorted(k for k in options.config if k not in fields)
    if unknown:
        raise UserError(f"{options.config_path or 'config'}: unknown {cls.__name__} field(s) {', '.join(unknown)}")
    values: dict[str, Any] = dict(CPU_DEFAULTS[options.kind]) if not gpu else {}
    values.update({
        "output_dir": options.out, "seed": options.seed, "logging_steps": 1, "save_strategy": "steps",
        "save_steps": DEFAULT_SAVE_STEPS, "save_total_limit": 2,
        "report_to": [], "disable_tqdm": True, "num_train_epochs": 1,
        "activation_checkpointing": gpu, "model_init_kwargs": {"dtype": "bfloat16" if gpu else "float32"},
    })
    if not gpu:
        values.update({"use_cpu": True, "bf16": False})
    if options.kind in PAIR_KINDS and context is not None:
        values["max_length"] = context
    if options.kind in ("dpo", "kto"):
        values["precompute_ref_log_probs"] = True
    if options.kind == "grpo":
        values["multi_objective_aggregation"] = ("normalize_then_sum" if options.combine == "paper"
                                                 else "sum_then_normalize")
        if options.vllm_server:
            values.update({"use_vllm": True, "vllm_mode": "server", "vllm_server_base_url": options.vllm_server})
    values.update(options.config)
    for flag, key in (("max_steps", "max_steps"), ("learning_rate", "learning_rate"),
                      ("batch_size", "per_device_train_batch_size"), ("max_length", "max_length"),
                      ("num_generations", "num_generations"), ("max_completion_length", "max_completion_length"),
                      ("save_steps", "save_steps")):
        value = getattr(options, flag)
        if value is not None:
            values[key] = value
    if options.kind == "grpo":
        batch, group = values.get("per_device_train_batch_size", 8), values.get("num_generations", 8)
        if group < 2:
            raise UserError(f"grpo needs num_generations >= 2 to compare completions, got {group}")
        if batch % group:
            raise UserError(f"the grpo batch size ({batch}) must be a multiple of num_generations ({group})")
    try:
        return cls(**values)
    except (ValueError, TypeError) as exc:
        raise UserError(f"invalid {options.kind} config: {str(exc).strip().splitlines()[0]}") from None


def reward_functions(options) -> list:
    """The GRPO reward functions named by ``options.rewards``, one TRL reward function each.

    The paper's combination is TRL's ``multi_objective_aggregation="normalize_then_sum"`` (set in
    :func:`build_config`), which also logs each reward on its own.
    """
    from training.rewards import AntiHackingPenalty, FormatReward, LengthReward, QualityReward

    makers = {
        "length": lambda: LengthReward(tolerance=options.prompts_tolerance, l_max=options.l_max),
        "format": lambda: FormatReward(),
        "anti_hacking": lambda: AntiHackingPenalty(),
        "quality": lambda: QualityReward(options.reward_model),
    }
    return [makers[name]() for name in options.rewards]


def build_trainer(kind: str, *, model_path: str, config, rows: list[dict[str, Any]], options, callbacks: list):
    """Load the model through TRL and return the trainer. Load failures are UserErrors.

    The transformers printer (which writes log dicts to stdout) is removed: progress goes to
    stderr through ``callbacks``, and stdout stays free for ``--json``.
    """
    trainer = _make_trainer(kind, model_path=model_path, config=config, rows=rows, options=options, callbacks=callbacks)
    from transformers.trainer_callback import PrinterCallback

    trainer.remove_callback(PrinterCallback)
    return trainer


def _make_trainer(kind: str, *, model_path: str, config, rows: list[dict[str, Any]], options, callbacks: list):
    import trl
    from datasets import Dataset
    from transformers import AutoTokenizer

    dataset = Dataset.from_list(rows)
    try:
        tokenizer = AutoTokenizer.from_pretrained(model_path)
        if tokenizer.pad_token is None:
            tokenizer.pad_token = tokenizer.eos_token
        if kind == "reward":
            return trl.RewardTrainer(model=model_path, args=config, train_dataset=dataset,
                                     processing_class=tokenizer, callbacks=callbacks)
        if kind == "dpo":
            return trl.DPOTrainer(model=model_path, args=config, train_dataset=dataset,
                                  processing_class=tokenizer, callbacks=callbacks)
        if kind == "kto":
            return trl.KTOTrainer(model=model_path, args=config, train_dataset=dataset,
                                  processing_class=tokenizer, callbacks=callbacks)
        tokenizer.padding_side = "left"
        return trl.GRPOTrainer(model=model_path, args=config, train_dataset=dataset, processing_class=tokenizer,
                               reward_funcs=reward_functions(options), callbacks=callbacks)
    except (OSError, EnvironmentError) as exc:
        raise UserError(f"cannot load the base model from {model_path}: {str(exc).strip().splitlines()[0]}") from None


def length_report(kind: str, trainer, *, given: int, max_length: int | None) -> dict[str, int]:
    """How many examples TRL dropped or will truncate, and why, from the dataset it actually kept."""
    kept = trainer.train_dataset
    report = {"given": given, "kept": len(kept), "max_length": max_length}
    if kind == "reward":
        report["dropped_too_long"] = given - len(kept)
    elif kind == "dpo":
        report["dropped_prompt_fills_max_length"] = given - len(kept)
        truncated = 0
        if max_length is not None:
            for prompt, chosen, rejected in zip(kept["prompt_ids"], kept["chosen_ids"], kept["rejected_ids"]):
                truncated += len(prompt) + max(len(chosen), len(rejected)) > max_length
        report["truncated"] = truncated
    elif kind == "kto":
        report["dropped_prompt_fills_max_length"] = given - len(kept)
        report["truncated"] = (sum(len(p) + len(c) > max_length for p, c in zip(kept["prompt_ids"], kept["completion_ids"]))
                               if max_length is not None else 0)
    return report


def make_progress_callback(stream=None):
    """A TrainerCallback printing one line per logged step and keeping the log history.
    ``stream`` defaults to ``sys.stderr`` as it is when a step is logged, not when this module
    was imported (a replaced and since closed stream would fail the run)."""
    from transformers import TrainerCallback

    class Progress(TrainerCallback):
        def __init__(self) -> None:
            self.history: list[dict[str, Any]] = []
            self.step = 0

        def on_step_end(self, args, state, control, **kwargs):
            self.step = state.global_step

        def on_log(self, args, state, control, logs=None, **kwargs):
            logs = dict(logs or {})
            self.history.append({"step": state.global_step, **logs})
            shown = " ".join(f"{k}={_short(v)}" for k, v in logs.items() if _shown(k))
            print(f"[lwz train] step {state.global_step}/{state.max_steps} {shown}", file=stream or sys.stderr,
                  flush=True)
            if logs.get("frac_reward_zero_std") == 1.0:
                print(f"[lwz train] step {state.global_step}: every group's rewards are equal, so the advantages "
                      "are zero and nothing is learned from this step", file=stream or sys.stderr, flush=True)

    return Progress()


def make_save_callback(engine, run_id: int):
    """A TrainerCallback recording, on the run's row, the step of each checkpoint TRL saves."""
    from transformers import TrainerCallback

    class RecordSave(TrainerCallback):
        def on_save(self, args, state, control, **kwargs):
            from storage.engine import session_scope
            from storage.models import TrainingRun

            with session_scope(engine) as session:
                run = session.get(TrainingRun, run_id)
                if run is not None:
                    run.last_saved_step = state.global_step
                    session.add(run)

    return RecordSave()


def quiet_known_warnings() -> None:
    """Silence the warnings this stack prints on every step, which bury the progress lines."""
    import warnings

    for pattern in QUIET_WARNINGS:
        warnings.filterwarnings("ignore", message=pattern)


def _shown(key: str) -> bool:
    return key in ("loss", "learning_rate", "grad_norm", "reward", "reward_std", "rewards/accuracies",
                   "rewards/margins", "accuracy", "margin", "completions/mean_length", "completions/clipped_ratio",
                   "frac_reward_zero_std",
                   "train_loss", "train_runtime") or key.startswith("rewards/")


def _short(value: Any) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)
