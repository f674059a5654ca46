"""What the core asks of a structured-prediction task.

A task is the problem: its data, its networks, its output set and oracle,
how a trained network predicts whole test inputs, and how predictions are
scored. The core (train loop, tuple generation, gradient inference,
checkpoints, parallelism) sees only this interface; it never asks which task
it runs. A new task is one module with a subclass of `Task` and a
`build(config) -> Task` (dvn_jax/tasks/digits.py is a worked example).
"""

from __future__ import annotations

import abc
from collections.abc import Callable
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax

from dvn_jax import inference
from dvn_jax.errors import ConfigError

Array = jax.Array
# A network's parameters bound: inputs (B, ...) -> per-output probabilities
# (B, ...) of the output's shape (a baseline, e.g. an FCN).
Probabilities = Callable[[Array], Array]
# Host-side prediction of a batch of a split's inputs (numpy in and out).
HostPredict = Callable[[np.ndarray], np.ndarray]


class Task(abc.ABC):
  """One structured-prediction problem. Subclasses set the class attributes
  and implement the abstract methods; `config` is the run's ConfigDict.

  Attributes:
    output_set: 'box' ([0, 1]^M: binary masks, label vectors) or 'simplex'
      (a probability vector per position: K-class masks); fixes the
      projection and the start point P(0) of every ascent (Eq. 8).
    oracle: the name of the task's oracle v*(y, y*) in `oracles.ORACLES`.
    headline: the metric (higher is better) that picks checkpoints and
      sweep variants.
  """

  output_set: str = 'box'
  oracle: str = 'iou'
  headline: str = ''

  def __init__(self, config: ml_collections.ConfigDict):
    self.config = config

  # ------------------------------------------------------------ data ----

  @abc.abstractmethod
  def load(self) -> dict[str, Any]:
    """Every split, by name ('train', 'val', 'trainval', 'test')."""

  @abc.abstractmethod
  def train_arrays(self, split: Any) -> tuple[np.ndarray, np.ndarray]:
    """(inputs, targets) of a whole split as float32 arrays, the targets
    in the output set (one-hot classes, 0/1 masks or labels)."""

  def batch(self, rng: Array, inputs: Array, targets: Array
            ) -> tuple[Array, Array]:
    """(x, y*) of the training examples `inputs`, `targets` (a batch of
    `train_arrays`' rows), inside the jitted step: random crops, flips.
    By default the examples as they are."""
    del rng
    return inputs, targets

  @property
  @abc.abstractmethod
  def example_shapes(self) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """(x, y) shapes of one training example, without the batch axis."""

  def check(self) -> None:
    """ConfigError (one line) for a task field that cannot work."""

  # -------------------------------------------------------- networks ----

  @abc.abstractmethod
  def create_model(self, model_config: ml_collections.ConfigDict
                   ) -> nn.Module:
    """The network `model_config.name` names: a value net v(x, y) or a
    baseline p(y | x) (`is_baseline`)."""

  @abc.abstractmethod
  def is_baseline(self, model: nn.Module) -> bool:
    """Whether `model` maps x to per-output logits (no y)."""

  def init_params(self, model: nn.Module, rng: Array) -> Any:
    """Initial parameters for one training example."""
    x_shape, y_shape = self.example_shapes
    x = jnp.zeros((1, *x_shape), jnp.float32)
    if self.is_baseline(model):
      return model.init({'params': rng}, x, train=False)['params']
    y = jnp.zeros((1, *y_shape), jnp.float32)
    return model.init({'params': rng}, x, y, train=False)['params']

  # ---------------------------------------------------- output set ----

  def probabilities(self, logits: Array) -> Array:
    """A baseline's per-output probabilities: sigmoid on the box, softmax
    over the last axis on the simplex."""
    if self.output_set == 'simplex':
      return jax.nn.softmax(logits)
    return jax.nn.sigmoid(logits)

  def baseline_loss(self, logits: Array, y_star: Array) -> Array:
    """Mean per-output cross-entropy of a baseline: sigmoid on the box,
    softmax over the last axis on the simplex."""
    if self.output_set == 'simplex':
      return optax.softmax_cross_entropy(logits, y_star).mean()
    return optax.sigmoid_binary_cross_entropy(logits, y_star).mean()

  # ------------------------------------------------------ prediction ----

  def compile_warning(self, model: nn.Module) -> str | None:
    """Why test-time inference of `model` would compile slowly here (to be
    logged), or None."""
    del model
    return None

  @abc.abstractmethod
  def infer(self, value_fn: inference.ValueFn, inputs: Array,
            spec: inference.AscentSpec, rng: Array,
            return_trajectory: bool = False
            ) -> tuple[Array, Array | None]:
    """Test-time inference of whole test inputs (B, ...) by gradient ascent
    on the value (Eq. 8): (outputs, trajectory (T + 1, B, ...) or None).
    Segmentation runs it on crops and combines them; the default ascent
    for inputs of the network's own size is `ascend_from_start`."""

  @abc.abstractmethod
  def apply_baseline(self, probabilities: Probabilities, inputs: Array
                     ) -> Array:
    """A baseline's outputs for whole test inputs (its test protocol)."""

  def ascend_from_start(self, value_fn: inference.ValueFn, x: Array,
                        y_shape: tuple[int, ...], spec: inference.AscentSpec,
                        rng: Array, return_trajectory: bool = False
                        ) -> tuple[Array, Array | None]:
    """The ascent on inputs of the network's own size x (B, ...), from the
    value function's start or P(0)."""
    y0 = inference.initial_point(value_fn, x, y_shape, spec)
    return inference.infer(value_fn, x, y0, spec, return_trajectory, rng)

  # --------------------------------------------------------- metrics ----

  @abc.abstractmethod
  def evaluate(self, predict: HostPredict, split: Any) -> dict[str, float]:
    """The task's metrics (in %) of `predict` on a split."""

  @abc.abstractmethod
  def summary(self, metrics: dict[str, float]) -> str:
    """The headline numbers of `evaluate`, for one printed line, in %
    like the metrics (e.g. 'mean IoU 84.11%, global IoU 84.08%')."""


def check_fields(checks: list[tuple[bool, str]]) -> None:
  """ConfigError 'bad config: <message>' for the first failed check."""
  for ok, message in checks:
    if not ok:
      raise ConfigError(f'bad config: {message}')
