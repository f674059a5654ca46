"""SPEN's structured hinge (dvn_jax/methods/spen.py): cost-augmented
inference, the hinge, and the method end to end on the smoke configs."""

import importlib

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from configs import bibtex as bibtex_config
from configs import common
from dvn_jax import builders
from dvn_jax import inference
from dvn_jax import oracles
from dvn_jax import tasks
from dvn_jax import train
from dvn_jax.errors import ConfigError
from dvn_jax.datasets import make_part_labels_fixture as lfw_fixture
from dvn_jax.methods import spen
from test_multilabel import random_arrays
from test_multilabel import write_mulan


def _bibtex_net(seed: int = 0):
  config = bibtex_config.get_config('smoke,spen')
  builders.check_config(config)
  task = tasks.get(config)
  model = builders.create_model(config)
  params = builders.init_model_params(model, config, jax.random.key(seed))
  inputs, targets = task.train_arrays(task.load()['train'])
  return config, task, model, params, inputs[:16], targets[:16]


def test_the_most_violating_output_beats_the_truth_under_the_augmented_objective():
  config, task, model, params, x, y_star = _bibtex_net()
  value_fn = spen.bind(model, params)
  oracle = oracles.get_oracle(task.oracle)
  spec = inference.AscentSpec(num_steps=20, step_size=0.5, projection='box')
  y_hat = spen.most_violating(value_fn, x, y_star, oracle, spec)
  assert float(y_hat.min()) >= 0.0 and float(y_hat.max()) <= 1.0
  augmented = lambda y: (inference.objective_fn(value_fn, x)(y)
                         + spen.task_loss(oracle, y, y_star))
  # The truth's task loss is 0, so any output it loses to violates.
  assert np.all(np.asarray(augmented(y_hat)) > np.asarray(augmented(y_star)))
  # And the ascent climbed: it ends no lower than its start, y = 0 (some
  # examples stay there: both terms' gradients point below the box).
  start = np.asarray(augmented(jnp.zeros_like(y_star)))
  assert np.all(np.asarray(augmented(y_hat)) >= start - 1e-6)
  assert np.any(np.asarray(augmented(y_hat)) > start + 0.1)


def test_the_hinge_is_zero_when_the_margin_is_met_and_linear_otherwise():
  delta = jnp.array([0.3, 0.3, 0.3])
  v_truth = jnp.array([0.9, 0.9, 0.5])
  v_hat = jnp.array([0.5, 0.55, 0.5])
  np.testing.assert_allclose(spen.structured_hinge(v_hat, v_truth, delta),
                             [0.0, 0.0, 0.3], atol=1e-7)
  grad = jax.grad(lambda v: spen.structured_hinge(v, v_truth, delta).sum())
  np.testing.assert_allclose(grad(v_hat), [0.0, 0.0, 1.0])


def test_spen_refuses_a_baseline_network():
  config = bibtex_config.get_config('smoke,spen')
  config.model.name = 'mlc_classifier'
  del config.model.global_hidden
  config.model.feature_sizes = ()
  with pytest.raises(ConfigError, match="method 'spen' needs a value network"):
    builders.check_config(config)


@pytest.mark.parametrize('config_file', ['bibtex', 'horses', 'bookmarks',
                                         'lfw'])
def test_the_spen_smoke_configs_train_and_evaluate(tmp_path, config_file):
  """`:smoke,spen` of each task's config, on the embedded data or on files
  in the official formats (Bookmarks, LFW)."""
  config = importlib.import_module(f'configs.{config_file}').get_config(
      'smoke,spen')
  assert config.method == 'spen'
  if config_file == 'bookmarks':
    write_mulan(tmp_path, 'bookmarks', random_arrays(120, 2150, 208))
    config.data.path = str(tmp_path)
  if config_file == 'lfw':
    config.data.path = str(lfw_fixture.write_fixture(tmp_path / 'lfw'))
  metrics = train.train_and_evaluate(config, str(tmp_path / 'run'))
  task = tasks.get(config)
  assert np.isfinite(metrics[task.headline])
  test = train.evaluate_checkpoint(config, str(tmp_path / 'run'), 'test')
  assert np.isfinite(test[task.headline])


def test_pretraining_moves_the_feature_network_alone_then_the_hinge_all():
  """With pretrain_steps = 2, the first two steps train b(x) by the logistic
  loss (the global term's weights stay), the third trains everything."""
  config, task, model, params, x, y_star = _bibtex_net()
  config.spen.pretrain_steps = 2
  config.optimizer.weight_decay = 0.0
  tx = builders.make_optimizer(config.optimizer)
  step = train.make_train_step(model, tx, config)
  state = train.create_state(model, tx, config)
  start = jax.device_get(state.params)
  indices = np.arange(8, dtype=np.int32)[None]
  for expected_global_moves in (False, False, True):
    before = jax.device_get(state.params)
    state, _ = step(state, x, y_star, indices)
    after = jax.device_get(state.params)
    moved = not np.array_equal(before['global1']['kernel'],
                               after['global1']['kernel'])
    assert moved == expected_global_moves
  assert not np.array_equal(start['local']['kernel'],
                            jax.device_get(state.params)['local']['kernel'])


def test_pretraining_needs_an_encoding_shaped_like_the_output():
  from configs import horses
  config = horses.get_config('smoke')
  config.method = 'spen'
  config.spen = common.spen(2, 50.0, pretrain_steps=5)
  with pytest.raises(ConfigError, match='needs a network whose encoding'):
    builders.check_config(config)
