"""Named recipes: a published run's settings, given by one flag (``lwz train grpo --recipe NAME``).

A recipe fills what the command line and ``--config`` leave unsaid: its option values stand in for
flags that were not given, and its TRL config values sit under the ``--config`` YAML and the flags
(flags > YAML > recipe > the kind's defaults). Every value a run used is in its record.

``longwriter-zero`` is the RL stage of LongWriter-Zero (arXiv 2506.18841): GRPO with groups of
G = 32 completions, sampling at temperature 0.8 and top-p 1.0, up to 14,000 completion tokens,
clip ε = 0.2, no KL term (β = 0), and the paper's three rewards (length, the writing-quality reward
model, format), each normalised within its group and then averaged (TRL's
``multi_objective_aggregation="normalize_then_sum"`` with equal weights 1/3). The loss is TRL's
``"grpo"``: the paper's objective as written (each completion's token losses averaged over its own
length, then over the group); docs/training.md says why and what the alternative is. Prompts are the
released model's raw ``think`` template on the completions path, as it is served. ``anti_hacking`` is
not one of the paper's rewards; the reward-hacking gate guards ``--register`` instead.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping

from core.errors import UserError
from training.kinds import PAPER_ROLLOUT


@dataclass(frozen=True)
class Recipe:
    """``options``: TrainOptions values used where the flag was not given; ``config``: TRL config values."""

    name: str
    kind: str
    source: str
    options: Mapping[str, Any] = field(default_factory=dict)
    config: Mapping[str, Any] = field(default_factory=dict)


RECIPES: dict[str, Recipe] = {recipe.name: recipe for recipe in (
    Recipe("longwriter-zero", "grpo", "LongWriter-Zero (arXiv 2506.18841), the RL stage",
           options={"rewards": ("length", "quality", "format"), "combine": "paper", "template": "think",
                    "api": "completions"},
           config={**PAPER_ROLLOUT, "loss_type": "grpo", "scale_rewards": "group"}),
)}


def recipe_named(name: str | None, *, kind: str) -> Recipe | None:
    """The recipe called ``name`` for ``kind`` (None without a name); a UserError naming the recipes otherwise."""
    if name is None:
        return None
    recipe = RECIPES.get(name)
    if recipe is None:
        raise UserError(f"unknown recipe {name!r}: choose {', '.join(RECIPES)}")
    if recipe.kind != kind:
        raise UserError(f"recipe {name!r} is for lwz train {recipe.kind}, not {kind}")
    return recipe
