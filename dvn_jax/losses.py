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


def get_loss(name: str):
  if name not in LOSSES:
    raise ConfigError(f'unknown loss {name!r}; choose one of {sorted(LOSSES)}')
  return LOSSES[name]
