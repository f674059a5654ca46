"""Ensembles in memory (dvn_jax/stacked.py)."""

import jax
import jax.numpy as jnp
import numpy as np

from dvn_jax import stacked


def test_an_ensemble_is_told_by_its_type_and_splits_into_its_members():
  members = [{'w': jnp.full((2, 3), float(k)), 'b': jnp.full(3, -k)}
             for k in range(3)]
  ensemble = stacked.stack_members(members)
  assert isinstance(ensemble, stacked.Ensemble) and ensemble.size == 3
  for got, want in zip(stacked.split_members(ensemble), members):
    jax.tree.map(np.testing.assert_array_equal, got, want)
  assert stacked.split_members(members[0]) == [members[0]]


def test_outputs_are_averaged_over_members_also_under_jit():
  members = [{'w': jnp.array(2.0)}, {'w': jnp.array(4.0)}]
  predict = stacked.averaged_over_members(lambda p, x: p['w'] * x)
  x = jnp.arange(3.0)
  np.testing.assert_allclose(jax.jit(predict)(stacked.stack_members(members),
                                              x), 3.0 * x)
  np.testing.assert_allclose(predict(members[0], x), 2.0 * x)
