"""The options of one training run, checked for contradictions before any model is loaded.

``TrainOptions`` is what ``lwz train`` builds from its flags; ``--config YAML`` adds TRL config
fields (learning_rate, beta, num_generations, max_length, ...). Every check that can be done
without loading a model is done in :meth:`TrainOptions.check`, so a bad combination costs no time.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from core.errors import UserError

KINDS = ("reward", "dpo", "grpo")
GRPO_REWARDS = ("length", "format", "anti_hacking", "quality")
COMBINES = ("paper", "sum")
TEMPLATES = ("think", "direct", "none", "auto")

# Flags that map onto TRL config fields: a YAML key naming one of them must agree with the flag.
FLAG_FIELDS = {"max_steps": "max_steps", "learning_rate": "learning_rate", "seed": "seed",
               "batch_size": "per_device_train_batch_size", "max_length": "max_length"}


@dataclass
class TrainOptions:
    """One ``lwz train`` invocation. Defaults are sized for a CPU and the bundled 135M model."""

    kind: str
    base: str = field(metadata={"help": "registered model name or a Hugging Face model folder"})
    out: str = field(metadata={"help": "output folder (must be new or empty)"})
    data: str | None = field(default=None, metadata={"help": "dataset file from lwz export (.parquet/.jsonl)"})
    from_db: bool = field(default=False, metadata={"help": "build the dataset from the database instead"})
    max_steps: int | None = field(default=None, metadata={"help": "stop after N optimiser steps (default: 1 epoch)"})
    learning_rate: float | None = field(default=None, metadata={"help": "optimiser learning rate (TRL default)"})
    batch_size: int | None = field(default=None, metadata={"help": "per-device batch size"})
    max_length: int | None = field(default=None, metadata={"help": "token limit per sequence (reward/dpo)"})
    seed: int = field(default=0, metadata={"help": "seed for data order, dropout and sampling"})
    register: str | None = field(default=None, metadata={"help": "register the checkpoint under this model name"})
    template: str = field(default="auto", metadata={"help": "prompt rendering: the base entry's template by default"})
    config: dict[str, Any] = field(default_factory=dict, metadata={"help": "extra TRL config fields (YAML)"})
    config_path: str | None = None
    rewards: tuple[str, ...] = ("length", "format", "anti_hacking")
    combine: str = "paper"
    reward_model: str | None = None
    vllm_server: str | None = None
    num_generations: int | None = None
    max_completion_length: int | None = None
    prompts_tolerance: float = 0.2
    default_words: int | None = None
    filters: Any = None  # training.preferences.PreferenceFilters, for --from-db

    def check(self) -> None:
        """Reject contradictory or impossible options with a message saying what to change."""
        if self.kind not in KINDS:
            raise UserError(f"unknown training kind {self.kind!r}: choose {', '.join(KINDS)}")
        if bool(self.data) == bool(self.from_db):
            raise UserError("give exactly one of --data FILE or --from-db")
        if self.data and not Path(self.data).is_file():
            raise UserError(f"no such dataset file: {self.data}")
        for name in ("max_steps", "batch_size", "max_length", "num_generations", "max_completion_length"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise UserError(f"--{name.replace('_', '-')} must be at least 1, got {value}")
        if self.learning_rate is not None and not self.learning_rate > 0:
            raise UserError(f"--learning-rate must be positive, got {self.learning_rate}")
        if self.template not in TEMPLATES:
            raise UserError(f"--template must be one of {', '.join(TEMPLATES)}, got {self.template!r}")
        out = Path(self.out)
        if is_main_process() and out.exists() and (not out.is_dir() or any(out.iterdir())):
            raise UserError(f"output folder {out} is not empty: choose a new --out")
        if self.kind == "reward" and self.register:
            raise UserError("a reward model scores texts and cannot write: --register is for dpo and grpo runs")
        grpo_only = {"--vllm-server": self.vllm_server, "--reward-model": self.reward_model,
                     "--num-generations": self.num_generations, "--max-completion-length": self.max_completion_length}
        if self.kind != "grpo":
            given = [flag for flag, value in grpo_only.items() if value is not None]
            if given:
                raise UserError(f"{', '.join(given)} only apply to grpo, not to a {self.kind} run")
        else:
            if self.max_length is not None:
                raise UserError("--max-length limits reward/dpo sequences; for grpo use --max-completion-length")
            unknown = [r for r in self.rewards if r not in GRPO_REWARDS]
            if unknown or not self.rewards:
                raise UserError(f"--rewards takes a comma list of {', '.join(GRPO_REWARDS)}, got {','.join(self.rewards)!r}")
            if "quality" in self.rewards and not self.reward_model:
                raise UserError("the quality reward needs --reward-model DIR (a folder from lwz train reward)")
            if self.reward_model and "quality" not in self.rewards:
                raise UserError("--reward-model is given but 'quality' is not in --rewards")
            if self.reward_model and not (Path(self.reward_model) / "config.json").is_file():
                raise UserError(f"--reward-model {self.reward_model} is not a model folder (no config.json)")
            if self.combine not in COMBINES:
                raise UserError(f"--combine must be one of {', '.join(COMBINES)}, got {self.combine!r}")
            if self.vllm_server and not self.vllm_server.startswith(("http://", "https://")):
                raise UserError(f"--vllm-server must be an http(s) URL of a `trl vllm-serve` server, got {self.vllm_server!r}")
        for flag, key in FLAG_FIELDS.items():
            value = getattr(self, flag)
            if value is not None and key in self.config and self.config[key] != value and flag != "seed":
                raise UserError(f"--{flag.replace('_', '-')} {value} contradicts {key}: {self.config[key]} in "
                                f"{self.config_path or 'the config'}; give it once")

    def record(self) -> dict[str, Any]:
        """JSON-ready copy for the training-runs table."""
        record = {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.name != "filters"}
        record["rewards"] = list(self.rewards)
        if self.filters is not None:
            record["filters"] = self.filters.as_record()
        return record


def is_main_process() -> bool:
    """False on the other ranks of an ``accelerate launch``: only rank 0 checks, records and registers."""
    import os

    return int(os.environ.get("RANK", "0")) == 0


def load_yaml_config(path: str | None) -> dict[str, Any]:
    """The mapping in a YAML file (empty without a path). Errors name the file."""
    if path is None:
        return {}
    import yaml

    file = Path(path)
    if not file.is_file():
        raise UserError(f"no such config file: {path}")
    try:
        data = yaml.safe_load(file.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as exc:
        raise UserError(f"{path}: not valid YAML ({str(exc).splitlines()[0]})") from None
    if not isinstance(data, dict):
        raise UserError(f"{path}: expected a mapping of TRL config fields, got {type(data).__name__}")
    return data
