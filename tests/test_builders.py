"""Configs -> models, optimizers and specs (builders.py); check_config's
one-line errors; the config files' options."""

import jax.numpy as jnp
import optax
import pytest

from configs import horses as horses_config
from configs import horses_fcn as fcn_config_module
from dvn_jax import builders
from dvn_jax import models
from dvn_jax import train
from dvn_jax.errors import ConfigError


@pytest.mark.parametrize('field,value,match', [
    ('optimizer.learning_rate', -0.1, 'learning_rate'),
    ('crop_size', 40, 'crop_size'),
    ('eval.num_crops', 10, 'square'),
    ('tuples.temperature', 0.0, 'tau'),
    ('tuples.inference.num_steps', 0, 'num_steps'),
    ('optimizer.name', 'rmsprop', 'optimizer.name'),
    ('tuples.mix.inference', -0.5, 'weights'),
    ('init_from', '/nonexistent/fcn.npz', 'init_from file not found'),
    ('init_layers', 'heads', 'init_layers must be one of'),
    ('ema_decay', 1.0, 'ema_decay'),
    ('tuples.echo', 0, 'tuples.echo must be an integer >= 1'),
    ('augment.scale', 1.0, r'augment.scale must be in \[0, 1\)'),
    ('augment.contrast', -0.1, 'augment.contrast must be >= 0'),
    ('start.params', '/nonexistent/fcn.npz', 'start.params file not found'),
])
def test_invalid_config_values_are_config_errors(field, value, match):
  config = horses_config.get_config('smoke')
  node = config
  *parents, leaf = field.split('.')
  for parent in parents:
    node = node[parent]
  node[leaf] = value
  with pytest.raises(ConfigError, match=match):
    builders.check_config(config)
    builders.make_optimizer(config.optimizer, 1)


def test_a_list_of_start_files_is_checked_file_by_file(tmp_path):
  config = horses_config.get_config('smoke')
  present = tmp_path / 'fcn.npz'
  present.write_bytes(b'')
  config.start.params = f'{present},{present}'
  builders.check_config(config)
  config.start.params = f'{present},{tmp_path}/missing.npz'
  with pytest.raises(ConfigError, match='start.params file not found'):
    builders.check_config(config)
  # One model of a file of several ('FILE:model') is checked by its file.
  config.start.params = config.eval.fcn.params = f'{present}:fcn'
  config.eval.fcn.weight = 0.4
  builders.check_config(config)
  config.eval.fcn.params = f'{tmp_path}/missing.npz:fcn'
  with pytest.raises(ConfigError, match='eval.fcn.params file not found'):
    builders.check_config(config)


def test_a_mix_with_no_positive_weight_is_a_config_error():
  config = horses_config.get_config('smoke')
  for name in config.tuples.mix:
    config.tuples.mix[name] = 0.0
  with pytest.raises(ConfigError, match='positive sum'):
    builders.check_config(config)


def test_fcn_config_ema_option_and_unknown_ones_fail():
  default = fcn_config_module.get_config()
  ema = fcn_config_module.get_config('ema')
  assert default.ema_decay == 0.0 and default.num_train_steps == 3000
  assert ema.ema_decay == 0.999 and ema.num_train_steps == 6000
  assert ema.model.name == 'fcn' and ema.batch_size == default.batch_size
  smoke = fcn_config_module.get_config('smoke')
  assert fcn_config_module.get_config('ema,smoke').num_train_steps == (
      smoke.num_train_steps)
  # smoke keeps the value net's small smoke batch, not the FCN's 32.
  assert smoke.batch_size == horses_config.get_config('smoke').batch_size
  assert default.batch_size == 32
  with pytest.raises(ValueError, match="unknown config argument.*'chains'"):
    fcn_config_module.get_config('ema,chains')


def test_horses_config_options_combine_and_unknown_ones_fail():
  config = horses_config.get_config('two_stream,smoke')
  assert config.model.name == 'two_stream_value_net'
  assert config.num_train_steps == horses_config.get_config(
      'smoke').num_train_steps
  assert isinstance(builders.create_model(config), models.TwoStreamValueNet)
  with pytest.raises(ValueError, match="unknown config argument.*'moon'"):
    horses_config.get_config('smoke,moon')
  chains = horses_config.get_config('chains,smoke')
  assert chains.tuples.inference_chains and chains.batch_size == 4
  assert horses_config.get_config('chains').tuples.chain_steps == 4
  assert not horses_config.get_config('smoke').tuples.inference_chains
  state = train.create_state(builders.create_model(chains), optax.adam(1e-3),
                             chains)
  assert state.chains.x.shape == (2, 24, 24, 3)
  assert chains.ema_decay == 0.999 and state.ema_params is not None
  assert horses_config.get_config('smoke').ema_decay == 0.0


def test_schedules_count_train_steps_when_each_makes_several_updates():
  config = horses_config.get_config('smoke').optimizer
  config.schedule, config.warmup_steps = 'cosine', 2
  config.name, config.momentum = 'sgd', 0.0   # the update is -rate * grad
  params = {'w': jnp.ones(3)}
  rates = {}
  for updates_per_step in (1, 3):
    tx = builders.make_optimizer(config, 10, updates_per_step)
    state = tx.init(params)
    sizes = []
    for _ in range(6):
      updates, state = tx.update({'w': jnp.ones(3)}, state, params)
      sizes.append(float(jnp.abs(updates['w'][0])))
    rates[updates_per_step] = sizes
  # Three updates a step: each train step's rate, three times over.
  assert rates[3][:3] == [rates[1][0]] * 3
  assert rates[3][3:] == [rates[1][1]] * 3
  assert rates[1][1] > rates[1][0]
