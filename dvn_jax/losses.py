"""Regression losses between value logits and oracle values (paper Eq. 11)."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import optax

from dvn_jax.errors import ConfigError

Array = jax.Array


def cross_entropy(logits: Array, v_star: Array) -> Array:
  """-v* log v - (1 - v*) log(1 - v), v = sigmoid(logits) (Eq. 11); (B,)."""
  return optax.sigmoid_binary_cross_entropy(logits, v_star)


def squared_error(logits: Array, v_star: Array) -> Array:
  """(v - v*)^2 with v = sigmoid(logits); the paper's L2 alternative; (B,)."""
  return jnp.square(jax.nn.sigmoid(logits) - v_star)


LOSSES = {'cross_entropy': cross_entropy, 'l2': squared_error}


def oracle_ascent_direction(oracle, y: Array, y_star: Array,
                            eps: float = 1e-3) -> Array:
  """The oracle's gradient in y (Eq. 9, 10), one-sided where y = y*.

  The relaxed scores are min/max sums, whose autodiff splits a tie y = y*
  in halves; taken at y moved eps inside [0, 1] instead, each pixel of a
  binary y* gets the derivative of the direction the projected ascent can
  take (up at y = 0, down at y = 1): 1/U where y* = 1, -I/U^2 where y* = 0
  for IoU. Shape of y."""
  inside = jnp.clip(y, eps, 1.0 - eps)
  return jax.grad(lambda v: jnp.sum(oracle(v, y_star)))(inside)


def gradient_mismatch(value_gradient: Array, oracle_gradient: Array
                      ) -> Array:
  """1 - cos(dv/dy, dv*/dy) per example (B,): 0 when the value climbs
  where the oracle does (ours; a Sobolev-style term beside Eq. 11)."""
  axes = tuple(range(1, value_gradient.ndim))
  dot = jnp.sum(value_gradient * oracle_gradient, axis=axes)
  norms = (jnp.sqrt(jnp.sum(jnp.square(value_gradient), axis=axes)) *
           jnp.sqrt(jnp.sum(jnp.square(oracle_gradient), axis=axes)))
  return 1.0 - dot / (norms + 1e-12)


def get_loss(name: str):
  if name not in LOSSES:
    raise ConfigError(f'unknown loss {name!r}; choose one of {sorted(LOSSES)}')
  return LOSSES[name]
