"""TRL trainers for the five run kinds, with CPU defaults and an honest count of truncation.

``build_config`` makes the TRL config without loading anything heavy (so bad values fail before
a model loads); ``build_trainer`` loads the model through TRL; ``length_report`` compares what
TRL kept and truncated against what it was given, because TRL's RewardTrainer drops long pairs
and DPOTrainer and KTOTrainer truncate them without saying so.

``max_length`` defaults to the base model's context (``max_position_embeddings``), not TRL's 1,024:
the texts this system exists for are thousands of words long. Checkpoints are TRL's own
(``save_strategy="steps"``), and ``--resume`` hands the latest to ``trainer.train``.

Continual pretraining (``pretrain``) is TRL's SFTTrainer on raw text with ``packing_strategy="wrapped"``:
each document gets an EOS, the documents are concatenated, and the stream is cut into sequences of
exactly ``max_length`` tokens (the last one shorter), so no token is dropped and no padding is trained
on. (TRL's default ``bfd`` packing would cut every document longer than ``max_length`` to its first
``max_length`` tokens: a book would lose all but its opening.) Tokens seen are transformers'
``num_input_tokens_seen``, kept in the trainer state, so a resumed run goes on counting.
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
    "pretrain": {"per_device_train_batch_size": 1, "learning_rate": 1e-5},
}

# SFTConfig fields a pretrain run fixes: its rows are {"text": ...}, and they are always packed.
PRETRAIN_FIXED = {"dataset_text_field": "text", "packing": True}
# Packing strategies that keep every token: "wrapped" (the default) and "bfd_split" (documents kept
# apart, padding-free, for FlashAttention on a GPU). "bfd" truncates each document to max_length.
PRETRAIN_PACKING = ("wrapped", "bfd_split")


# Messages (regular expressions) of warnings repeated at every step on this stack.
QUIET_WARNINGS = (r"`is_gradient_checkpointing` is deprecated",)


def has_gpu() -> bool:
    import torch

    return torch.cuda.is_available()


def build_config(options, *, gpu: bool, context: int | None = None):
    """The TRL config for ``options`` (flags > YAML > CPU defaults). Invalid values are UserErrors.

    ``context`` (the base model's, in tokens) is the default ``max_length`` of reward/dpo/kto and
    pretrain runs; a pretrain ``max_length`` past it is refused with both numbers.
    """
    import trl

    from training.options import DEFAULT_SAVE_STEPS, PAIR_KINDS

    classes = {"reward": trl.RewardConfig, "dpo": trl.DPOConfig, "kto": trl.KTOConfig, "grpo": trl.GRPOConfig,
               "pretrain": trl.SFTConfig}
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
    if options.kind in PAIR_KINDS + ("pretrain",) and context is not None:
        values["max_length"] = context
    if options.kind == "pretrain":
        values.update({**PRETRAIN_FIXED, "packing_strategy": "wrapped", "include_num_input_tokens_seen": "non_padding"})
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
    if options.kind == "pretrain":
        _check_pretrain(values, options, context=context)
    try:
        return cls(**values)
    except (ValueError, TypeError) as exc:
        raise UserError(f"invalid {options.kind} config: {str(exc).strip().splitlines()[0]}") from None


def _check_pretrain(values: dict[str, Any], options, *, context: int | None) -> None:
    """Refuse a pretrain config that would drop text or read past the model's positions."""
    source = options.config_path or "the config"
    for key, fixed in PRETRAIN_FIXED.items():
        if values[key] != fixed:
            raise UserError(f"{source}: pretrain fixes {key}: {fixed!r}, got {values[key]!r}")
    if values["packing_strategy"] not in PRETRAIN_PACKING:
        raise UserError(f"{source}: packing_strategy {values['packing_strategy']!r} would cut each document to "
                        f"max_length tokens; pretrain packs with {' or '.join(PRETRAIN_PACKING)}")
    if values["packing_strategy"] == "bfd_split":  # padding-free: no attention mask, and the pad token is EOS
        values["include_num_input_tokens_seen"] = "all"
    length = values.get("max_length")
    given = f"--max-length {length}" if options.max_length is not None else f"max_length: {length} in {source}"
    if length is None or length < 1:
        raise UserError(f"{given}: pretrain packs its text into sequences of max_length tokens; give --max-length N")
    if context is not None and length > context:
        raise UserError(f"{given} is longer than the model's context ({context} tokens, max_position_embeddings): "
                        f"give --max-length {context} or less")


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
        if kind == "pretrain":
            return trl.SFTTrainer(model=model_path, args=config, train_dataset=dataset, processing_class=tokenizer,
                                  callbacks=callbacks)
        tokenizer.padding_side = "left"
        return trl.GRPOTrainer(model=model_path, args=config, train_dataset=dataset, processing_class=tokenizer,
                               reward_funcs=reward_functions(options), callbacks=callbacks)
    except (OSError, EnvironmentError) as exc:
        raise UserError(f"cannot load the base model from {model_path}: {str(exc).strip().splitlines()[0]}") from None


def length_report(kind: str, trainer, *, given: int, max_length: int | None) -> dict[str, int]:
    """How many examples TRL dropped or will truncate, and why, from the dataset it actually kept.
    For pretrain: the documents given, and the sequences and tokens TRL packed them into."""
    kept = trainer.train_dataset
    if kind == "pretrain":
        return {"documents": given, "max_length": max_length, **packed_tokens(kept, max_length=max_length)}
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


def packed_tokens(dataset, *, max_length: int) -> dict[str, int]:
    """The tokens in a packed dataset (one epoch) and how many of its sequences are ``max_length`` long,
    counted in Arrow (no Python list per sequence: a corpus has millions)."""
    import pyarrow.compute as pc

    lengths = pc.list_value_length(dataset.data.column("input_ids"))
    tokens = pc.sum(lengths).as_py() or 0
    full = pc.sum(pc.equal(lengths, max_length)).as_py() or 0
    return {"sequences": len(dataset), "tokens": int(tokens), "full_sequences": int(full)}


def make_progress_callback(stream=None):
    """A TrainerCallback printing one line per logged step and keeping the log history.
    ``stream`` defaults to ``sys.stderr`` as it is when a step is logged, not when this module
    was imported (a replaced and since closed stream would fail the run). ``tokens`` is the
    trainer state's ``num_input_tokens_seen`` (0 unless the config counts them), ``tokens_at_start``
    its value when training began (a resumed run starts from its checkpoint's count)."""
    from transformers import TrainerCallback

    class Progress(TrainerCallback):
        def __init__(self) -> None:
            self.history: list[dict[str, Any]] = []
            self.step = 0
            self.tokens = self.tokens_at_start = 0

        def on_train_begin(self, args, state, control, **kwargs):
            self.tokens = self.tokens_at_start = state.num_input_tokens_seen

        def on_step_end(self, args, state, control, **kwargs):
            self.step, self.tokens = state.global_step, state.num_input_tokens_seen

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
                   "frac_reward_zero_std", "num_input_tokens_seen",
                   "train_loss", "train_runtime") or key.startswith("rewards/")


def _short(value: Any) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)
