"""The train loop's pieces, in process (dvn_jax/train.py): the state, the
jitted train step of each method, released files in their configs."""

import os

import jax
import numpy as np
import pytest

from configs import horses as horses_config
from configs import horses_fcn as fcn_config_module
from dvn_jax import builders
from dvn_jax import input_pipeline
from dvn_jax import param_files
from dvn_jax import stacked
from dvn_jax import tasks
from dvn_jax import train
from dvn_jax.errors import DvnError


def _first_training_examples(config, count: int):
  """(inputs, targets) of the first `count` training examples, as the loop
  puts them on the device."""
  builders.check_config(config)
  task = tasks.get(config)
  inputs, targets = task.train_arrays(task.load()['train'])
  return inputs[:count], targets[:count]


@pytest.mark.parametrize('model_name', ['value_net', 'two_stream_value_net',
                                        'fcn', 'value_net+chains'])
def test_train_step_learns_and_compiles_once(model_name):
  config = horses_config.get_config('smoke')
  model_name, chains = model_name.partition('+')[::2]
  config.model.name = model_name
  config.tuples.inference_chains = bool(chains)
  if model_name == 'fcn':
    del config.model.dropout_rate
    config.method = 'baseline'
  builders.check_config(config)
  config.tuples.mix.stratified = 0.5
  config.tuples.mix.ground_truth = 0.5
  images, masks = _first_training_examples(config, 8)
  model = builders.create_model(config)
  tx = builders.make_optimizer(config.optimizer)
  state = train.create_state(model, tx, config)
  step = train.make_train_step(model, tx, config)
  params0 = jax.tree.map(np.asarray, state.params)
  for s in range(3):
    state, metrics = step(state, images, masks,
                          input_pipeline.batch_indices(0, s, 8, 4))
  assert step._cache_size() == 1
  assert int(state.step) == 3
  assert np.isfinite(float(metrics['loss']))
  moved = jax.tree.map(lambda a, b: not np.allclose(a, b), params0,
                       jax.tree.map(np.asarray, state.params))
  assert all(jax.tree.leaves(moved))
  if chains:   # 1 inference tuple of 4 (the mix): one chain, 2-step lives
    assert int(state.chains.age[0]) in (1, 2)
    assert state.chains.x.shape == (1, 24, 24, 3)
  else:
    assert state.chains is None


@pytest.mark.parametrize(
    'config_module,single_file,ensemble_file,members,atol', [
    (horses_config, 'horses_dvn.npz', 'horses_dvn_ensemble.npz', 2, 1e-4),
    (fcn_config_module, 'horses_fcn.npz', 'horses_fcn_ensemble.npz', 5, 1e-3),
])
def test_released_horse_files_fit_their_default_configs(
    config_module, single_file, ensemble_file, members, atol):
  """The released value net and FCN, and their float16 ensembles, load into
  configs/horses.py's and configs/horses_fcn.py's models; each ensemble's
  first member is the released single file, the second another network."""
  config = config_module.get_config()
  model = builders.create_model(config)
  root = os.path.join(os.path.dirname(__file__), '..', 'released')
  single = train.load_trained_params(
      model, config, None, os.path.join(root, single_file))
  ensemble = train.load_trained_params(
      model, config, None, os.path.join(root, ensemble_file))
  assert ensemble.size == members
  jax.tree.map(lambda e, p: np.testing.assert_allclose(
      e[0], p, rtol=1e-3, atol=atol), ensemble.members, single)
  first_leaf = jax.tree.leaves(ensemble)[0]   # (members, ...)
  assert not np.allclose(first_leaf[1], jax.tree.leaves(single)[0])


@pytest.mark.parametrize('config_module,arg,file,members', [
    (fcn_config_module, 'ema', 'horses_fcn_ema_ensemble.npz', 5),
    (horses_config, 'chains', 'horses_dvn_long_pair.npz', 2),
    (horses_config, 'chains',
     'horses_dvn_long_pair.npz,horses_dvn_interp_seed2.npz', 3),
])
def test_released_ensembles_of_the_best_result_fit_their_configs(
    config_module, arg, file, members):
  """released/horses_fcn_ema_ensemble.npz (five FCNs of
  configs/horses_fcn.py:ema) and horses_dvn_long_pair.npz (two value nets
  of configs/horses.py:chains; with horses_dvn_interp_seed2.npz, named
  beside it, three): distinct members that load into their config's model
  (the files of the best horse result)."""
  config = config_module.get_config(arg)
  released = os.path.join(os.path.dirname(__file__), '..', 'released')
  path = ','.join(os.path.join(released, name)
                  for name in param_files.param_file_names(file))
  ensemble = train.load_trained_params(builders.create_model(config), config,
                                       None, path)
  first_leaf = jax.tree.leaves(ensemble)[0]   # (members, ...)
  assert first_leaf.shape[0] == members
  assert len({np.asarray(m).tobytes() for m in first_leaf}) == members


def test_released_single_file_holds_the_best_results_models_in_int8():
  """released/horses_best_int8.npz, one file under 12 MB: its models 'dvn'
  and 'fcn' are the three value nets and five FCNs of the best result, each
  kernel within half an int8 step of its column's range and every other
  array the same float16 values."""
  released = os.path.join(os.path.dirname(__file__), '..', 'released')
  bundle = os.path.join(released, 'horses_best_int8.npz')
  assert os.path.getsize(bundle) < 12e6
  for model, files in (
      ('dvn', 'horses_dvn_long_pair.npz,horses_dvn_interp_seed2.npz'),
      ('fcn', 'horses_fcn_ema_ensemble.npz')):
    reference = param_files.read_params_list(','.join(
        os.path.join(released, name) for name in files.split(',')))
    stored = param_files.read_params(f'{bundle}:{model}')
    # (The bundle predates the recorded member count: the migration reads it.)
    assert (param_files.member_count(stored) ==
            param_files.member_count(reference))
    reference.pop(param_files.MEMBERS_KEY, None)
    assert stored.keys() == reference.keys()
    for name, value in reference.items():
      value = value.astype(np.float32)
      if stored[name].dtype == np.float16:
        np.testing.assert_array_equal(stored[name], value)
      else:
        step = np.abs(value).max(axis=-2, keepdims=True) / 127
        assert np.all(np.abs(stored[name] - value) <= step / 2 + 1e-3), name


def _train_smoke_steps(config, num_steps: int):
  """(state, metrics of the last step) after num_steps train steps of
  `config` on the first 8 training images, on the host."""
  images, masks = _first_training_examples(config, 8)
  model = builders.create_model(config)
  tx = builders.make_optimizer(config.optimizer)
  state = train.create_state(model, tx, config)
  step = train.make_train_step(model, tx, config)
  for s in range(num_steps):
    state, metrics = step(state, images, masks,
                          input_pipeline.batch_indices(0, s, 8, 4))
  return jax.device_get((state, metrics))


def test_moving_average_leaves_training_unchanged_and_is_evaluated():
  """With ema_decay the live parameters train exactly as without it; the
  average trails them and is what eval_params returns."""
  base = horses_config.get_config('smoke')
  states = {}
  for decay in (0.0, 0.9):
    config = base.copy_and_resolve_references()
    config.ema_decay = decay
    states[decay] = _train_smoke_steps(config, 3)[0]
  plain, averaged = states[0.0], states[0.9]
  assert plain.ema_params is None
  assert train.eval_params(plain) is plain.params
  for a, b in zip(jax.tree.leaves(plain.params),
                  jax.tree.leaves(averaged.params)):
    np.testing.assert_array_equal(a, b)
  assert train.eval_params(averaged) is averaged.ema_params
  differs = jax.tree.map(lambda a, b: not np.allclose(a, b),
                         averaged.params, averaged.ema_params)
  assert all(jax.tree.leaves(differs))


def test_init_from_starts_from_a_file_of_the_same_network(tmp_path):
  """config.init_from: the parameters of an export, a fresh optimizer
  state and the moving average restarted from them; an ensemble file or
  another network's is refused in one line."""
  config = horses_config.get_config('chains,smoke')
  builders.check_config(config)
  model = builders.create_model(config)
  tx = builders.make_optimizer(config.optimizer)
  state = train.create_state(model, tx, config)
  other = builders.init_model_params(model, config, jax.random.key(7))
  path = str(tmp_path / 'net.npz')
  param_files.save_params(other, path)
  started = train.started_from(state, tx, path)
  jax.tree.map(np.testing.assert_array_equal, started.params, other)
  jax.tree.map(np.testing.assert_array_equal, started.ema_params, other)
  pair = str(tmp_path / 'pair.npz')
  param_files.save_params(stacked.stack_members([other, other]), pair)
  with pytest.raises(DvnError, match='holds 2 networks; start from one'):
    train.started_from(state, tx, pair)
  fcn = fcn_config_module.get_config('smoke')
  builders.check_config(fcn)
  fcn_path = str(tmp_path / 'fcn.npz')
  fcn_model = builders.create_model(fcn)
  param_files.save_params(builders.init_model_params(
      fcn_model, fcn, jax.random.key(0)), fcn_path)
  with pytest.raises(DvnError, match='does not fit'):
    train.started_from(state, tx, fcn_path)
