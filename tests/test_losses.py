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
