"""The train loop's pieces, in process (dvn_jax/train.py): the state, the
jitted train step of each method, released files in their configs."""

import os

import chex
import jax
import numpy as np
import pytest

from configs import bibtex as bibtex_config
from configs import horses as horses_config
from configs import horses_fcn as fcn_config_module
from dvn_jax import builders
from dvn_jax import checkpoints
from dvn_jax import input_pipeline
from dvn_jax import param_files
from dvn_jax import stacked
from dvn_jax import tasks
from dvn_jax import train
from dvn_jax import train_state
from dvn_jax.errors import DvnError

RELEASED = os.path.join(os.path.dirname(__file__), '..', 'released')


def _first_training_examples(config, count: int):
  """(inputs, targets) of the first `count` training examples, as the loop
  puts them on the device."""
  builders.check_config(config)
  task = tasks.get(config)
  inputs, targets = task.train_arrays(task.load()['train'])
  return inputs[:count], targets[:count]


@pytest.mark.parametrize('model_name', ['value_net', 'two_stream_value_net',
                                        'fcn', 'value_net+chains',
                                        'value_net+replay'])
def test_train_step_learns_and_compiles_once(model_name):
  config = horses_config.get_config('smoke')
  model_name, chains = model_name.partition('+')[::2]
  config.model.name = model_name
  config.tuples.inference_chains = chains == 'chains'
  if chains == 'replay':
    config.tuples.replay_size, config.tuples.replay_share = 8, 0.5
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
                          input_pipeline.batch_indices(0, s, 8, 4)[None])
    metrics = jax.tree.map(lambda rows: rows[0], metrics)
  assert step._cache_size() == 1
  assert int(state.step) == 3
  assert np.isfinite(float(metrics['loss']))
  moved = jax.tree.map(lambda a, b: not np.allclose(a, b), params0,
                       jax.tree.map(np.asarray, state.params))
  assert all(jax.tree.leaves(moved))
  if chains == 'replay':   # three steps of 4 tuples: 8 held, 12 pushed
    assert int(state.replay.count) == 12 and state.chains is None
    assert {'v_star/fresh', 'v_star/replayed'} <= set(metrics)
  elif chains:   # 1 inference tuple of 4 (the mix): one chain, 2-step lives
    assert int(state.chains.age[0]) in (1, 2)
    assert state.chains.x.shape == (1, 24, 24, 3)
  else:
    assert state.chains is None


def test_a_checkpoint_from_before_the_replay_buffer_resumes(tmp_path):
  """Checkpoints written before TrainState had its replay field are read
  as a state without a buffer (not refused as another config's)."""
  config = horses_config.get_config('smoke')
  builders.check_config(config)
  model = builders.create_model(config)
  tx = builders.make_optimizer(config.optimizer)
  state = train.create_state(model, tx, config)
  manager = checkpoints.make_manager(str(tmp_path))
  checkpoints.save(manager, 7, train_state.TrainStateBeforeReplay(
      state.step + 7, state.params, state.opt_state))
  manager.wait_until_finished()
  restored = train.restore_train_state(manager, state)
  assert isinstance(restored, train_state.TrainState)
  assert int(restored.step) == 7 and restored.replay is None
  chex.assert_trees_all_equal(restored.params, state.params)


@pytest.mark.parametrize('config_module,arg,file', [
    (horses_config, 'mixup', 'horses_dvn.npz'),
    (fcn_config_module, None, 'horses_fcn.npz'),
])
def test_the_released_single_networks_fit_their_configs(config_module, arg,
                                                        file):
  config = config_module.get_config(arg)
  builders.check_config(config)
  params = train.load_trained_params(builders.create_model(config), config,
                                     None, os.path.join(RELEASED, file))
  assert not isinstance(params, stacked.Ensemble)


def test_the_released_hybrid_holds_four_value_nets_and_five_fcns():
  """released/horses_hybrid.npz: model 'dvn', four distinct value nets of
  configs/horses.py:hybrid, and 'fcn', five distinct FCNs of its eval.fcn,
  in float16, each recording its member count."""
  bundle = os.path.join(RELEASED, 'horses_hybrid.npz')
  assert os.path.getsize(bundle) < 25e6
  config = horses_config.get_config('hybrid')
  builders.check_config(config)
  assert config.eval.fcn.params == f'{os.path.abspath(bundle)}:fcn'
  task = tasks.get(config)
  for model, params, members in (
      ('dvn', train.load_trained_params(builders.create_model(config),
                                        config, None, f'{bundle}:dvn'), 4),
      ('fcn', param_files.load_params(
          config.eval.fcn.params, task.init_params(
              task.create_model(config.eval.fcn.model),
              jax.random.key(0))), 5)):
    assert isinstance(params, stacked.Ensemble) and params.size == members
    first_leaf = jax.tree.leaves(params)[0]
    assert len({np.asarray(m).tobytes() for m in first_leaf}) == members
    stored = param_files.read_params(f'{bundle}:{model}')
    assert param_files.member_count(stored) == members
    assert {str(v.dtype) for k, v in stored.items()
            if k != param_files.MEMBERS_KEY} == {'float16'}


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
                          input_pipeline.batch_indices(0, s, 8, 4)[None])
    metrics = jax.tree.map(lambda rows: rows[0], metrics)
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


@pytest.mark.parametrize('name', ['horses', 'horses+chains+ema', 'bibtex',
                                  'baseline'])
def test_fused_steps_give_the_parameters_of_single_steps(name):
  """K = 4 steps in one compiled call (a lax.scan) give the parameters,
  chains and metrics of 4 calls of one step, to float tolerance."""
  config = (bibtex_config if name == 'bibtex' else
            horses_config).get_config('smoke')
  if 'chains' in name:
    config.tuples.inference_chains = True
    config.ema_decay = 0.9
  if name == 'baseline':
    config = fcn_config_module.get_config('smoke')
  inputs, targets = _first_training_examples(config, 8)
  model = builders.create_model(config)
  tx = builders.make_optimizer(config.optimizer)
  step = train.make_train_step(model, tx, config)
  batches = input_pipeline.steps_batch_indices(0, 0, 4, 8, 4)
  np.testing.assert_array_equal(
      batches, [input_pipeline.batch_indices(0, s, 8, 4) for s in range(4)])
  single = train.create_state(model, tx, config)
  rows = []
  for batch in batches:
    single, metrics = step(single, inputs, targets, batch[None])
    rows.append(metrics)
  fused, fused_metrics = step(train.create_state(model, tx, config), inputs,
                              targets, batches)
  assert int(fused.step) == int(single.step) == 4
  # Adam divides by the root of tiny second moments, so float-order
  # differences of XLA's two programs show at ~1e-6 absolute; a wrong batch
  # or key moves parameters by ~1e-3.
  chex.assert_trees_all_close(jax.device_get(fused), jax.device_get(single),
                              rtol=1e-4, atol=1e-5)
  chex.assert_trees_all_close(
      jax.device_get(fused_metrics),
      jax.tree.map(lambda *r: np.concatenate(r), *jax.device_get(rows)),
      rtol=1e-4, atol=1e-5)


def test_call_ends_stop_at_every_evaluation_and_checkpoint():
  assert train.call_ends(0, 10, 4, [3, 6]) == [3, 6, 10]
  assert train.call_ends(0, 10, 1, []) == list(range(1, 11))
  assert train.call_ends(2, 20, 8, [5, 20, 30]) == [5, 13, 20]
  assert train.call_ends(7, 7, 4, [3]) == []


def test_a_fused_run_trains_and_scores_as_single_steps(tmp_path):
  """The loop with steps_per_call = 4 evaluates and checkpoints at the same
  steps as with 1, to the same parameters (float tolerance)."""
  results = {}
  for k in (1, 4):
    config = bibtex_config.get_config('smoke')
    config.steps_per_call = k
    workdir = tmp_path / str(k)
    metrics = train.train_and_evaluate(config, str(workdir))
    model = builders.create_model(config)
    results[k] = (metrics, train.restore_state(model, config, str(workdir)),
                  sorted(p.name for p in (workdir / 'checkpoints').iterdir()))
  (m1, s1, saved1), (m4, s4, saved4) = results[1], results[4]
  assert saved1 == saved4
  assert int(s1.step) == int(s4.step) == 6
  chex.assert_trees_all_close(jax.device_get(s1.params),
                              jax.device_get(s4.params), rtol=1e-4, atol=1e-5)
  assert m1.keys() == m4.keys()
  assert abs(m1['f1'] - m4['f1']) < 1e-3
