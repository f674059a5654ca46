"""Predict functions: a trained network's parameters (one network, or a
`stacked.Ensemble`) -> its outputs on a batch of test inputs, jit-compiled
or split over a mesh.

`make_predict_fn(model, config)` takes the method's prediction of one
network (`methods.<method>.make_predict`: gradient ascent for a value net,
probabilities for a baseline, each by the task's test protocol) and
averages an ensemble's members' outputs (`stacked.averaged_over_members`).
"""

from __future__ import annotations

from collections.abc import Callable

import flax.linen as nn
import jax
import ml_collections
from absl import logging

from dvn_jax import methods
from dvn_jax import parallel
from dvn_jax import stacked
from dvn_jax import tasks


def make_predict_fn(model: nn.Module, config: ml_collections.ConfigDict,
                    return_trajectory: bool = False,
                    mesh: jax.sharding.Mesh | None = None) -> Callable:
  """jit(predict)(params, inputs (B, ...)) -> outputs (B, ...).

  Segmentation: uint8 images (B, H, W, 3) -> soft masks (B, H, W, K);
  multi-label: features (B, D) -> label scores (B, L) in [0, 1]. With
  return_trajectory (value nets only) it returns (outputs, trajectory of
  shape (T + 1, B, ...)). With a mesh (not with return_trajectory) the
  batch is split over its devices.
  """
  task = tasks.get(config)
  if (warning := task.compile_warning(model)) is not None:
    logging.warning(warning)
  predict = stacked.averaged_over_members(methods.get(config).make_predict(
      task, model, config, return_trajectory))
  if mesh is None or return_trajectory:
    return jax.jit(predict)
  return parallel.sharded_batch_fn(predict, mesh)
