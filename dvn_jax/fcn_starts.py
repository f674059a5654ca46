"""A fixed FCN (or an ensemble file of FCNs) beside the value net (ours, not
the paper's; docs/horses.md): the start y(0) of the ascents, in training
(`config.start`, optionally cross-fitted) or at test only
(`config.eval.fcn.start_scale`), its log-likelihood of y as a prior inside
the test-time ascent (`config.eval.fcn.prior_weight`), and its soft masks
averaged with the value net's (`config.eval.fcn.weight`)."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from dvn_jax import param_files
from dvn_jax import inference
from dvn_jax import input_pipeline
from dvn_jax import models
from dvn_jax import stacked
from dvn_jax import tasks
from dvn_jax.datasets import kfold
from dvn_jax.errors import ConfigError

Array = jax.Array


def class_probabilities(logits: Array) -> Array:
  """Per-pixel probabilities of a classifier's logits (B, H, W, K): sigmoid
  of the foreground for K = 1, softmax over the classes otherwise."""
  return (jax.nn.softmax(logits) if logits.shape[-1] > 1 else
          jax.nn.sigmoid(logits))


def load_fcn_members(config: ml_collections.ConfigDict, path: str, field: str
                     ) -> tuple[Callable[[Any, Array], Array], Any]:
  """(probabilities(params, crops), params) of the FCN file `path`
  (`config.start.model`'s architecture, configs/horses_fcn.py's): crops
  (N, h, w, 3) in [0, 1] -> class probabilities (N, h, w, K) of one
  network's params; params as stored (an ensemble file of FCNs, from
  `dvn_jax.ensemble`, is a `stacked.Ensemble`)."""
  if tasks.task_name(config) != 'segmentation':
    raise ConfigError(f'bad config: {field} (an FCN) needs a segmentation '
                      'task')
  kwargs = dict(config.start.model)
  name = kwargs.pop('name', 'fcn')
  if name != 'fcn':
    raise ConfigError(f"bad config: start.model.name must be 'fcn', got "
                      f'{name!r}')
  k = tasks.num_classes(config)
  kwargs.setdefault('num_classes', k)
  net = models.create_model(name, **kwargs)
  template = models.init_params(net, jax.random.key(0), config.crop_size, k)
  params = param_files.load_params(path, template)
  return (lambda p, x: class_probabilities(net.apply({'params': p}, x)),
          params)


def load_fcn(config: ml_collections.ConfigDict, path: str, field: str
             ) -> Callable[[Array], Array]:
  """crops x (N, h, w, 3) in [0, 1] -> class probabilities (N, h, w, K) of
  the FCN in `path` (`load_fcn_members`), or their mean over the members
  of an ensemble file."""
  probabilities, params = load_fcn_members(config, path, field)
  return functools.partial(stacked.averaged_over_members(probabilities),
                           params)


def start_folds(config: ml_collections.ConfigDict) -> int:
  """config.start.folds F: > 0 when training starts are cross-fitted
  (`crossfit_start_maps`), 0 otherwise or where the config has none."""
  start = config.get('start')
  if start is None or not start.params:
    return 0
  return int(start.get('folds', 0))


def crossfit_start_maps(config: ml_collections.ConfigDict, images: Array
                        ) -> Array:
  """y(0) maps (N, H, W, K) of the training images, cross-fitted: image i's
  is scale p_f(x_i) + (1 - scale) P(0), p_f the soft mask (crops averaged,
  `fcn_soft_masks`, the FCN's test protocol) of member f = i mod F of the
  ensemble file `config.start.params`, whose member f was trained without
  fold f of the same split (`data.held_out_fold=f`, `kfold.without_fold`): an
  image's start never comes from an FCN that saw it, so training starts are
  as good as the starts at test (ours; docs/horses.md)."""
  folds = start_folds(config)
  probabilities, params = load_fcn_members(config, config.start.params,
                                           'start.params')
  members = stacked.split_members(params)
  if len(members) != folds:
    raise ConfigError(
        f'bad config: start.folds is {folds} but {config.start.params} holds '
        f'{len(members)} FCN(s); stack one FCN per fold, in fold order, with '
        'python -m dvn_jax.ensemble')
  offsets = inference.crop_offsets(config.image_size, config.crop_size,
                                   config.eval.num_crops)
  apply = jax.jit(probabilities)
  fold = kfold.fold_of(images.shape[0], folds)
  k = tasks.num_classes(config)
  maps = np.zeros(images.shape[:-1] + (k,), np.float32)
  for f, member in enumerate(members):
    maps[fold == f] = np.asarray(fcn_soft_masks(
        functools.partial(apply, member), images[fold == f], offsets,
        config.crop_size))
  return jnp.asarray(towards_paper_start(maps, float(config.start.scale), k))


def towards_paper_start(probabilities: Any, scale: float, k: int) -> Any:
  """scale p + (1 - scale) P(0): an FCN's class probabilities p drawn
  towards the paper's start P(0) (`inference.start_point`: 0 for binary
  masks, 1/K on the K-class simplex)."""
  return scale * probabilities + (1.0 - scale) * (0.0 if k == 1 else 1.0 / k)


def fcn_start_fn(config: ml_collections.ConfigDict, path: str, scale: float,
                 field: str) -> Callable[[Array], Array]:
  """x (crops in [0, 1]) -> y(0) = scale p(x) + (1 - scale) P(0): p(x) the
  soft mask of the fixed FCN (or FCN ensemble) in `path`, P(0) the paper's
  start (0 for binary masks, 1/K for K classes)."""
  fcn_probabilities = load_fcn(config, path, field)
  k = tasks.num_classes(config)

  def start_fn(x: Array) -> Array:
    return towards_paper_start(fcn_probabilities(x), scale, k)

  return start_fn


def make_start_fn(config: ml_collections.ConfigDict
                  ) -> Callable[[Array], Array] | None:
  """y(0) of every inference ascent, in training and at test, from
  `config.start` (`fcn_start_fn` of `start.params`, `start.scale`), or None
  (P(0)). Ours, not the paper's; docs/horses.md."""
  start = config.get('start')
  if start is None or not start.params:
    return None
  return fcn_start_fn(config, start.params, float(start.scale),
                      'start.params')


def _eval_fcn_number(config: ml_collections.ConfigDict, field: str) -> float:
  """config.eval.fcn.<field>, 0 (off) where the config has none (one saved
  before the field existed, or a task without eval.fcn)."""
  fcn_cfg = config.get('eval', {}).get('fcn')
  return float(fcn_cfg.get(field, 0.0)) if fcn_cfg is not None else 0.0


def eval_fcn_start_scale(config: ml_collections.ConfigDict) -> float:
  """config.eval.fcn.start_scale, 0 (off) where the config has none."""
  return _eval_fcn_number(config, 'start_scale')


def make_eval_start_fn(config: ml_collections.ConfigDict
                       ) -> Callable[[Array], Array] | None:
  """y(0) of the test-time ascent: with eval.fcn.start_scale s > 0,
  `fcn_start_fn` of eval.fcn's FCN at scale s (test time only; training
  keeps its own start); otherwise `make_start_fn`'s."""
  scale = eval_fcn_start_scale(config)
  if not scale:
    return make_start_fn(config)
  return fcn_start_fn(config, config.eval.fcn.params, scale, 'eval.fcn.params')


def eval_fcn_prior_weight(config: ml_collections.ConfigDict) -> float:
  """config.eval.fcn.prior_weight, 0 (off) where the config has none."""
  return _eval_fcn_number(config, 'prior_weight')


# |d log-likelihood / dy| at most this: an FCN certain of a pixel (p = 0 or
# 1 in float32) pulls it as one whose p is 1 - 3e-4, not infinitely.
PRIOR_LOGIT_CLIP = 8.0


def log_likelihood_gradient(probabilities: Array) -> Array:
  """d/dy of the log-likelihood of a relaxed output y under per-pixel class
  probabilities p (B, H, W, K): logit(p) for K = 1 (Bernoulli: y log p +
  (1 - y) log(1 - p)), log p for K classes (sum_k y_k log p_k); clipped to
  +-PRIOR_LOGIT_CLIP."""
  eps = 1e-6
  p = jnp.clip(probabilities, eps, 1.0 - eps)
  grad = (jnp.log(p) - jnp.log1p(-p) if probabilities.shape[-1] == 1 else
          jnp.log(p))
  return jnp.clip(grad, -PRIOR_LOGIT_CLIP, PRIOR_LOGIT_CLIP)


def make_eval_prior_fn(config: ml_collections.ConfigDict
                       ) -> Callable[[Array], Array] | None:
  """x -> lam * d/dy log p_FCN(y | x) (`log_likelihood_gradient`), the
  coefficients of the test-time ascent's log-linear prior
  (`inference.ValueFn.prior`): each crop's ascent climbs v(x, y) + lam *
  log p_FCN(y | x), a product of the value net and eval.fcn's FCN (ours;
  docs/horses.md); None with eval.fcn.prior_weight lam = 0."""
  weight = eval_fcn_prior_weight(config)
  if not weight:
    return None
  fcn_probabilities = load_fcn(config, config.eval.fcn.params,
                               'eval.fcn.params')
  return lambda x: weight * log_likelihood_gradient(fcn_probabilities(x))


def fcn_soft_masks(probabilities: Callable[[Array], Array], images: Array,
                   offsets: np.ndarray, crop_size: int) -> Array:
  """An FCN's class probabilities (B, H, W, K) of float images, averaged
  over the crops at `offsets` (the baseline's test protocol, Sec. 5.2);
  `probabilities` maps crops to per-pixel probabilities."""
  crops = inference.extract_crops(images, offsets, crop_size)
  flat = crops.reshape((-1,) + crops.shape[2:])
  probs = probabilities(flat)
  probs = probs.reshape(crops.shape[:2] + probs.shape[1:])
  return inference.average_crops(probs, offsets, images.shape[1])


def mixed_with_fcn(predict: Callable, config: ml_collections.ConfigDict,
                   offsets: np.ndarray) -> Callable:
  """predict, its soft masks averaged with an FCN's when config.eval.fcn
  has a weight w > 0: (1 - w) predict + w FCN (a model ensemble after
  inference; ours, docs/horses.md). The FCN (or an ensemble file of FCNs,
  their masks averaged) is held fixed."""
  fcn_cfg = config.eval.get('fcn')
  if fcn_cfg is None or fcn_cfg.weight == 0:
    return predict
  fcn_probabilities = load_fcn(config, fcn_cfg.params, 'eval.fcn.params')
  weight = float(fcn_cfg.weight)

  def mixed(params, images):
    fcn = fcn_soft_masks(fcn_probabilities, input_pipeline.images_to_float(
        images), offsets, config.crop_size)
    return (1.0 - weight) * predict(params, images) + weight * fcn

  return mixed
