"""Predict functions: a trained network's parameters (one network, or an
ensemble stacked on a leading axis) -> its outputs on a batch, jit-compiled
or split over a mesh. `make_predict_fn(model, config)`:

  segmentation: uint8 images -> crops -> gradient ascent on each crop's mask
    from y(0) = the projection of 0 (`inference.start_point`) or an FCN's
    start (inference.py, Eq. 8) -> crops combined into full-image soft
    masks (Sec. 5.4) -> [mixed with an FCN's masks];
  multi-label: features -> gradient ascent on the label vector from y = 0;
  FCN / classifier baselines: their softmax / sigmoid outputs.

An ensemble's members each infer and their outputs are averaged
(`stacked.averaged_over_members`), or with `eval.ensemble='values'` one
ascent runs on their mean value (`bind_members`).
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import flax.linen as nn
import jax
import ml_collections
from absl import logging

from dvn_jax import builders
from dvn_jax import fcn_starts
from dvn_jax import inference
from dvn_jax import input_pipeline
from dvn_jax import models
from dvn_jax import parallel
from dvn_jax import stacked
from dvn_jax import tasks

Array = jax.Array


def bind_logit_fn(model: nn.Module, params: Any,
                  start: Callable[[Array], Array] | None = None,
                  prior: Callable[[Array], Array] | None = None
                  ) -> inference.ValueFn:
  """The value network with fixed parameters, in inference mode.

  Networks with `encode` and `value_logits` methods (models.TwoStageValueNet)
  are bound in their two stages, so inference encodes each input once.
  `start` (x -> y(0), from `fcn_starts.make_start_fn`) starts its ascents;
  `prior` (from `fcn_starts.make_eval_prior_fn`) adds a log-linear prior
  to their objective.
  """
  variables = {'params': params}
  if isinstance(model, models.TwoStageValueNet):
    return inference.ValueFn(
        encode=lambda x: model.apply(variables, x, method='encode'),
        logits=lambda f, y: model.apply(variables, f, y,
                                        method='value_logits'),
        start=start, prior=prior)
  return inference.ValueFn(
      lambda x, y: model.apply(variables, x, y, train=False), start=start,
      prior=prior)


def bind_members(model: nn.Module, params: Any,
                 start: Callable[[Array], Array] | None = None,
                 prior: Callable[[Array], Array] | None = None
                 ) -> inference.ValueFn:
  """`bind_logit_fn` of one network, or of an ensemble as one value
  function: its members' mean value (`inference.mean_value_fn`). Under
  `stacked.averaged_over_members` it only ever sees one network."""
  members = [bind_logit_fn(model, member, start, prior)
             for member in stacked.split_members(params)]
  return members[0] if len(members) == 1 else inference.mean_value_fn(members)


def compile_predict(predict: Callable, mesh: jax.sharding.Mesh | None,
                    then: Callable[[Callable], Callable] | None = None,
                    per_member: bool = True) -> Callable:
  """jit, or on a mesh: the batch split over its devices, a host result;
  for one network or an ensemble (`stacked.averaged_over_members`, unless
  `per_member` is False: `predict` takes an ensemble itself), whose
  prediction `then(predict)` may wrap (`fcn_starts.mixed_with_fcn`)."""
  if per_member:
    predict = stacked.averaged_over_members(predict)
  if then is not None:
    predict = then(predict)
  if mesh is None:
    return jax.jit(predict)
  return parallel.sharded_batch_fn(predict, mesh)


# Sliced convolutions (models.apply_in_chunks) times unrolled ascent steps
# of one network beyond which XLA's CPU compile time explodes (measured: a
# pair of value nets, 30 steps, 4 crops: batch 8 scored val in 31 s, 16 in
# 86 s, 40 not in 30 min; docs/throughput.md).
SLOW_CPU_COMPILE_OPS = 300


def slow_compile_warning(config: ml_collections.ConfigDict) -> str | None:
  """Why the test-time ascent of a segmentation value net would compile for
  minutes to hours on a CPU (eval.batch_size too large for the sliced,
  unrolled convolutions), or None."""
  chunk = models.conv_chunk_size(config.model.get('conv_chunk'))
  crops = config.eval.batch_size * config.eval.num_crops
  if not chunk or crops <= chunk:
    return None
  steps = config.eval.inference.num_steps
  if -(-crops // chunk) * steps <= SLOW_CPU_COMPILE_OPS:
    return None
  return (f'eval.batch_size={config.eval.batch_size} x {config.eval.num_crops}'
          f' crops x {steps} ascent steps on a CPU: the value net runs in '
          f'slices of {chunk} crops, unrolled, and the program may take '
          'minutes to hours to compile; --config.eval.batch_size=1 is the '
          'fastest here')


def make_predict_fn(model: nn.Module, config: ml_collections.ConfigDict,
                    return_trajectory: bool = False,
                    mesh: jax.sharding.Mesh | None = None) -> Callable:
  """jit(predict)(params, uint8 images (B, H, W, 3)) -> soft masks (B, H, W, K).

  K = 1 (foreground probability) for binary masks, K class probabilities
  otherwise. With return_trajectory (value nets only) it returns (masks,
  trajectory of shape (T + 1, B, H, W, K)). For multi-label: (params,
  features (B, D)) -> label scores (B, L) in [0, 1]. With a mesh
  (not with return_trajectory) the batch is split over its devices.
  """
  if tasks.task_name(config) == 'multilabel':
    return make_multilabel_predict_fn(model, config, mesh)
  eval_cfg = config.eval
  offsets = inference.crop_offsets(config.image_size, config.crop_size,
                                   eval_cfg.num_crops)

  if config.model.name == 'fcn':
    def predict(params, images):
      return fcn_starts.fcn_soft_masks(
          lambda x: fcn_starts.class_probabilities(
              model.apply({'params': params}, x)),
          input_pipeline.images_to_float(images), offsets, config.crop_size)
    return compile_predict(predict, mesh)

  spec = builders.ascent_spec_from_config(eval_cfg.inference)
  eval_key = jax.random.key(config.seed)   # a fixed key: repeatable scores
  if (warning := slow_compile_warning(config)) is not None:
    logging.warning(warning)
  start_fn = fcn_starts.make_eval_start_fn(config)
  prior_fn = fcn_starts.make_eval_prior_fn(config)
  mean_value = builders.eval_ensemble(config) == 'values'

  def predict(params, images):
    masks, trajectory = inference.infer_full_image(
        bind_members(model, params, start_fn, prior_fn),
        input_pipeline.images_to_float(images),
        crop_size=config.crop_size, num_crops=eval_cfg.num_crops,
        combine=eval_cfg.combine, num_classes=tasks.num_classes(config),
        spec=spec, return_trajectory=return_trajectory, rng=eval_key)
    return (masks, trajectory) if return_trajectory else masks

  if return_trajectory:
    return compile_predict(predict, None, per_member=not mean_value)
  return compile_predict(predict, mesh, then=functools.partial(
      fcn_starts.mixed_with_fcn, config=config, offsets=offsets),
                         per_member=not mean_value)


def make_multilabel_predict_fn(model: nn.Module,
                               config: ml_collections.ConfigDict,
                               mesh: jax.sharding.Mesh | None = None
                               ) -> Callable:
  """Label scores: the classifier's sigmoid, or the value net's gradient
  ascent from y = 0 (Eq. 8) with config.eval.inference."""
  if config.model.name in models.CLASSIFIERS:
    return compile_predict(lambda params, x: jax.nn.sigmoid(
        model.apply({'params': params}, x)), mesh)
  spec = builders.ascent_spec_from_config(config.eval.inference)
  num_labels = config.model.num_labels
  mean_value = builders.eval_ensemble(config) == 'values'

  def predict(params, x):
    y0 = inference.start_point((x.shape[0], num_labels), spec)
    return inference.infer(bind_members(model, params), x, y0, spec,
                           rng=jax.random.key(config.seed))[0]

  return compile_predict(predict, mesh, per_member=not mean_value)
