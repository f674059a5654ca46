"""The hybrid: an FCN's start and prior around a value function
(dvn_jax/hybrid.py)."""

import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from configs import horses as horses_config
from dvn_jax import builders
from dvn_jax import hybrid
from dvn_jax import inference
from dvn_jax import param_files
from dvn_jax import predictors
from dvn_jax import tasks
from dvn_jax.errors import CheckpointError
from dvn_jax.errors import ConfigError


@pytest.fixture(name='fcn_file')
def _fcn_file(tmp_path):
  """(path, network, params) of a random FCN of configs/horses.py's
  eval.fcn.model."""
  config = horses_config.get_config('smoke')
  builders.check_config(config)
  task = tasks.get(config)
  fcn = task.create_model(config.eval.fcn.model)
  params = task.init_params(fcn, jax.random.key(5))
  path = str(tmp_path / 'fcn.npz')
  param_files.save_params(params, path)
  return path, fcn, params


def test_the_start_is_the_fcns_mask_drawn_towards_the_papers(fcn_file):
  path, fcn, params = fcn_file
  config = horses_config.get_config('smoke')
  assert hybrid.from_config(tasks.get(config), config) is None   # off
  config.eval.fcn.params, config.eval.fcn.start_scale = path, 0.5
  builders.check_config(config)
  value_fn = hybrid.from_config(tasks.get(config), config)(
      inference.ValueFn(lambda x, y: jnp.zeros(x.shape[0])))
  x = jax.random.uniform(jax.random.key(6), (3, 24, 24, 3))
  expected = 0.5 * jax.nn.sigmoid(fcn.apply({'params': params}, x))
  np.testing.assert_allclose(value_fn.start(x), expected, rtol=1e-5)
  assert value_fn.prior is None
  # A flat value net (zero output kernel) leaves the masks at y(0).
  model = builders.create_model(config)
  net = builders.init_model_params(model, config, jax.random.key(0))
  net['out']['kernel'] = jnp.zeros_like(net['out']['kernel'])
  images = tasks.get(config).load()['val'].images[:1]
  soft = predictors.make_predict_fn(model, config)(net, images)
  assert 0.05 < float(soft.min()) and float(soft.max()) < 0.5


def test_the_prior_is_the_gradient_of_the_log_likelihood_clipped():
  """Binary: d/dy [y log p + (1 - y) log(1 - p)] = logit p; K classes:
  d/dy_k sum_k y_k log p_k = log p_k; a certain FCN pulls at most 8."""
  binary = jnp.array([0.5, 0.9, 0.1, 1.0, 0.0]).reshape(1, 5, 1, 1)
  np.testing.assert_allclose(
      np.ravel(hybrid.log_likelihood_gradient(binary)),
      [0.0, np.log(9.0), -np.log(9.0), 8.0, -8.0], rtol=1e-5, atol=1e-6)
  classes = jnp.array([0.7, 0.2, 0.1, 0.0]).reshape(1, 1, 1, 4)
  np.testing.assert_allclose(
      np.ravel(hybrid.log_likelihood_gradient(classes)),
      [np.log(0.7), np.log(0.2), np.log(0.1), -8.0], rtol=1e-5)


def test_with_fcn_sets_only_what_is_asked_and_keeps_the_value():
  probabilities = lambda x: jnp.full(x.shape[:-1] + (1,), 0.9)
  value_fn = inference.ValueFn(lambda f, y: f.sum() + y.sum(),
                               encode=lambda x: 2 * x)
  prior_only = hybrid.with_fcn(value_fn, probabilities, 0.0, 1e-3)
  assert prior_only.start is None
  x = jnp.ones((2, 3, 3, 3))
  np.testing.assert_allclose(prior_only.prior(x), 1e-3 * np.log(9.0),
                             rtol=1e-5)
  assert prior_only.encode is value_fn.encode
  assert prior_only.logits is value_fn.logits
  start_only = hybrid.with_fcn(value_fn, probabilities, 0.1, 0.0)
  assert start_only.prior is None
  np.testing.assert_allclose(start_only.start(x), 0.09, rtol=1e-6)


def test_bad_hybrid_settings_are_one_line(fcn_file):
  path = fcn_file[0]
  config = horses_config.get_config('smoke')
  config.eval.fcn.params = path
  for field, value, needle in (
      ('start_scale', -0.5, 'eval.fcn.start_scale must be in'),
      ('start_scale', 1.5, 'eval.fcn.start_scale must be in'),
      ('prior_weight', -1e-3, 'eval.fcn.prior_weight must be >= 0')):
    bad = config.copy_and_resolve_references()
    bad.eval.fcn[field] = value
    with pytest.raises(ConfigError, match=needle):
      builders.check_config(bad)
  config.eval.fcn.params, config.eval.fcn.prior_weight = '', 1e-3
  with pytest.raises(ConfigError, match='eval.fcn.params file not found'):
    builders.check_config(config)   # the prior alone needs the FCN too


def test_a_file_of_another_network_is_refused():
  config = horses_config.get_config('smoke')
  config.eval.fcn.params = os.path.join(os.path.dirname(__file__), '..',
                                        'released', 'horses_dvn.npz')
  config.eval.fcn.start_scale = 0.1
  builders.check_config(config)
  with pytest.raises(CheckpointError, match='does not fit'):   # not an FCN
    hybrid.from_config(tasks.get(config), config)
