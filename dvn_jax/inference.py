"""Gradient-based inference in y (paper Sec. 3.1, Eq. 8) and crop handling.

    y(t+1) = P_Y( y(t) + eta * d/dy v(x, y(t); theta) ),    y(0) = P_Y(0),

P_Y is the box [0, 1]^M (binary segmentation, multi-label) or the
per-pixel probability simplex (K-class segmentation); P_Y(0) is 0 for the
box and the uniform distribution for the simplex.

unrolled with `jax.lax.scan` for a static number of steps. Nothing here is
jit-compiled by itself: callers close over the value network and jit the
composition (see `predictors.make_predict_fn`), so every function traces
once per input shape.

For 32x32 images the value network sees 24x24 crops (paper Sec. 5.2, 5.4).
Two ways to get a full-size mask from a grid of crops:
- mask averaging: infer each crop's mask on its own, average the crop masks
  where they overlap;
- joint inference: one full-size mask; at each step every crop's value
  gradient is scattered back into it (the vjp of cropping is exactly that
  scatter-add), divided by the number of crops covering each pixel so that a
  step moves every pixel like single-crop inference would.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from typing import Any

import chex
import jax
import jax.numpy as jnp
import numpy as np

from dvn_jax.errors import ConfigError

Array = jax.Array
Projection = Callable[[Array], Array]
# logit_fn(x, y) -> (B,) value logits, the network with its parameters bound.
LogitFn = Callable[[Array, Array], Array]


def _identity(x: Any) -> Any:
  return x


@dataclasses.dataclass(frozen=True)
class ValueFn:
  """A value network with its parameters bound, in two stages.

  `encode(x)` computes what depends on the input alone; `logits(features, y)`
  the rest. Inference calls `encode` once per run and `logits` at every
  step, so input-only features are not recomputed (the paper's future work,
  Sec. 6). Calling it is `logits(encode(x), y)`: a ValueFn is a LogitFn.
  `start(x)`, when given, is the start point y(0) of every ascent on x
  (a feed-forward network's soft output); None starts at P(0), the paper's.
  `prior(x)`, when given, is a log-linear prior on y: coefficients c(x) of
  y's shape, and the ascent climbs v(x, y) + sum(c(x) * y) (`objective_fn`).
  Both are set by `hybrid.with_fcn` (ours); the paper's value net has
  neither.
  """
  logits: Callable[[Any, Array], Array]
  encode: Callable[[Array], Any] = _identity
  start: Callable[[Array], Array] | None = None
  prior: Callable[[Array], Array] | None = None
  # The ascent climbs sigmoid(logit), a value in [0, 1] (the DVN); False
  # climbs the logit itself, an unbounded score (-energy: methods/spen.py).
  squash: bool = True

  def __call__(self, x: Array, y: Array) -> Array:
    return self.logits(self.encode(x), y)


def as_value_fn(logit_fn: LogitFn) -> ValueFn:
  """A ValueFn as it is; a plain logit function (x, y) -> (B,) as a ValueFn
  of one stage, without start or prior."""
  return logit_fn if isinstance(logit_fn, ValueFn) else ValueFn(logit_fn)


def project_box(y: Array) -> Array:
  """Euclidean projection onto the box [0, 1]^M (clipping)."""
  return jnp.clip(y, 0.0, 1.0)


def project_simplex(y: Array) -> Array:
  """Euclidean projection of each vector along the last axis onto the simplex.

  The probability simplex {p : p_k >= 0, sum_k p_k = 1}, one per pixel for
  K-class segmentation. Exact, by the sort-based algorithm (Held et al. 1974;
  Duchi et al. 2008): with u sorted in decreasing order and
  rho = max{j : u_j + (1 - sum_{i<=j} u_i) / j > 0}, the projection is
  max(y - theta, 0) with theta = (sum_{i<=rho} u_i - 1) / rho. O(K log K)
  per vector; for K = 3 that is a handful of operations per pixel.
  """
  y = jnp.asarray(y, jnp.float32)
  k = y.shape[-1]
  u = -jnp.sort(-y, axis=-1)
  cumulative = jnp.cumsum(u, axis=-1)
  j = jnp.arange(1, k + 1, dtype=y.dtype)
  positive = u + (1.0 - cumulative) / j > 0   # true for j = 1 .. rho
  rho = jnp.sum(positive, axis=-1, keepdims=True)
  theta = (jnp.take_along_axis(cumulative, rho - 1, axis=-1) - 1.0) / rho
  return jnp.maximum(y - theta, 0.0)


PROJECTIONS: dict[str, Projection] = {'box': project_box,
                                      'simplex': project_simplex}


def get_projection(name: str) -> Projection:
  if name not in PROJECTIONS:
    raise ConfigError(
        f'unknown projection {name!r}; choose one of {sorted(PROJECTIONS)}')
  return PROJECTIONS[name]


@dataclasses.dataclass(frozen=True)
class AscentSpec:
  """Static settings of gradient ascent in y (hashable, safe as jit static).

  Attributes:
    num_steps: number of ascent steps T.
    step_size: eta in Eq. 8.
    projection: name in PROJECTIONS (the task's output set).
    unroll: `lax.scan` unroll factor; True unrolls fully (fastest on CPU, where
      convolutions inside a rolled loop leave XLA's fast path).
    noise_std: standard deviation of Gaussian noise added to y at every step
      before the projection (Langevin-style inference, paper Sec. 6); 0 is
      plain gradient ascent. Needs a key (`rng`).
  """
  num_steps: int = 30
  step_size: float = 1.0
  projection: str = 'box'
  unroll: int | bool = True
  noise_std: float = 0.0

  def __post_init__(self):
    if self.num_steps < 1:
      raise ConfigError(f'inference num_steps must be >= 1, got {self.num_steps}')
    get_projection(self.projection)
    if self.unroll is not True and (isinstance(self.unroll, bool) or
                                    self.unroll < 1):
      raise ConfigError(f'inference unroll must be >= 1 (or 0 in a config: '
                        f'every step), got {self.unroll}')
    if self.noise_std < 0:
      raise ConfigError(f'inference noise_std must be >= 0, got '
                        f'{self.noise_std}')


def objective_fn(logit_fn: LogitFn, x: Array) -> Callable[[Array], Array]:
  """y -> (B,) objective of the ascent on inputs x (B, ...): the value
  v = sigmoid(logit) (Eq. 8; the logit itself for a ValueFn with
  squash=False), x encoded once, plus the ValueFn's log-linear prior
  sum(c(x) * y) where it has one."""
  value_fn = as_value_fn(logit_fn)
  features = value_fn.encode(x)
  coefficients = None if value_fn.prior is None else value_fn.prior(x)

  def objective(y: Array) -> Array:
    logits = value_fn.logits(features, y)
    value = jax.nn.sigmoid(logits) if value_fn.squash else logits
    if coefficients is None:
      return value
    return value + jnp.sum((coefficients * y).reshape(y.shape[0], -1), axis=1)

  return objective


def gradient_ascent(
    objective: Callable[[Array], Array],
    y0: Array,
    spec: AscentSpec,
    gradient_scale: Array | None = None,
    return_trajectory: bool = False,
    rng: Array | None = None,
) -> tuple[Array, Array | None]:
  """Projected gradient ascent on y (Eq. 8).

  Args:
    objective: y -> (B,) per-example objective; examples must not interact,
      so the gradient of the sum is each example's own gradient.
    y0: the start point y(0).
    spec: steps, step size, projection and unrolling.
    gradient_scale: optional elementwise factor on the gradient (joint
      inference uses 1 / crop coverage).
    return_trajectory: also return y(0..T) stacked on a new leading axis.
    rng: key of the noise when spec.noise_std > 0 (ignored otherwise).

  Returns:
    (y(T), trajectory of shape (T + 1, *y0.shape) or None).
  """
  project = get_projection(spec.projection)
  # One objective value per example (checked on shapes, nothing computed).
  chex.assert_shape(jax.eval_shape(objective, y0), (y0.shape[0],))
  if gradient_scale is not None:
    chex.assert_rank(gradient_scale, y0.ndim)
  grad_fn = jax.grad(lambda y: jnp.sum(objective(y)))

  noisy = spec.noise_std > 0
  if noisy and rng is None:
    raise ConfigError('inference with noise_std > 0 needs a random key')

  def step(y, key):
    g = grad_fn(y)
    if gradient_scale is not None:
      g = g * gradient_scale
    y_next = y + spec.step_size * g
    if noisy:
      y_next = y_next + spec.noise_std * jax.random.normal(key, y.shape)
    y_next = project(y_next)
    return y_next, (y_next if return_trajectory else None)

  keys = jax.random.split(rng, spec.num_steps) if noisy else None
  y_final, steps = jax.lax.scan(step, y0, keys, length=spec.num_steps,
                                unroll=spec.unroll)
  if not return_trajectory:
    return y_final, None
  return y_final, jnp.concatenate([y0[None], steps], axis=0)


def infer(logit_fn: LogitFn, x: Array, y0: Array, spec: AscentSpec,
          return_trajectory: bool = False, rng: Array | None = None
          ) -> tuple[Array, Array | None]:
  """Inference for inputs x of the value net's own size, from y0."""
  return gradient_ascent(objective_fn(logit_fn, x), y0, spec,
                         return_trajectory=return_trajectory, rng=rng)


# ----------------------------------------------------------------- crops ----


def crop_offsets(image_size: int, crop_size: int, num_crops: int) -> np.ndarray:
  """Top-left corners (C, 2) of an n x n grid of crops, n = sqrt(num_crops).

  The first crop starts at 0 and the last ends at the image border, so the
  grid covers every pixel; interior offsets are evenly spaced and rounded.
  One crop is the centre crop. 36 crops of 24 in 32: offsets 0,2,3,5,6,8.
  """
  n = math.isqrt(max(num_crops, 0))
  if num_crops < 1 or n * n != num_crops:
    raise ConfigError(f'num_crops must be a square (1, 4, 9, 25, 36, ...), '
                      f'got {num_crops}')
  if crop_size > image_size:
    raise ConfigError(f'crop_size {crop_size} is larger than the image '
                      f'({image_size})')
  if n == 1:
    starts = np.array([(image_size - crop_size) // 2])
  else:
    starts = np.round(np.linspace(0, image_size - crop_size, n)).astype(int)
  rows, cols = np.meshgrid(starts, starts, indexing='ij')
  return np.stack([rows.ravel(), cols.ravel()], axis=1).astype(np.int32)


def extract_crops(images: Array, offsets: np.ndarray | Array,
                  crop_size: int) -> Array:
  """Crops (B, C, crop, crop, ch) of images (B, H, W, ch) at `offsets` (C, 2).

  vmap over `lax.dynamic_slice` (one op for all crops: static slices
  combined with an unrolled loop compile very slowly).
  """
  chex.assert_rank(images, 4)
  chex.assert_shape(offsets, (None, 2))
  batch, _, _, channels = images.shape

  def one(offset):
    start = (0, offset[0], offset[1], 0)
    return jax.lax.dynamic_slice(images, start,
                                 (batch, crop_size, crop_size, channels))

  crops = jax.vmap(one)(jnp.asarray(offsets, jnp.int32))
  return jnp.swapaxes(crops, 0, 1)


def paste_crops(crops: Array, offsets: np.ndarray, image_size: int) -> Array:
  """Sum of crops (B, C, c, c, ch) placed back at `offsets`: (B, H, W, ch).

  This is the transpose of `extract_crops` (a linear map).
  """
  batch, _, crop_size, _, channels = crops.shape
  canvas = jax.ShapeDtypeStruct((batch, image_size, image_size, channels),
                                crops.dtype)
  transpose = jax.linear_transpose(
      lambda m: extract_crops(m, offsets, crop_size), canvas)
  return transpose(crops)[0]


def crop_coverage(offsets: np.ndarray, crop_size: int,
                  image_size: int) -> np.ndarray:
  """How many crops cover each pixel: (H, W) int; every pixel must be covered."""
  coverage = np.zeros((image_size, image_size), np.int32)
  for row, col in offsets:
    coverage[row:row + crop_size, col:col + crop_size] += 1
  if coverage.min() == 0:
    raise ConfigError('the crops do not cover every pixel of the image')
  return coverage


def average_crops(crops: Array, offsets: np.ndarray, image_size: int) -> Array:
  """Per-pixel mean of overlapping crops: (B, H, W, ch)."""
  crop_size = crops.shape[2]
  coverage = crop_coverage(offsets, crop_size, image_size)
  return paste_crops(crops, offsets, image_size) / coverage[None, :, :, None]


def _flatten_crops(crops: Array) -> Array:
  return crops.reshape((-1,) + crops.shape[2:])


def infer_joint(logit_fn: LogitFn, images: Array, offsets: np.ndarray,
                crop_size: int, num_classes: int, spec: AscentSpec,
                return_trajectory: bool = False, rng: Array | None = None
                ) -> tuple[Array, Array | None]:
  """Joint inference of full-size masks (B, H, W, K) from all crops at once."""
  batch, image_size = images.shape[0], images.shape[1]
  num_crops = len(offsets)
  x_crops = _flatten_crops(extract_crops(images, offsets, crop_size))
  crop_objective = objective_fn(logit_fn, x_crops)
  coverage = crop_coverage(offsets, crop_size, image_size)

  def objective(masks):
    y_crops = _flatten_crops(extract_crops(masks, offsets, crop_size))
    return crop_objective(y_crops).reshape(batch, num_crops).sum(axis=1)

  shape = (batch, image_size, image_size, num_classes)
  if as_value_fn(logit_fn).start is None:
    y0 = start_point(shape, spec)
  else:   # the crops' start points, averaged where they overlap
    y0_crops = initial_point(logit_fn, x_crops, x_crops.shape[:-1] +
                             (num_classes,), spec)
    y0 = average_crops(y0_crops.reshape((batch, num_crops) +
                                        y0_crops.shape[1:]),
                       offsets, image_size)
  scale = jnp.asarray(1.0 / coverage, jnp.float32)[None, :, :, None]
  return gradient_ascent(objective, y0, spec, gradient_scale=scale,
                         return_trajectory=return_trajectory, rng=rng)


def infer_averaged(logit_fn: LogitFn, images: Array, offsets: np.ndarray,
                   crop_size: int, num_classes: int, spec: AscentSpec,
                   return_trajectory: bool = False, rng: Array | None = None
                   ) -> tuple[Array, Array | None]:
  """Independent inference per crop, crop masks averaged: (B, H, W, K)."""
  batch, image_size = images.shape[0], images.shape[1]
  num_crops = len(offsets)
  x_crops = _flatten_crops(extract_crops(images, offsets, crop_size))
  y0 = initial_point(logit_fn, x_crops, x_crops.shape[:-1] + (num_classes,),
                     spec)
  y_crops, trajectory = infer(logit_fn, x_crops, y0, spec, return_trajectory,
                              rng)

  def to_image(flat_crops):
    crops = flat_crops.reshape((batch, num_crops) + flat_crops.shape[1:])
    return average_crops(crops, offsets, image_size)

  if trajectory is not None:
    trajectory = jax.vmap(to_image)(trajectory)
  return to_image(y_crops), trajectory


COMBINERS = {'joint': infer_joint, 'average': infer_averaged}


def infer_full_image(logit_fn: LogitFn, images: Array, *, crop_size: int,
                     num_crops: int, combine: str, num_classes: int,
                     spec: AscentSpec, return_trajectory: bool = False,
                     rng: Array | None = None) -> tuple[Array, Array | None]:
  """Soft masks (B, H, W, K) for square images, from a grid of crops."""
  chex.assert_rank(images, 4)
  if combine not in COMBINERS:
    raise ConfigError(
        f'unknown crop combination {combine!r}; choose one of {sorted(COMBINERS)}')
  offsets = crop_offsets(images.shape[1], crop_size, num_crops)
  return COMBINERS[combine](logit_fn, images, offsets, crop_size, num_classes,
                            spec, return_trajectory, rng)


def start_point(shape: tuple[int, ...], spec: AscentSpec) -> Array:
  """y(0): the projection of y = 0 onto the output set (paper Sec. 3.1).

  For the box [0, 1]^M that is 0 itself (the paper's start). For the
  per-pixel simplex it is the uniform distribution 1/K: the feasible point
  nearest to "no class", which favours no class, and where dv/dy is
  informative for every class.
  """
  return get_projection(spec.projection)(jnp.zeros(shape, jnp.float32))


def initial_point(logit_fn: LogitFn, x: Array, shape: tuple[int, ...],
                  spec: AscentSpec) -> Array:
  """y(0) of an ascent on inputs x: the ValueFn's `start(x)`, projected
  onto the output set, or `start_point` (P(0)) if it has none."""
  start = as_value_fn(logit_fn).start
  if start is None:
    return start_point(shape, spec)
  y0 = start(x)
  if y0.shape != tuple(shape):
    raise ConfigError(f'the start network gives outputs of shape {y0.shape}, '
                      f'the ascent needs {tuple(shape)}')
  return get_projection(spec.projection)(y0)
