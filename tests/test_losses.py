"""The regression losses of Eq. 11 (dvn_jax/losses.py)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from dvn_jax import losses
from dvn_jax.errors import ConfigError


def test_cross_entropy_and_l2_of_value_logits():
  logits = jnp.array([0.0, 2.0, -1.0])
  v_star = jnp.array([0.5, 1.0, 0.2])
  v = jax.nn.sigmoid(logits)
  np.testing.assert_allclose(
      losses.cross_entropy(logits, v_star),
      -(v_star * jnp.log(v) + (1 - v_star) * jnp.log(1 - v)), rtol=1e-6)
  np.testing.assert_allclose(losses.squared_error(logits, v_star),
                             (v - v_star) ** 2, rtol=1e-6)
  # Both are smallest where the value meets the oracle.
  grid = jnp.linspace(-4, 4, 81)
  for loss in (losses.cross_entropy, losses.squared_error):
    best = grid[jnp.argmin(loss(grid, jnp.full_like(grid, 0.3)))]
    assert abs(float(jax.nn.sigmoid(best)) - 0.3) < 0.03


def test_unknown_loss_is_a_config_error():
  assert losses.get_loss('l2') is losses.squared_error
  with pytest.raises(ConfigError, match="unknown loss 'hinge'"):
    losses.get_loss('hinge')


def test_oracle_ascent_direction_is_one_sided_at_the_bounds():
  from dvn_jax import oracles
  y_star = jnp.array([1., 1., 0., 0.]).reshape(1, 2, 2, 1)
  y = jnp.array([0., 1., 0., 1.]).reshape(1, 2, 2, 1)   # I = 1, U = 3
  g = losses.oracle_ascent_direction(oracles.iou, y, y_star).ravel()
  # Up where y* = 1 (1/U), down where y* = 0 (-I/U^2), ties included;
  # autodiff at the ties themselves would give y = y* = 0 a rising half.
  np.testing.assert_allclose(g, [1 / 3, 1 / 3, -1 / 9, -1 / 9], rtol=2e-3)
  tie = jax.grad(lambda v: jnp.sum(oracles.iou(v, y_star)))(y).ravel()
  assert tie[2] > 0


def test_gradient_mismatch_is_zero_when_aligned_and_two_when_opposed():
  g = jnp.array([[0.5, -1.0, 2.0], [1.0, 0.0, 0.0]])
  np.testing.assert_allclose(losses.gradient_mismatch(3 * g, g), [0, 0],
                             atol=1e-6)
  np.testing.assert_allclose(losses.gradient_mismatch(-g, g), [2, 2],
                             atol=1e-6)
