"""Predict functions (predictors.py): shapes, one compile, ensembles, the
CPU compile-time warning."""

import jax
import numpy as np
import pytest

from configs import horses as horses_config
from dvn_jax import builders
from dvn_jax import predictors
from dvn_jax import stacked
from dvn_jax import train
from dvn_jax.errors import ConfigError


def test_a_cpu_eval_batch_that_compiles_for_ages_is_warned_of():
  config = horses_config.get_config()
  assert predictors.slow_compile_warning(config) is None   # 1 image, 36 crops
  config.eval.batch_size, config.eval.num_crops = 40, 4
  warning = predictors.slow_compile_warning(config)
  if jax.default_backend() == 'cpu':
    assert 'eval.batch_size=40 x 4 crops x 30 ascent steps' in warning
  config.eval.inference.num_steps = 2    # what the smoke config runs
  assert predictors.slow_compile_warning(config) is None


def test_predict_fn_shapes_and_single_compile():
  config = horses_config.get_config('smoke')
  model = builders.create_model(config)
  tx = builders.make_optimizer(config.optimizer, 1)
  params = train.create_state(model, tx, config).params
  predict = predictors.make_predict_fn(model, config, return_trajectory=True)
  images = np.zeros((3, 32, 32, 3), np.uint8)
  masks, trajectory = predict(params, images)
  predict(params, images + 1)
  assert masks.shape == (3, 32, 32, 1)
  assert trajectory.shape == (config.eval.inference.num_steps + 1, 3, 32, 32, 1)
  assert predict._cache_size() == 1


@pytest.mark.parametrize('model_name', ['value_net', 'fcn'])
def test_predict_fn_averages_the_members_of_an_ensemble(model_name):
  """Parameters stacked on a leading axis: the mean of each network's soft
  masks (and trajectories), with the inference of each network alone."""
  config = horses_config.get_config('smoke')
  with config.unlocked():
    config.model = {'name': model_name}
  model = builders.create_model(config)
  members = [builders.init_model_params(model, config, jax.random.key(seed))
             for seed in (0, 1)]
  together_params = stacked.stack_members(members)
  images = np.random.default_rng(0).integers(0, 256, (2, 32, 32, 3), np.uint8)
  trajectory = model_name == 'value_net'
  predict = predictors.make_predict_fn(model, config,
                                       return_trajectory=trajectory)
  alone = [predict(params, images) for params in members]
  together = predict(together_params, images)
  expected = jax.tree.map(lambda a, b: (a + b) / 2, *alone)
  jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, atol=1e-6),
               together, expected)
  first = jax.tree.leaves(alone[0])[0]
  assert not np.allclose(first, jax.tree.leaves(alone[1])[0])


def test_predict_fn_ascends_an_ensembles_mean_value():
  """eval.ensemble='values': one ascent on the members' mean value (a
  network with itself is that network; two differ from averaging their
  masks); a bad name is a one-line config error."""
  config = horses_config.get_config('smoke')
  model = builders.create_model(config)
  members = [builders.init_model_params(model, config, jax.random.key(seed))
             for seed in (0, 1)]
  images = np.random.default_rng(0).integers(0, 256, (2, 32, 32, 3), np.uint8)
  outputs = predictors.make_predict_fn(model, config)
  with config.unlocked():
    config.eval.ensemble = 'values'
  values = predictors.make_predict_fn(model, config)
  twice = stacked.stack_members([members[0]] * 2)
  np.testing.assert_allclose(values(twice, images),
                             outputs(members[0], images), atol=1e-6)
  np.testing.assert_allclose(values(members[1], images),
                             outputs(members[1], images), atol=1e-6)
  pair = stacked.stack_members(members)
  assert not np.allclose(values(pair, images), outputs(pair, images),
                         atol=1e-3)
  with config.unlocked():
    config.eval.ensemble = 'mean'
  with pytest.raises(ConfigError, match="eval.ensemble must be one of "
                     r"\('outputs', 'values'\), got 'mean'"):
    builders.check_config(config)
