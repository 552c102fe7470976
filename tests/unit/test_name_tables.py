"""One table per set of names: each registry of implementations holds exactly the names its config accepts."""

from __future__ import annotations

from typing import get_args

from ftdist.config.eval import SCORING_NAMES, TASK_NAMES
from ftdist.config.method import MethodConfig
from ftdist.config.strategy import STRATEGY_NAMES


def test_every_strategy_name_the_config_accepts_has_a_class_and_no_other() -> None:
    from ftdist.strategies import REGISTRY

    assert set(REGISTRY) == set(STRATEGY_NAMES) - {"auto"}  # `auto` is resolved to one of them at start


def test_every_method_name_the_config_accepts_has_a_class_and_no_other() -> None:
    from ftdist.config.method import PREFERENCE_METHODS, Finetuning
    from ftdist.methods import REGISTRY
    from ftdist.training.objectives import REGISTRY as OBJECTIVES

    names = set(get_args(MethodConfig.model_fields["name"].annotation))
    weights = names - set(PREFERENCE_METHODS)  # how weights train: one Method class each
    assert set(REGISTRY) == weights and set(get_args(Finetuning)) <= weights
    assert set(OBJECTIVES) == {"sft", *PREFERENCE_METHODS}  # what the loss is: one objective each


def test_every_eval_task_and_scorer_name_has_an_implementation_and_no_other() -> None:
    from ftdist.eval.normalize import SCORERS
    from ftdist.eval.tasks import TASKS

    assert set(TASKS) == set(TASK_NAMES)
    assert set(SCORERS) == set(SCORING_NAMES)
