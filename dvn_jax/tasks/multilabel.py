"""Multi-label classification: a set of tags per example (Bibtex, Bookmarks;
paper Sec. 5.1), scored by example-averaged F1.

- Data: Mulan's feature vectors, z-scored with the statistics of the whole
  training file ('trainval'; never test), so a model scores the same
  whichever split it was trained on; label vectors in {0, 1}^L.
- Output set: the box [0, 1]^L; oracle: relaxed F1 (Eq. 7).
- Networks: the SPEN-style value net (local energy linear in y, global
  energy of y alone) and the logistic-regression / MLP baselines.
- Test time: one ascent from y = 0 on the whole vector; the baselines'
  sigmoids. Metrics: example-averaged F1, precision and recall.
"""

from __future__ import annotations

from typing import Any

import flax.linen as nn
import jax
import ml_collections
import numpy as np

from dvn_jax import evaluate
from dvn_jax import inference
from dvn_jax import models
from dvn_jax.datasets import multilabel
from dvn_jax.errors import ConfigError
from dvn_jax.tasks import base

Array = jax.Array

VALUE_NETS = {'mlc_value_net': models.MultiLabelValueNet}
BASELINES = {'mlc_classifier': models.MultiLabelClassifier}


class MultiLabel(base.Task):
  """Tag sets of feature vectors (module docstring)."""

  output_set = 'box'
  oracle = 'f1'
  headline = 'f1'

  def check(self) -> None:
    name = self.config.data.name
    if name not in multilabel.LOADERS:
      raise ConfigError(f'unknown data.name {name!r}; choose one of '
                        f'{sorted(multilabel.LOADERS)}')

  def load(self) -> dict[str, Any]:
    c = self.config
    splits = multilabel.LOADERS[c.data.name](c.data.path)
    train = splits['trainval']
    for field, expected, got in (
        ('data.num_features', c.data.num_features, train.features.shape[1]),
        ('model.num_labels', c.model.num_labels, train.labels.shape[1])):
      if expected != got:
        raise ConfigError(f'{field} is {expected} but the {c.data.name} data '
                          f'has {got}; set --config.{field}={got}')
    return multilabel.zscore(splits, 'trainval')

  def train_arrays(self, split: Any) -> tuple[np.ndarray, np.ndarray]:
    return (np.asarray(split.features, np.float32),
            np.asarray(split.labels, np.float32))

  @property
  def example_shapes(self) -> tuple[tuple[int, ...], tuple[int, ...]]:
    return (self.config.data.num_features,), (self.config.model.num_labels,)

  def create_model(self, model_config: ml_collections.ConfigDict
                   ) -> nn.Module:
    kwargs = dict(model_config)
    name = kwargs.pop('name')
    networks = {**VALUE_NETS, **BASELINES}
    if name not in networks:
      raise ConfigError(f'unknown model {name!r} for multi-label; choose one '
                        f'of {sorted(networks)}')
    try:
      return networks[name](**kwargs)
    except TypeError as e:
      raise ConfigError(f'bad config.model for {name!r}: {e}') from None

  def is_baseline(self, model: nn.Module) -> bool:
    return isinstance(model, tuple(BASELINES.values()))

  def infer(self, value_fn: inference.ValueFn, inputs: Array,
            spec: inference.AscentSpec, rng: Array,
            return_trajectory: bool = False
            ) -> tuple[Array, Array | None]:
    shape = (inputs.shape[0], self.config.model.num_labels)
    return self.ascend_from_start(value_fn, inputs, shape, spec, rng,
                                  return_trajectory)

  def apply_baseline(self, probabilities: base.Probabilities, inputs: Array
                     ) -> Array:
    return probabilities(inputs)

  def evaluate(self, predict: base.HostPredict, split: Any
               ) -> dict[str, float]:
    return evaluate.evaluate_multilabel(
        predict, split.features, split.labels, self.config.eval.batch_size,
        self.config.eval.threshold)

  def summary(self, metrics: dict[str, float]) -> str:
    return (f'F1 {metrics["f1"]:.2f}% (precision {metrics["precision"]:.2f}%, '
            f'recall {metrics["recall"]:.2f}%)')


def build(config: ml_collections.ConfigDict) -> MultiLabel:
  return MultiLabel(config)
