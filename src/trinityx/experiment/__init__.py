"""`trinityx run`: the experiment as one resumable pipeline over the stages (experts, judges,
composes, evaluations, compare, report, ship). Sits above `stages`, beside `demo`."""

from trinityx.experiment.config import ExperimentConfig, load_experiment
from trinityx.experiment.pipeline import run

__all__ = ["ExperimentConfig", "load_experiment", "run"]
