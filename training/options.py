"""The options of one training run, checked for contradictions before any model is loaded.

``TrainOptions`` is what ``lwz train`` builds from its flags; ``--config YAML`` adds TRL config
fields (learning_rate, beta, num_generations, max_length, ...). Every check that can be done
without loading a model is done in :meth:`TrainOptions.check`, so a bad combination costs no time.

``pretrain`` (the paper's first stage, continual pretraining) reads plain text (``texts``, its
``--data FILE...``) instead of an ``lwz export`` dataset; the other kinds read ``data`` or the database.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from core.errors import UserError
from training.corpus import TABLE_SUFFIXES, TEXT_SUFFIXES, parse_mix
from training.kinds import COMBINES, GRPO_REWARDS, kind_of, kinds_taking, registering, takes

DEFAULT_SAVE_STEPS = 50
GATE_MAX_TOKENS = 320
DEFAULT_REWARDS = ("length", "format", "anti_hacking")
TEMPLATES = ("auto", "think", "direct", "none")
APIS = ("auto", "chat", "completions")

# The one map from flags to TRL config fields: build_config puts each given flag into its field, and
# a --config YAML key naming one of them must agree with the flag.
FLAG_FIELDS = {"max_steps": "max_steps", "learning_rate": "learning_rate", "seed": "seed",
               "batch_size": "per_device_train_batch_size", "max_length": "max_length", "save_steps": "save_steps",
               "num_generations": "num_generations", "max_completion_length": "max_completion_length"}


def _opt(default: Any = None, help: str = "", **cli: Any) -> Any:
    """A field whose metadata is its command-line flag: ``help`` plus argparse extras
    (``flag``, ``metavar``, ``choices``, ``required``, ``group``, ``parse``).
    ``lwz_cli.train`` builds every ``lwz train KIND`` flag from these; nothing is retyped there. Which
    kinds take a field is ``training.kinds``'s to say (``Kind.flags``)."""
    metadata = {"help": help, **cli}
    if isinstance(default, (dict, list)):
        return field(default_factory=lambda: type(default)(default), metadata=metadata)
    return field(default=default, metadata=metadata)


@dataclass
class TrainOptions:
    """One ``lwz train`` invocation. Defaults are sized for a CPU and the bundled 135M model.

    Each field's metadata is the flag's help (``field(metadata={"help": ...})``, as TRL's
    ``HfArgumentParser`` reads its configs); fields without ``help`` are not flags. Fields whose
    default is None and that a recipe may set (``rewards``, ``combine``, ``seed``) are filled by
    :meth:`check`: the flag, else the ``--recipe``'s value, else the built-in default.
    """

    kind: str
    base: str = _opt(help="registered model name or a Hugging Face model folder", metavar="MODEL", required=True)
    out: str = _opt(help="output folder (new or empty; with --resume, the run's folder)", metavar="DIR",
                    required=True)
    data: str | None = _opt(help="dataset file from lwz export (.parquet/.jsonl)", metavar="FILE", group="source")
    from_db: bool = _opt(False, help="build the dataset from the database instead", group="source")
    texts: tuple[str, ...] = _opt((), flag="--data", metavar="FILE", parse="files",
                                  required=True,
                                  help="text to pretrain on: .txt/.md files (each file one document) or .jsonl/.parquet "
                                       "files (each row of --text-column one document); several files, separated by "
                                       "spaces or commas")
    mix: tuple[str, ...] = _opt((), metavar="FILE=RATIO", parse="files",
                                help="further sources mixed in by share of documents, e.g. cot.jsonl=0.01 (the "
                                     "paper's 1%% long chain-of-thought); --data takes the rest")
    text_column: str = _opt("text", metavar="NAME",
                            help="the column holding the text in .jsonl/.parquet files")
    max_steps: int | None = _opt(help="stop after N optimiser steps (default: one epoch)")
    config_path: str | None = _opt(help="extra TRL config fields (YAML)", flag="--config", metavar="YAML")
    register: str | None = _opt(help="register the checkpoint as a local model under this name (dpo/kto/grpo, "
                                     "and pretrain, which has no reward to hack and so no gate)", metavar="NAME")
    force: bool = _opt(False,
                       help="register even when the reward-hacking gate finds a regression (the run records it)")
    gate_prompts: str | None = _opt(metavar="FILE",
                                    help="held-out prompts for the reward-hacking gate (JSON lines with prompt and "
                                         "length; default: the few shipped in training/gate_prompts.jsonl)")
    gate_max_tokens: int = _opt(GATE_MAX_TOKENS,
                                help="token limit per gate text, for the parent and the checkpoint alike")
    learning_rate: float | None = _opt(help="optimiser learning rate (default: a CPU-sized one per kind)")
    batch_size: int | None = _opt(help="per-device batch size")
    seed: int | None = _opt(help="seed for data order, dropout and sampling (default: the config's seed, else 0)")
    template: str = _opt("auto", help="prompt rendering (default: the recipe's, else the base model entry's template)",
                         choices=TEMPLATES)
    api: str = _opt("auto", choices=APIS,
                    help="how the model is served, so that it is trained on what it is served: chat (the tokenizer's "
                         "chat template) or completions (the template's exact raw prompt, as LongWriter-Zero is "
                         "served with --api completions); default: the recipe's, else the base model entry's, else chat")
    recipe: str | None = _opt(metavar="NAME",
                              help="a published run's settings (longwriter-zero: the paper's RL stage), under "
                                   "--config and the flags")
    save_steps: int | None = _opt(help=f"save a TRL checkpoint every N steps (default {DEFAULT_SAVE_STEPS})")
    resume: bool = _opt(False, help="resume from the latest checkpoint in --out (TRL's own checkpointing)")
    max_length: int | None = _opt(help="token limit per sequence (default: the base model's context); "
                                       "longer examples are counted, never silently; pretrain packs its text into "
                                       "sequences of this length")
    rewards: tuple[str, ...] | None = _opt(parse="comma",
                                           help=f"comma list of {', '.join(GRPO_REWARDS)} (default: the recipe's, "
                                                f"else {','.join(DEFAULT_REWARDS)})")
    combine: str | None = _opt(choices=COMBINES,
                               help="paper (default): normalise each reward within its group, then average (TRL's "
                                    "normalize_then_sum, equal weights); sum: TRL's weighted sum, then normalise")
    reward_model: str | None = _opt(help="reward model folder (from lwz train reward) for the quality reward",
                                    metavar="DIR")
    reward_device: str = _opt("auto", metavar="DEVICE",
                              help="where the quality reward's model runs: auto (this rank's GPU, else the CPU), cpu, "
                                   "cuda, cuda:N")
    vllm_server: str | None = _opt(help="a `trl vllm-serve` server for rollouts (GPU hosts)",
                                   metavar="URL")
    num_generations: int | None = _opt(help="completions per prompt (a group)")
    max_completion_length: int | None = _opt(help="token limit per completion")
    prompts_tolerance: float = _opt(0.2, help="range target*(1±tolerance) for prompts without min/max_words",
                                    flag="--tolerance")
    default_words: int | None = _opt(help="target for --from-db prompts without one")
    l_max: int | None = _opt(help="L_max in words: the length reward reaches 0 there (default: twice each "
                                  "prompt's max_words)", flag="--l-max", metavar="WORDS")
    config: dict[str, Any] = _opt({})
    filters: Any = None  # training.preferences.PreferenceFilters, for --from-db

    def check(self) -> None:
        """Reject contradictory or impossible options with a message saying what to change.

        First fills what was left unsaid (see the class docstring), so a checked run records every value."""
        kind = kind_of(self.kind)
        if not self.base or not self.out:
            raise UserError("--base MODEL and --out DIR are required")
        self._fill_defaults()
        if kind.reads_texts:
            self._check_texts()
        elif self.texts:
            raise UserError(f"texts (plain text files) are for pretrain; a {self.kind} run reads --data FILE or --from-db")
        elif bool(self.data) == bool(self.from_db):
            raise UserError("give exactly one of --data FILE or --from-db")
        if self.data and not Path(self.data).is_file():
            raise UserError(f"no such dataset file: {self.data}")
        for name in ("max_steps", "batch_size", "max_length", "num_generations", "max_completion_length",
                     "save_steps", "l_max", "gate_max_tokens"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise UserError(f"--{name.replace('_', '-')} must be at least 1, got {value}")
        if self.learning_rate is not None and not self.learning_rate > 0:
            raise UserError(f"--learning-rate must be positive, got {self.learning_rate}")
        if self.template not in TEMPLATES:
            raise UserError(f"--template must be one of {', '.join(TEMPLATES)}, got {self.template!r}")
        if self.api not in APIS:
            raise UserError(f"--api must be one of {', '.join(APIS)}, got {self.api!r}")
        out = Path(self.out)
        if self.resume:
            if not latest_checkpoint(out):
                raise UserError(f"--resume: no checkpoint-N folder in {out} to resume from")
        elif is_main_process() and out.exists() and (not out.is_dir() or any(out.iterdir())):
            raise UserError(f"output folder {out} is not empty: choose a new --out, or --resume a run")
        if self.register and kind.registers is None:
            raise UserError(f"a {self.kind} model scores texts and cannot write: --register is for "
                            f"{', '.join(registering('gate') + registering('direct'))} runs")
        if kind.registers == "direct" and (self.force or self.gate_prompts):
            raise UserError(f"--force and --gate-prompts belong to the reward-hacking gate, which {self.kind} runs do "
                            "not pass through (no reward to hack)")
        if not self.register and (self.force or self.gate_prompts):
            raise UserError("--force and --gate-prompts apply to the gate before --register NAME; give --register too")
        if self.register and kind.registers == "gate" and is_main_process():
            from training.gate import load_gate_prompts

            load_gate_prompts(self.gate_prompts)
        if kind.check is not None:
            kind.check(self)
        defaults = {f.name: f.default for f in dataclasses.fields(self)}
        given = [f for f in dataclasses.fields(self) if f.metadata.get("help") and not takes(self.kind, f.name)
                 and getattr(self, f.name) not in (defaults[f.name], None, ())]
        if given:
            flags = ", ".join(f.metadata.get("flag") or "--" + f.name.replace("_", "-") for f in given)
            raise UserError(f"{flags} only apply to {', '.join(kinds_taking(given[0].name))}, not to a {self.kind} run")
        for flag, key in FLAG_FIELDS.items():
            value = getattr(self, flag)
            if value is not None and key in self.config and self.config[key] != value:
                raise UserError(f"--{flag.replace('_', '-')} {value} contradicts {key}: {self.config[key]} in "
                                f"{self.config_path or 'the config'}; give it once")

    def _fill_defaults(self) -> None:
        """Options left unsaid: the recipe's value, else the built-in default (rewards, combine, template,
        api only where the kind takes them; seed: the config's, else 0)."""
        from training.recipes import recipe_named

        recipe = recipe_named(self.recipe, kind=self.kind)
        unset = {"rewards": None, "combine": None, "template": "auto", "api": "auto"}
        for name, value in (recipe.options.items() if recipe else ()):
            if getattr(self, name) == unset[name]:
                setattr(self, name, tuple(value) if isinstance(value, (list, tuple)) else value)
        if takes(self.kind, "rewards"):
            self.rewards = self.rewards if self.rewards is not None else DEFAULT_REWARDS
            self.combine = self.combine or "paper"
        if self.seed is None:
            self.seed = int(self.config.get("seed", 0))

    def _check_texts(self) -> None:
        """pretrain's text files: given, existing, of a kind it reads, each once (contents: ``training.data``)."""
        if self.data or self.from_db:
            raise UserError("pretrain reads plain text files (texts, the --data FILE... of lwz train pretrain), "
                            "not an export dataset or the database")
        if not self.texts:
            raise UserError("pretrain needs --data FILE...: .txt/.md files or .jsonl/.parquet files with a text column")
        seen: set[Path] = set()
        for name in self.texts:
            path = Path(name)
            if not path.is_file():
                raise UserError(f"no such text file: {name}")
            if path.suffix.lower() not in TEXT_SUFFIXES + TABLE_SUFFIXES:
                raise UserError(f"{name}: pretrain reads {'/'.join(TEXT_SUFFIXES)} files (each one document) or "
                                f"{'/'.join(TABLE_SUFFIXES)} files with a {self.text_column!r} column")
            if path.resolve() in seen:
                raise UserError(f"{name} is given twice in --data")
            seen.add(path.resolve())
        for name, _ in parse_mix(self.mix):
            path = Path(name)
            if not path.is_file():
                raise UserError(f"--mix: no such text file: {name}")
            if path.suffix.lower() not in TEXT_SUFFIXES + TABLE_SUFFIXES:
                raise UserError(f"--mix {name}: pretrain reads {'/'.join(TEXT_SUFFIXES + TABLE_SUFFIXES)} files")
            if path.resolve() in seen:
                raise UserError(f"{name} is given twice (in --data and --mix)")
            seen.add(path.resolve())
        if not self.text_column or not self.text_column.strip():
            raise UserError("--text-column needs a column name")

    def record(self) -> dict[str, Any]:
        """JSON-ready copy for the training-runs table."""
        record = {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.name != "filters"}
        record["rewards"] = list(self.rewards) if self.rewards is not None else None
        record["texts"] = list(self.texts)
        record["mix"] = list(self.mix)
        if self.filters is not None:
            record["filters"] = self.filters.as_record()
        return record


def latest_checkpoint(out) -> str | None:
    """The ``checkpoint-N`` folder with the highest N in ``out`` (TRL's layout), or None."""
    folder = Path(out)
    if not folder.is_dir():
        return None
    found = [(int(p.name.split("-", 1)[1]), p) for p in folder.glob("checkpoint-*")
             if p.is_dir() and p.name.split("-", 1)[1].isdigit()]
    return str(max(found)[1]) if found else None


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
