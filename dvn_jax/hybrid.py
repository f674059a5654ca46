"""The hybrid (ours, not the paper's; docs/horses.md): a value function
whose test-time ascent starts at a fixed baseline's soft output and climbs
the value plus the baseline's log-likelihood of y.

    y(0) = s p(x) + (1 - s) P(0),
    y(t+1) = P_Y( y(t) + eta d/dy [ v(x, y(t)) + lam log p(y(t) | x) ] ),

p the per-output probabilities of the baseline (an FCN, or an ensemble file
of FCNs, their probabilities averaged), held fixed. `with_fcn` is the one
wrapper: it returns the value function with that start and prior
(`inference.ValueFn.start`, `.prior`), and nothing else in the library
knows about it. The config fields are `eval.fcn`: `params` (the file),
`model` (its network), `start_scale` s and `prior_weight` lam (0 = off).
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable

import jax
import jax.numpy as jnp
import ml_collections

from dvn_jax import inference
from dvn_jax import param_files
from dvn_jax import stacked
from dvn_jax.tasks import base

Array = jax.Array

# |d log-likelihood / dy| at most this: a baseline certain of an output (p = 0
# or 1 in float32) pulls it as one whose p is 1 - 3e-4, not infinitely.
PRIOR_LOGIT_CLIP = 8.0


def load_baseline(task: base.Task, model_config: ml_collections.ConfigDict,
                  path: str) -> base.Probabilities:
  """x -> per-output probabilities of the baseline network in the parameter
  file `path` (`model_config` its network), averaged over the members of
  an ensemble file."""
  net = task.create_model(model_config)
  params = param_files.load_params(
      path, jax.eval_shape(lambda: task.init_params(net, jax.random.key(0))))
  probabilities = lambda p, x: task.probabilities(net.apply({'params': p}, x))
  return functools.partial(stacked.averaged_over_members(probabilities),
                           params)


def towards_paper_start(probabilities: Array, scale: float) -> Array:
  """scale p + (1 - scale) P(0): probabilities p (..., K) drawn towards the
  paper's start P(0) (0 for one channel, 1/K on the K-class simplex)."""
  k = probabilities.shape[-1]
  return scale * probabilities + (1.0 - scale) * (0.0 if k == 1 else 1.0 / k)


def log_likelihood_gradient(probabilities: Array) -> Array:
  """d/dy of the log-likelihood of a relaxed output y under per-output
  probabilities p (..., K): logit(p) for K = 1 (Bernoulli: y log p +
  (1 - y) log(1 - p)), log p for K classes (sum_k y_k log p_k); clipped to
  +-PRIOR_LOGIT_CLIP."""
  eps = 1e-6
  p = jnp.clip(probabilities, eps, 1.0 - eps)
  grad = (jnp.log(p) - jnp.log1p(-p) if probabilities.shape[-1] == 1 else
          jnp.log(p))
  return jnp.clip(grad, -PRIOR_LOGIT_CLIP, PRIOR_LOGIT_CLIP)


def with_fcn(value_fn: inference.ValueFn, probabilities: base.Probabilities,
             start_scale: float, prior_weight: float) -> inference.ValueFn:
  """`value_fn` whose ascents start at `towards_paper_start(p(x),
  start_scale)` (if start_scale > 0) and climb v + prior_weight log p(y | x)
  (if prior_weight > 0)."""
  start = prior = None
  if start_scale:
    start = lambda x: towards_paper_start(probabilities(x), start_scale)
  if prior_weight:
    prior = lambda x: prior_weight * log_likelihood_gradient(probabilities(x))
  return dataclasses.replace(value_fn, start=start, prior=prior)


def from_config(task: base.Task, config: ml_collections.ConfigDict
                ) -> Callable[[inference.ValueFn], inference.ValueFn] | None:
  """The `with_fcn` wrapper that `config.eval.fcn` asks for, its baseline
  loaded; None when start_scale and prior_weight are both 0."""
  fcn = config.eval.fcn
  if not fcn.start_scale and not fcn.prior_weight:
    return None
  probabilities = load_baseline(task, fcn.model, fcn.params)
  return functools.partial(with_fcn, probabilities=probabilities,
                           start_scale=float(fcn.start_scale),
                           prior_weight=float(fcn.prior_weight))


def check(config: ml_collections.ConfigDict) -> list[tuple[bool, str]]:
  """(ok, message) checks of `config.eval.fcn` for `base.check_fields`."""
  fcn = config.eval.fcn
  if not fcn.start_scale and not fcn.prior_weight:
    return []
  return [
      (0 <= fcn.start_scale <= 1,
       f'eval.fcn.start_scale must be in [0, 1], got {fcn.start_scale}'),
      (fcn.prior_weight >= 0,
       f'eval.fcn.prior_weight must be >= 0, got {fcn.prior_weight}'),
      (param_files.files_exist(fcn.params),
       f'eval.fcn.params file not found: {fcn.params!r} (needed by '
       'eval.fcn.start_scale or prior_weight > 0; export a trained '
       'configs/horses_fcn.py run with --mode=export --params=FILE)'),
  ]
