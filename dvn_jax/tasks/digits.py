"""Digit completion: draw the hidden bottom half of a handwritten digit.

A task that is not in the paper, written as a user would write their own:
this file and configs/digits.py are all it takes (`config.task='digits'`).

- Data: the 1797 8x8 digits that scikit-learn ships (UCI optical digits,
  grey levels 0..16), no download. x: the top four rows (32 grey values in
  [0, 1]); y*: the bottom four rows, inked (>= 8) or not (32 binary pixels).
  Splits by a fixed permutation: 20% test, 10% of the rest val.
- Output set: the box [0, 1]^32; oracle: the relaxed IoU of the ink.
- Networks: a value net of its own (`JointValueNet`: x and y together
  through an MLP, so every pixel's value can depend on every other and on
  the visible half) and the per-pixel MLP baseline of models.py.
- Metrics: mean IoU of the inked pixels (an empty truth and prediction
  score 1) and pixel accuracy, in %.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from dvn_jax import evaluate
from dvn_jax import inference
from dvn_jax import models
from dvn_jax.datasets.multilabel import MultiLabelSplit
from dvn_jax.errors import ConfigError
from dvn_jax.tasks import base

HALF = 32          # pixels in four rows of eight
INK = 8            # grey level (of 16) from which a pixel counts as inked


class JointValueNet(nn.Module):
  """v(x, y) = sigmoid(MLP([x, y])): softplus layers on the visible half
  and the candidate completion together; returns the logits (B,)."""

  hidden: Sequence[int] = (256, 128)
  dropout_rate: float = 0.0

  @nn.compact
  def __call__(self, x: jax.Array, y: jax.Array, *, train: bool = False
               ) -> jax.Array:
    h = jnp.concatenate([x, 2.0 * y - 1.0], axis=-1)
    for width in self.hidden:
      h = nn.softplus(nn.Dense(width)(h))
      h = nn.Dropout(self.dropout_rate, deterministic=not train)(h)
    return nn.Dense(1)(h)[:, 0]


NETWORKS = {'joint_value_net': JointValueNet,
            'mlc_classifier': models.MultiLabelClassifier}


def load_digits() -> dict[str, MultiLabelSplit]:
  """train / val / trainval / test splits of scikit-learn's digits:
  features = the top half in [0, 1], labels = the bottom half's ink."""
  try:
    from sklearn import datasets  # pylint: disable=g-import-not-at-top
  except ImportError:
    raise ConfigError('the digits task needs scikit-learn (pip install '
                      'scikit-learn)') from None
  pixels = datasets.load_digits().images.reshape(-1, 64)
  order = np.random.default_rng(0).permutation(len(pixels))
  pixels = pixels[order]
  top = (pixels[:, :HALF] / 16.0).astype(np.float32)
  bottom = (pixels[:, HALF:] >= INK).astype(np.uint8)
  n_test = len(pixels) // 5
  n_val = (len(pixels) - n_test) // 10
  split = lambda rows: MultiLabelSplit(top[rows], bottom[rows])
  return {'test': split(slice(0, n_test)),
          'val': split(slice(n_test, n_test + n_val)),
          'train': split(slice(n_test + n_val, None)),
          'trainval': split(slice(n_test, None))}


class DigitCompletion(base.Task):
  """The bottom half of a digit from its top half (module docstring)."""

  output_set = 'box'
  oracle = 'iou'
  headline = 'mean_iou'

  def load(self) -> dict[str, Any]:
    return load_digits()

  def train_arrays(self, split: Any) -> tuple[np.ndarray, np.ndarray]:
    return split.features, split.labels.astype(np.float32)

  @property
  def example_shapes(self) -> tuple[tuple[int, ...], tuple[int, ...]]:
    return (HALF,), (HALF,)

  def create_model(self, model_config: ml_collections.ConfigDict
                   ) -> nn.Module:
    kwargs = dict(model_config)
    name = kwargs.pop('name')
    if name not in NETWORKS:
      raise ConfigError(f'unknown model {name!r} for digits; choose one of '
                        f'{sorted(NETWORKS)}')
    if name == 'mlc_classifier':
      kwargs['num_labels'] = HALF
    try:
      return NETWORKS[name](**kwargs)
    except TypeError as e:
      raise ConfigError(f'bad config.model for {name!r}: {e}') from None

  def is_baseline(self, model: nn.Module) -> bool:
    return isinstance(model, models.MultiLabelClassifier)

  def infer(self, value_fn: inference.ValueFn, inputs: jax.Array,
            spec: inference.AscentSpec, rng: jax.Array,
            return_trajectory: bool = False
            ) -> tuple[jax.Array, jax.Array | None]:
    return self.ascend_from_start(value_fn, inputs, (len(inputs), HALF),
                                  spec, rng, return_trajectory)

  def apply_baseline(self, probabilities: base.Probabilities,
                     inputs: jax.Array) -> jax.Array:
    return probabilities(inputs)

  def evaluate(self, predict: base.HostPredict, split: Any
               ) -> dict[str, float]:
    scores = evaluate.predict_in_batches(predict, split.features,
                                         self.config.eval.batch_size)
    inked = scores >= self.config.eval.threshold
    metrics = evaluate.segmentation_metrics(inked, split.labels)
    metrics['pixel_accuracy'] = 100.0 * float(
        (inked == split.labels.astype(bool)).mean())
    return metrics

  def summary(self, metrics: dict[str, float]) -> str:
    return (f'mean IoU {metrics["mean_iou"]:.2f}%, pixel accuracy '
            f'{metrics["pixel_accuracy"]:.2f}%')


def build(config: ml_collections.ConfigDict) -> DigitCompletion:
  return DigitCompletion(config)
