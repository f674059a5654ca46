"""Predict functions (predictors.py): shapes, one compile, ensembles, the
CPU compile-time warning."""

import jax
import numpy as np
import pytest

from configs import horses as horses_config
from dvn_jax import builders
from dvn_jax import predictors
from dvn_jax import stacked
from dvn_jax import tasks
from dvn_jax import train


def test_a_cpu_eval_batch_that_compiles_for_ages_is_warned_of():
  config = horses_config.get_config()
  builders.check_config(config)
  model = builders.create_model(config)
  warning = lambda: tasks.get(config).compile_warning(model)
  assert warning() is None   # 1 image, 36 crops
  config.eval.batch_size, config.eval.num_crops = 40, 4
  if jax.default_backend() == 'cpu':
    assert 'eval.batch_size=40 x 4 crops x 30 ascent steps' in warning()
  config.eval.inference.num_steps = 2    # what the smoke config runs
  assert warning() is None


def test_predict_fn_shapes_and_single_compile():
  config = horses_config.get_config('smoke')
  model = builders.create_model(config)
  tx = builders.make_optimizer(config.optimizer)
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
    config.method = 'dvn' if model_name == 'value_net' else 'baseline'
  builders.check_config(config)
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
