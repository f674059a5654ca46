"""The train state's moving average (dvn_jax/train_state.py)."""

import jax.numpy as jnp
import numpy as np
import pytest

from dvn_jax import train_state
from dvn_jax.errors import ConfigError


def test_update_ema_warms_up_then_decays_at_the_set_rate():
  ema, params = {'w': jnp.zeros(2)}, {'w': jnp.ones(2)}
  # Step 0: rate min(0.99, 1/10) = 0.1, so the average is mostly params.
  first = train_state.update_ema(ema, params, 0.99, jnp.asarray(0))
  np.testing.assert_allclose(first['w'], 0.9)
  late = train_state.update_ema(ema, params, 0.99, jnp.asarray(10_000))
  np.testing.assert_allclose(late['w'], 0.01, rtol=1e-5)


def test_ema_decay_outside_zero_to_one_is_refused():
  from configs import horses  # pylint: disable=g-import-not-at-top
  config = horses.get_config('smoke')
  for decay in (-0.1, 1.0):
    config.ema_decay = decay
    with pytest.raises(ConfigError, match=r'ema_decay must be in \[0, 1\)'):
      train_state.ema_decay(config)
