"""Configs -> models, optimizers and specs (builders.py); check_config's
one-line errors; the config files' options."""

import jax.numpy as jnp
import numpy as np
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
    ('ema_decay', 1.0, 'ema_decay'),
    ('eval.fcn.params', '/nonexistent/fcn.npz', 'eval.fcn.params file not'),
    ('method', 'spen', "method 'spen' needs a config.spen block"),
    ('method', 'ssvm', "unknown method 'ssvm'"),
    ('method', 'baseline', "method 'baseline' needs a baseline network"),
    ('model.name', 'resnet', "unknown model 'resnet' for segmentation"),
    ('task', 'no_such_module', "unknown task 'no_such_module'"),
    ('tuples.adversarial_start', 'zeros', "'zeros' was removed"),
    ('optimizer.schedule', 'cosine', "'cosine' was removed"),
    ('optimizer.name', 'adamw', "'adamw' was removed"),
    ('optimizer.schedule', 'linear', "optimizer.schedule must be 'constant'"),
    ('tuples.replay_share', 0.5, 'replay_size .* must both be 0'),
    ('tuples.replay_size', 2, 'must hold at least a batch'),
    ('tuples.replay_size', 8, 'replays 0 tuples'),
    ('tuples.mix.mixup', 0.3, 'mixup tuples of a batch mix truths'),
    ('tuples.mix.mixup', 0.1, 'mix.mixup gets no tuple of a batch of 4'),
    ('tuples.mix.ground_truth', 0.01, 'mix.ground_truth gets no tuple'),
])
def test_invalid_config_values_are_config_errors(field, value, match):
  config = horses_config.get_config('smoke')
  config.update_from_flattened_dict({field: value})
  if field == 'eval.fcn.params':
    config.eval.fcn.start_scale = 0.1   # the file is needed only when used
  if field == 'tuples.replay_size':   # of a batch of 4 (:smoke)
    config.tuples.replay_share = 0.5 if value == 2 else 0.1
  with pytest.raises(ConfigError, match=match):
    builders.check_config(config)


def test_a_list_of_fcn_files_is_checked_file_by_file(tmp_path):
  config = horses_config.get_config('smoke')
  present = tmp_path / 'fcn.npz'
  present.write_bytes(b'')
  config.eval.fcn.start_scale = 0.1
  config.eval.fcn.params = f'{present},{present}'
  builders.check_config(config)
  config.eval.fcn.params = f'{present},{tmp_path}/missing.npz'
  with pytest.raises(ConfigError, match='eval.fcn.params file not found'):
    builders.check_config(config)
  # One model of a file of several ('FILE:model') is checked by its file.
  config.eval.fcn.params = f'{present}:fcn'
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
  builders.check_config(chains)
  state = train.create_state(builders.create_model(chains), optax.adam(1e-3),
                             chains)
  assert state.chains.x.shape == (2, 24, 24, 3)
  assert chains.ema_decay == 0.999 and state.ema_params is not None
  assert horses_config.get_config('smoke').ema_decay == 0.0


def test_the_mixup_option_is_the_single_nets_recipe():
  """:mixup is :chains with a quarter adversarial and a quarter mixup
  tuples, 20000 steps on train (docs/horses.md)."""
  recipe = horses_config.get_config('chains')
  recipe.tuples.mix.adversarial = recipe.tuples.mix.mixup = 0.25
  recipe.num_train_steps, recipe.eval_every_steps = 20000, 2000
  assert horses_config.get_config('mixup').to_dict() == recipe.to_dict()
  builders.check_config(horses_config.get_config('mixup'))


def test_a_piecewise_schedule_scales_the_rate_at_each_boundary():
  config = horses_config.get_config('smoke').optimizer
  config.schedule, config.decay_steps, config.decay_factor = (
      'piecewise', (2, 4), 0.5)
  config.name, config.momentum = 'sgd', 0.0   # the update is -rate * grad
  config.learning_rate = 0.1
  params = {'w': jnp.ones(3)}
  tx = builders.make_optimizer(config)
  state = tx.init(params)
  sizes = []
  for _ in range(6):
    updates, state = tx.update({'w': jnp.ones(3)}, state, params)
    sizes.append(float(jnp.abs(updates['w'][0])))
  np.testing.assert_allclose(sizes, [0.1, 0.1, 0.05, 0.05, 0.025, 0.025],
                             rtol=1e-6)
  config.decay_steps = (4, 2)
  with pytest.raises(ConfigError, match='decay_steps must be increasing'):
    builders.make_optimizer(config)


def test_the_hybrid_option_is_the_released_recipe():
  """:interp trains the released value nets (val scored from y = 0);
  :hybrid is it with the released FCNs as start and prior; :quick is
  :chains for 4000 steps."""
  interp = horses_config.get_config('interp')
  assert not interp.eval.fcn.start_scale and not interp.eval.fcn.prior_weight
  assert interp.num_train_steps == 8000 and interp.tuples.mix.interpolated
  quick = horses_config.get_config('quick')
  assert quick.tuples.inference_chains and quick.num_train_steps == 4000
  config = horses_config.get_config('hybrid')
  assert config.tuples.to_dict() == interp.tuples.to_dict()
  assert config.tuples.inference_chains and config.ema_decay == 0.999
  assert dict(config.tuples.mix) == {
      'ground_truth': 0.0, 'inference': 0.5, 'stratified': 0.0,
      'adversarial': 0.25, 'interpolated': 0.25, 'mixup': 0.0}
  assert config.eval.fcn.params.endswith('released/horses_hybrid.npz:fcn')
  assert (config.eval.fcn.start_scale, config.eval.fcn.prior_weight) == (
      0.1, 2.35e-4)
  builders.check_config(config)   # the released FCN file is there
