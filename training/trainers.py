"""TRL trainers for the five run kinds, with CPU defaults and an honest count of truncation.

``build_config`` makes the TRL config without loading anything heavy (so bad values fail before
a model loads); ``build_trainer`` loads the model through TRL; ``length_report`` compares what
TRL kept and truncated against what it was given, because TRL's RewardTrainer drops long pairs
and DPOTrainer and KTOTrainer truncate them without saying so.

``max_length`` defaults to the base model's context (``max_position_embeddings``), not TRL's 1,024:
the texts this system exists for are thousands of words long. Checkpoints are TRL's own
(``save_strategy="steps"``), and ``--resume`` hands the latest to ``trainer.train``.

What differs between kinds (config class, trainer, defaults, checks, reports) is ``training.kinds``'s;
this module only follows it.

Continual pretraining (``pretrain``) is TRL's SFTTrainer on raw text with ``packing_strategy="wrapped"``:
each document gets an EOS, the documents are concatenated, and the stream is cut into sequences of
exactly ``max_length`` tokens (the last one shorter), so no token is dropped and no padding is trained
on. (TRL's default ``bfd`` packing would cut every document longer than ``max_length`` to its first
``max_length`` tokens: a book would lose all but its opening.) Tokens seen are transformers'
``num_input_tokens_seen``, kept in the trainer state, so a resumed run goes on counting.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

from core.errors import UserError

ROWS_FOLDER = ".lwz_rows"  # the training rows on disk, under several processes (removed after the run)

# Messages (regular expressions) of warnings repeated at every step on this stack.
QUIET_WARNINGS = (r"`is_gradient_checkpointing` is deprecated",)


def has_gpu() -> bool:
    import torch

    return torch.cuda.is_available()


def build_config(options, *, gpu: bool, context: int | None = None):
    """The TRL config for ``options``: flags > YAML > recipe > the kind's fixed values and defaults
    (``training.kinds``). Invalid values are UserErrors.

    ``context`` (the base model's, in tokens) is the default ``max_length`` of the kinds that say so
    (reward/dpo/kto, pretrain); a pretrain ``max_length`` past it is refused with both numbers.
    """
    cls, values = config_values(options, gpu=gpu, context=context)
    try:
        return cls(**values)
    except (ValueError, TypeError) as exc:
        raise UserError(f"invalid {options.kind} config: {str(exc).strip().splitlines()[0]}") from None


def config_values(options, *, gpu: bool, context: int | None = None) -> tuple[type, dict[str, Any]]:
    """The TRL config class and the values :func:`build_config` gives it (a GPU's can be read on a CPU)."""
    import trl

    from training.kinds import kind_of
    from training.options import DEFAULT_SAVE_STEPS, FLAG_FIELDS
    from training.recipes import recipe_named

    kind = kind_of(options.kind)
    cls = getattr(trl, kind.config)
    fields = set(cls.__dataclass_fields__)
    unknown = sorted(k for k in options.config if k not in fields)
    if unknown:
        raise UserError(f"{options.config_path or 'config'}: unknown {cls.__name__} field(s) {', '.join(unknown)}")
    values: dict[str, Any] = dict(kind.gpu_defaults if gpu else kind.cpu_defaults)
    values.update({
        "output_dir": options.out, "seed": 0, "logging_steps": 1, "save_strategy": "steps",
        "save_steps": DEFAULT_SAVE_STEPS, "save_total_limit": 2,
        "report_to": [], "disable_tqdm": True, "num_train_epochs": 1,
        "activation_checkpointing": gpu, "model_init_kwargs": {"dtype": "bfloat16" if gpu else "float32"},
    })
    if not gpu:
        values.update({"use_cpu": True, "bf16": False})
    if kind.context_max_length and context is not None:
        values["max_length"] = context
    values.update(kind.fixed)
    recipe = recipe_named(getattr(options, "recipe", None), kind=options.kind)
    if recipe is not None:
        values.update(recipe.config)
    values.update(options.config)
    for flag, key in FLAG_FIELDS.items():
        value = getattr(options, flag)
        if value is not None:
            values[key] = value
    if kind.configure is not None:
        kind.configure(values, options, context)
    return cls, values


def build_trainer(kind: str, *, model_path: str, config, rows: list[dict[str, Any]], options, callbacks: list):
    """Load the model through TRL and return the trainer. Load failures are UserErrors.

    The transformers printer (which writes log dicts to stdout) is removed: progress goes to
    stderr through ``callbacks``, and stdout stays free for ``--json``.
    """
    import trl
    from transformers import AutoTokenizer
    from transformers.trainer_callback import PrinterCallback

    from training.kinds import kind_of

    registered = kind_of(kind)
    extra = registered.trainer_kwargs(options) if registered.trainer_kwargs else {}
    try:
        tokenizer = AutoTokenizer.from_pretrained(model_path)
        if tokenizer.pad_token is None:
            tokenizer.pad_token = tokenizer.eos_token
        if registered.generates:
            tokenizer.padding_side = "left"
        dataset = rows_dataset(rows, shared=Path(config.output_dir) / ROWS_FOLDER)
        trainer = getattr(trl, registered.trainer)(model=model_path, args=config, train_dataset=dataset,
                                                   processing_class=tokenizer, callbacks=callbacks, **extra)
    except (OSError, EnvironmentError) as exc:
        raise UserError(f"cannot load the base model from {model_path}: {str(exc).strip().splitlines()[0]}") from None
    trainer.remove_callback(PrinterCallback)
    return trainer


def rows_dataset(rows, *, shared: Path | None = None):
    """The rows as a ``datasets.Dataset`` (a list of dicts), or as they are when already a dataset
    (a streamed corpus is an ``IterableDataset``).

    Under several processes the dataset lives in ``shared`` (a folder every rank sees): rank 0 writes
    it first, and TRL's tokenising ``map`` then caches next to it, where the other ranks find rank 0's
    result. An in-memory dataset would cache in each process's own temporary folder, and the other
    ranks fail to open rank 0's files."""
    from datasets import Dataset, IterableDataset, load_from_disk

    if isinstance(rows, (Dataset, IterableDataset)):
        return rows
    if shared is None or int(os.environ.get("WORLD_SIZE", "1")) < 2:
        return Dataset.from_list(rows)
    from accelerate import PartialState

    with PartialState().main_process_first():
        if PartialState().is_main_process:
            Dataset.from_list(rows).save_to_disk(str(shared))
    return load_from_disk(str(shared))


def length_report(kind: str, trainer, *, given: int, max_length: int | None) -> dict[str, Any]:
    """How many examples TRL dropped or will truncate, and why, from the dataset it actually kept
    (each kind's own report, ``training.kinds``)."""
    from training.kinds import kind_of

    return kind_of(kind).lengths(trainer, given, max_length)


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
