"""TRL trainers for the three run kinds, with CPU defaults and an honest count of truncation.

``build_config`` makes the TRL config without loading anything heavy (so bad values fail before
a model loads); ``build_trainer`` loads the model through TRL; ``length_report`` compares what
TRL kept and truncated against what it was given, because TRL's RewardTrainer drops long pairs
and DPOTrainer truncates them without saying so.
"""

from __future__ import annotations

import sys
from typing import Any

from core.errors import UserError

CPU_DEFAULTS = {
    "reward": {"per_device_train_batch_size": 2, "max_length": 1024, "learning_rate": 1e-5},
    "dpo": {"per_device_train_batch_size": 2, "max_length": 1024, "learning_rate": 5e-6, "beta": 0.1},
    "grpo": {"per_device_train_batch_size": 4, "num_generations": 4, "max_completion_length": 128,
             "learning_rate": 1e-6},
}


def has_gpu() -> bool:
    import torch

    return torch.cuda.is_available()


def build_config(options, *, gpu: bool):
    """The TRL config for ``options`` (flags > YAML > CPU defaults). Invalid values are UserErrors."""
    import trl

    classes = {"reward": trl.RewardConfig, "dpo": trl.DPOConfig, "grpo": trl.GRPOConfig}
    cls = classes[options.kind]
    fields = set(cls.__dataclass_fields__)
    unknown = sorted(k for k in options.config if k not in fields)
    if unknown:
        raise UserError(f"{options.config_path or 'config'}: unknown {cls.__name__} field(s) {', '.join(unknown)}")
    values: dict[str, Any] = dict(CPU_DEFAULTS[options.kind]) if not gpu else {}
    values.update({
        "output_dir": options.out, "seed": options.seed, "logging_steps": 1, "save_strategy": "no",
        "report_to": [], "disable_tqdm": True, "num_train_epochs": 1,
        "activation_checkpointing": gpu, "model_init_kwargs": {"dtype": "bfloat16" if gpu else "float32"},
    })
    if not gpu:
        values.update({"use_cpu": True, "bf16": False})
    if options.kind == "dpo":
        values["precompute_ref_log_probs"] = True
    if options.kind == "grpo":
        values["scale_rewards"] = "none" if options.combine == "paper" else "group"
        if options.vllm_server:
            values.update({"use_vllm": True, "vllm_mode": "server", "vllm_server_base_url": options.vllm_server})
    values.update(options.config)
    for flag, key in (("max_steps", "max_steps"), ("learning_rate", "learning_rate"),
                      ("batch_size", "per_device_train_batch_size"), ("max_length", "max_length"),
                      ("num_generations", "num_generations"), ("max_completion_length", "max_completion_length")):
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


def reward_functions(options, *, num_generations: int) -> list:
    """The GRPO reward functions named by ``options.rewards``, combined as ``options.combine`` says."""
    from training.rewards import AntiHackingPenalty, FormatReward, GroupAveragedReward, LengthReward, QualityReward

    makers = {
        "length": lambda: LengthReward(tolerance=options.prompts_tolerance),
        "format": lambda: FormatReward(),
        "anti_hacking": lambda: AntiHackingPenalty(),
        "quality": lambda: QualityReward(options.reward_model),
    }
    funcs = [makers[name]() for name in options.rewards]
    if options.combine == "paper":
        return [GroupAveragedReward(funcs, num_generations=num_generations)]
    return funcs


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
        tokenizer.padding_side = "left"
        return trl.GRPOTrainer(model=model_path, args=config, train_dataset=dataset, processing_class=tokenizer,
                               reward_funcs=reward_functions(options, num_generations=config.num_generations),
                               callbacks=callbacks)
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

    return Progress()


def _shown(key: str) -> bool:
    return key in ("loss", "learning_rate", "grad_norm", "reward", "reward_std", "rewards/accuracies",
                   "rewards/margins", "accuracy", "margin", "completions/mean_length", "completions/clipped_ratio",
                   "train_loss", "train_runtime") or key.startswith("rewards/")


def _short(value: Any) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)
