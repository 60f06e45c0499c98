"""The training kinds, registered once: what each kind trains with and what only it takes.

Every question of the form "which kind is this?" is answered here and nowhere else: the TRL
config class and trainer, the loader of its rows (``training.data``), the flags that only some
kinds take, the CPU (and GPU) defaults and the config values the kind fixes, whether its
``max_length`` defaults to the model's context, how it registers (through the reward-hacking gate,
directly, or not at all), whether its rows are battles chosen by the vote filters, its own option
checks and config step, and the report of what TRL kept of its rows. The options, the trainer
factory, the runner and the command line ask :func:`kind_of` and read the answer.

Nothing heavy at import: TRL classes are named, and looked up when a run builds them.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping

from core.errors import UserError
from training import corpus, data

GRPO_REWARDS = ("length", "format", "anti_hacking", "quality")
COMBINES = ("paper", "sum")
AGGREGATION = {"paper": "normalize_then_sum", "sum": "sum_then_normalize"}
# Packing strategies that keep every token: "wrapped" (the default) and "bfd_split" (documents kept
# apart, padding-free, for FlashAttention on a GPU). "bfd" truncates each document to max_length.
PRETRAIN_PACKING = ("wrapped", "bfd_split")
PRETRAIN_FIXED = {"dataset_text_field": "text", "packing": True}
# The paper's rollout numbers (LongWriter-Zero, arXiv 2506.18841): a grpo run on a GPU without a
# recipe or a config gets these, never TRL's small defaults (``training.recipes`` holds the rest).
PAPER_ROLLOUT = {"num_generations": 32, "max_completion_length": 14_000, "temperature": 0.8, "top_p": 1.0,
                 "epsilon": 0.2, "beta": 0.0}


THROUGH_GATE, UNGATED = "gate", "direct"
"""How a finished run registers its checkpoint: through the reward-hacking gate, or without it."""


@dataclass(frozen=True)
class Kind:
    """One training kind. ``rows(options, session_factory, *, template, api)`` returns
    ``(rows, fingerprint, report)``; ``check(options)`` rejects options only this kind cares about;
    ``configure(values, options, context)`` finishes the TRL config values after flags and YAML;
    ``trainer_kwargs(options)`` adds trainer arguments; ``lengths(trainer, given, max_length)``
    reports what TRL kept, dropped and will truncate."""

    name: str
    help: str
    config: str
    trainer: str
    rows: Callable[..., tuple[list, str, dict]]
    lengths: Callable[..., dict[str, Any]]
    flags: tuple[str, ...] = ()
    cpu_defaults: Mapping[str, Any] = field(default_factory=dict)
    gpu_defaults: Mapping[str, Any] = field(default_factory=dict)
    fixed: Mapping[str, Any] = field(default_factory=dict)
    context_max_length: bool = False
    registers: str | None = "gate"  # THROUGH_GATE: through the reward-hacking gate; UNGATED: without; None: cannot
    vote_filters: bool = False
    reads_texts: bool = False  # plain text files (pretrain), not an export dataset or the database
    unit: str = "examples"
    generates: bool = False  # the trainer writes rollouts (grpo): left padding, rollout and reward metrics
    check: Callable[[Any], None] | None = None
    configure: Callable[[dict, Any, int | None], None] | None = None
    trainer_kwargs: Callable[[Any], dict] | None = None


def _pair_lengths(trainer, given: int, max_length: int | None, *, completion: str | None) -> dict[str, Any]:
    kept = trainer.train_dataset
    report: dict[str, Any] = {"given": given, "kept": len(kept), "max_length": max_length}
    if completion is None:  # RewardTrainer drops pairs over max_length
        report["dropped_too_long"] = given - len(kept)
        return report
    report["dropped_prompt_fills_max_length"] = given - len(kept)
    truncated = 0
    if max_length is not None:
        columns = [kept[name] for name in ("prompt_ids", *completion.split(","))]
        for prompt, *rest in zip(*columns):
            truncated += len(prompt) + max(len(ids) for ids in rest) > max_length
    report["truncated"] = truncated
    return report


def _grpo_lengths(trainer, given: int, max_length: int | None) -> dict[str, Any]:
    return {"given": given, "kept": len(trainer.train_dataset), "max_length": max_length}


def _pretrain_lengths(trainer, given: int, max_length: int | None) -> dict[str, Any]:
    """A streamed corpus is tokenised and packed as training reads it: the tokens are counted as seen."""
    return {"documents": given, "max_length": max_length, "streamed": True}


def _check_grpo(options) -> None:
    if options.max_length is not None:
        raise UserError("--max-length limits reward/dpo sequences; for grpo use --max-completion-length")
    unknown = [r for r in options.rewards if r not in GRPO_REWARDS]
    if unknown or not options.rewards:
        raise UserError(f"--rewards takes a comma list of {', '.join(GRPO_REWARDS)}, got {','.join(options.rewards)!r}")
    if "quality" in options.rewards and not options.reward_model:
        raise UserError("the quality reward needs --reward-model DIR (a folder from lwz train reward)")
    if options.reward_model and "quality" not in options.rewards:
        raise UserError("--reward-model is given but 'quality' is not in --rewards")
    if options.reward_model and not (Path(options.reward_model) / "config.json").is_file():
        raise UserError(f"--reward-model {options.reward_model} is not a model folder (no config.json)")
    if options.reward_model:
        from training.checkpoints import check_reward_model

        check_reward_model(options.reward_model)
    if options.combine not in COMBINES:
        raise UserError(f"--combine must be one of {', '.join(COMBINES)}, got {options.combine!r}")
    if options.vllm_server and not options.vllm_server.startswith(("http://", "https://")):
        raise UserError(f"--vllm-server must be an http(s) URL of a `trl vllm-serve` server, got {options.vllm_server!r}")


def _configure_grpo(values: dict, options, context: int | None) -> None:
    """The paper's combination, rollouts from a server, and a generation batch that holds whole groups.

    TRL needs only the *generation* batch (the completions generated at once) to be a multiple of
    ``num_generations``; it is ``per_device_train_batch_size * processes * steps_per_generation``.
    Unless the config sets it, it is the least multiple of the group and of the optimiser batch, so
    any group TRL accepts is accepted here (a group of 32 with a batch of 4: 32 completions are
    generated at once and used over 8 optimiser micro-steps)."""
    if "multi_objective_aggregation" not in options.config:
        values["multi_objective_aggregation"] = AGGREGATION[options.combine]
    if options.combine == "paper" and "reward_weights" not in options.config:
        values["reward_weights"] = [1.0 / len(options.rewards)] * len(options.rewards)  # the paper's average
    if options.vllm_server:
        values.update({"use_vllm": True, "vllm_mode": "server", "vllm_server_base_url": options.vllm_server})
    group = values.get("num_generations", 8)
    if group < 2:
        raise UserError(f"grpo needs num_generations >= 2 to compare completions, got {group}")
    if values.get("generation_batch_size") is None and values.get("steps_per_generation") is None:
        step = (values.get("per_device_train_batch_size", 8) * int(os.environ.get("WORLD_SIZE", "1"))
                * values.get("gradient_accumulation_steps", 1))
        values["generation_batch_size"] = math.lcm(step, group)


def _configure_pretrain(values: dict, options, context: int | None) -> None:
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
    if values.get("max_steps") is None or values["max_steps"] < 1:
        raise UserError("pretrain streams its corpus from disk, so the run's length is not known before it is read: "
                        "give --max-steps N (each step reads batch size x gradient accumulation x max_length tokens)")
    length = values.get("max_length")
    given = f"--max-length {length}" if options.max_length is not None else f"max_length: {length} in {source}"
    if length is None or length < 1:
        raise UserError(f"{given}: pretrain packs its text into sequences of max_length tokens; give --max-length N")
    if context is not None and length > context:
        raise UserError(f"{given} is longer than the model's context ({context} tokens, max_position_embeddings): "
                        f"give --max-length {context} or less")


def reward_functions(options) -> list:
    """The GRPO reward functions named by ``options.rewards``, one TRL reward function each."""
    from training.rewards import AntiHackingPenalty, FormatReward, LengthReward, QualityReward

    makers = {
        "length": lambda: LengthReward(tolerance=options.prompts_tolerance, l_max=options.l_max),
        "format": lambda: FormatReward(),
        "anti_hacking": lambda: AntiHackingPenalty(),
        "quality": lambda: QualityReward(options.reward_model, device=options.reward_device),
    }
    return [makers[name]() for name in options.rewards]


_PAIR_DEFAULTS = {"per_device_train_batch_size": 2, "learning_rate": 5e-6, "beta": 0.1}

KINDS: dict[str, Kind] = {kind.name: kind for kind in (
    Kind("reward", "a reward model from preference pairs", "RewardConfig", "RewardTrainer", data.load_pairs,
         lambda t, g, m: _pair_lengths(t, g, m, completion=None),
         flags=("data", "from_db", "max_length"),
         cpu_defaults={"per_device_train_batch_size": 2, "learning_rate": 1e-5},
         context_max_length=True, registers=None, vote_filters=True),
    Kind("dpo", "DPO from preference pairs", "DPOConfig", "DPOTrainer", data.load_pairs,
         lambda t, g, m: _pair_lengths(t, g, m, completion="chosen_ids,rejected_ids"),
         flags=("data", "from_db", "max_length", "force", "gate_prompts", "gate_max_tokens"),
         cpu_defaults=_PAIR_DEFAULTS, fixed={"precompute_ref_log_probs": True}, context_max_length=True,
         vote_filters=True),
    Kind("kto", "KTO from desirable/undesirable rows (both-bad battles included)", "KTOConfig", "KTOTrainer",
         data.load_kto, lambda t, g, m: _pair_lengths(t, g, m, completion="completion_ids"),
         flags=("data", "from_db", "max_length", "force", "gate_prompts", "gate_max_tokens"),
         cpu_defaults=_PAIR_DEFAULTS, fixed={"precompute_ref_log_probs": True}, context_max_length=True,
         vote_filters=True),
    Kind("grpo", "GRPO on a prompt set with the LongWriter-Zero rewards", "GRPOConfig", "GRPOTrainer",
         data.load_prompts, _grpo_lengths,
         flags=("data", "from_db", "force", "gate_prompts", "gate_max_tokens", "recipe", "rewards", "combine",
                "reward_model", "reward_device", "vllm_server", "num_generations", "max_completion_length",
                "prompts_tolerance", "default_words", "l_max"),
         cpu_defaults={"per_device_train_batch_size": 4, "num_generations": 4, "max_completion_length": 128,
                       "learning_rate": 1e-6},
         gpu_defaults=PAPER_ROLLOUT, generates=True, check=_check_grpo, configure=_configure_grpo,
         trainer_kwargs=lambda options: {"reward_funcs": reward_functions(options)}),
    Kind("pretrain", "continual pretraining on plain text, packed into --max-length sequences", "SFTConfig",
         "SFTTrainer", corpus.load_texts, _pretrain_lengths,
         flags=("texts", "mix", "text_column", "max_length"),
         cpu_defaults={"per_device_train_batch_size": 1, "learning_rate": 1e-5},
         fixed={**PRETRAIN_FIXED, "packing_strategy": "wrapped", "include_num_input_tokens_seen": "non_padding"},
         context_max_length=True, registers=UNGATED, reads_texts=True, unit="documents",
         configure=_configure_pretrain),
)}

# Fields that only the kinds listing them take; every other option field is a flag of every kind.
KIND_FLAGS = frozenset(name for kind in KINDS.values() for name in kind.flags)


def kind_of(name: str) -> Kind:
    """The registered kind called ``name``; a UserError naming the kinds otherwise."""
    try:
        return KINDS[name]
    except KeyError:
        raise UserError(f"unknown training kind {name!r}: choose {', '.join(KINDS)}") from None


def takes(kind: str, field_name: str) -> bool:
    """Whether ``lwz train KIND`` has the option field ``field_name`` as a flag."""
    return field_name not in KIND_FLAGS or field_name in KINDS[kind].flags


def kinds_taking(field_name: str) -> list[str]:
    """The kinds that take ``field_name`` (for the message refusing it elsewhere)."""
    return [name for name in KINDS if takes(name, field_name)]


def registering(how: str | None) -> list[str]:
    """The kinds that register ``how`` ("gate", "direct", or None: cannot register)."""
    return [name for name, kind in KINDS.items() if kind.registers == how]
