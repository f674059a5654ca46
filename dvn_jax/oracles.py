"""Oracle value functions v*(y, y*) on relaxed outputs y, y* in [0, 1]^M.

The paper (Sec. 3.2) extends IoU (Eq. 6) and F1 (Eq. 7) from {0,1}^M to
[0,1]^M by taking the intersection as a sum of element-wise minima (Eq. 9)
and the union as a sum of element-wise maxima (Eq. 10). On binary inputs both
equal the usual discrete scores.

All functions reduce over every axis but the first (the batch axis), so a
batch of masks (B, H, W, 1) or of label vectors (B, L) both give (B,) values.

Empty vs empty: when y and y* are both all-zero the union is 0 and the ratio
is undefined. We define the value as 1: predicting "nothing" when there is
nothing is a perfect answer, and the value is then continuous in the limit
y -> y* = 0 along y = 0. Any other pair with an empty union cannot occur
(the union is >= each of its operands).
"""

from __future__ import annotations

import chex
import jax
import jax.numpy as jnp

from dvn_jax.errors import ConfigError

Array = jax.Array


def _reduce_axes(y: Array) -> tuple[int, ...]:
  return tuple(range(1, y.ndim))


def _as_pair(y: Array, y_star: Array) -> tuple[Array, Array]:
  """y and y* as float32, of one shape (B, ...) with a batch axis."""
  y = jnp.asarray(y, jnp.float32)
  y_star = jnp.asarray(y_star, jnp.float32)
  chex.assert_equal_shape([y, y_star])
  chex.assert_rank(y, {2, 3, 4, 5})
  return y, y_star


def relaxed_intersection(y: Array, y_star: Array) -> Array:
  """Sum of element-wise minima over all but the batch axis (Eq. 9)."""
  return jnp.sum(jnp.minimum(y, y_star), axis=_reduce_axes(y))


def relaxed_union(y: Array, y_star: Array) -> Array:
  """Sum of element-wise maxima over all but the batch axis (Eq. 10)."""
  return jnp.sum(jnp.maximum(y, y_star), axis=_reduce_axes(y))


def _safe_ratio(numerator: Array, denominator: Array) -> Array:
  """numerator / denominator, and 1 where the denominator is 0.

  The double `where` keeps the gradient finite at the empty-vs-empty point.
  """
  empty = denominator <= 0
  safe_denominator = jnp.where(empty, 1.0, denominator)
  return jnp.where(empty, 1.0, numerator / safe_denominator)


def iou(y: Array, y_star: Array) -> Array:
  """Relaxed intersection over union (Eq. 6 with Eq. 9, 10); shape (B,)."""
  y, y_star = _as_pair(y, y_star)
  return _safe_ratio(relaxed_intersection(y, y_star), relaxed_union(y, y_star))


def f1(y: Array, y_star: Array) -> Array:
  """Relaxed F1 = 2 I / (I + U) (Eq. 7 with Eq. 9, 10); shape (B,).

  On binary inputs I + U = |y| + |y*|, so this is the usual 2TP/(2TP+FP+FN).
  """
  y, y_star = _as_pair(y, y_star)
  intersection = relaxed_intersection(y, y_star)
  union = relaxed_union(y, y_star)
  return _safe_ratio(2.0 * intersection, intersection + union)


def pixel_accuracy(y: Array, y_star: Array) -> Array:
  """Relaxed mean pixel accuracy of K-class masks (B, H, W, K); shape (B,).

  The mean over pixels of sum_k min(y_k, y*_k): the same relaxation by
  element-wise minima as Eq. 9. With a one-hot y* it is the mean probability
  y puts on the true class; on one-hot y it is the fraction of pixels whose
  class is right; for y, y* on the simplex it is 1 - total variation
  distance, so 1 exactly when y = y*. The paper's oracle for the faces
  (Sec. 5.3); the last axis holds the classes.
  """
  y, y_star = _as_pair(y, y_star)
  per_pixel = jnp.sum(jnp.minimum(y, y_star), axis=-1)
  return jnp.mean(per_pixel, axis=tuple(range(1, per_pixel.ndim)))


ORACLES = {'iou': iou, 'f1': f1, 'pixel_accuracy': pixel_accuracy}


def get_oracle(name: str):
  """Returns the oracle called `name` ('iou', 'f1' or 'pixel_accuracy')."""
  if name not in ORACLES:
    raise ConfigError(f'unknown oracle {name!r}; choose one of {sorted(ORACLES)}')
  return ORACLES[name]
