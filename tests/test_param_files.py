"""Parameter files (dvn_jax/param_files.py): round trip, strict loading,
ensembles, int8 storage, files of several models."""

import flax
import jax
import numpy as np
import pytest

import networks
from dvn_jax import param_files
from dvn_jax import stacked
from dvn_jax.errors import CheckpointError

CROP = 8


def _params(name: str, seed: int) -> dict:
  return networks.init(networks.create(name), jax.random.key(seed),
                            CROP)


def test_load_params_round_trip_and_mismatch(tmp_path):
  params = _params('value_net', 3)
  path = str(tmp_path / 'p.npz')
  param_files.save_params(params, path)
  loaded = param_files.load_params(path, params)
  jax.tree.map(np.testing.assert_array_equal, loaded, params)
  with pytest.raises(CheckpointError, match='does not fit'):
    param_files.load_params(path, _params('fcn', 0))


def test_ensemble_file_stacks_members_and_loads_with_their_axis(tmp_path):
  members = [_params('value_net', seed) for seed in (3, 4, 5)]
  paths = [str(tmp_path / f'm{i}.npz') for i in range(3)]
  for params, path in zip(members, paths):
    param_files.save_params(params, path)
  ensemble = str(tmp_path / 'ensemble.npz')
  param_files.save_params(param_files.stack_params(paths), ensemble)
  loaded = param_files.load_params(ensemble, members[0])
  assert isinstance(loaded, stacked.Ensemble) and loaded.size == 3
  for i, params in enumerate(members):
    jax.tree.map(lambda a, b, i=i: np.testing.assert_array_equal(a[i], b),
                 loaded.members, params)
  assert int(np.load(ensemble)[param_files.MEMBERS_KEY]) == 3
  with pytest.raises(CheckpointError, match='does not fit'):
    param_files.load_params(ensemble, _params('fcn', 0))
  fcn_path = str(tmp_path / 'fcn.npz')
  param_files.save_params(_params('fcn', 0), fcn_path)
  with pytest.raises(CheckpointError, match='hold different models'):
    param_files.stack_params([paths[0], fcn_path])
  # An ensemble file named among the inputs adds each of its members.
  pair = str(tmp_path / 'pair.npz')
  param_files.save_params(param_files.stack_params(paths[:2]), pair)
  grown = param_files.stack_params([pair, paths[2]])
  for name, arrays in param_files.read_params(ensemble).items():
    np.testing.assert_array_equal(grown[name], arrays)
  # Each member comes back out alone; a single network or a wrong index
  # is an error.
  for i, params in enumerate(members):
    flat = param_files.member_params(ensemble, i)
    for name, value in flax.traverse_util.flatten_dict(params,
                                                       sep='/').items():
      np.testing.assert_array_equal(flat[name], value)
  with pytest.raises(CheckpointError, match='members 0..2, not 3'):
    param_files.member_params(ensemble, 3)
  with pytest.raises(CheckpointError, match='holds one network'):
    param_files.member_params(paths[0], 0)


def test_ensembles_round_trip_and_files_older_than_the_record_load(tmp_path):
  members = [_params('value_net', seed) for seed in (3, 4)]
  ensemble = stacked.stack_members(members)
  path = str(tmp_path / 'e.npz')
  param_files.save_params(ensemble, path)
  loaded = param_files.load_params(path, members[0])
  jax.tree.map(np.testing.assert_array_equal, loaded.members, ensemble.members)
  # Written before MEMBERS_KEY: the stacked biases say it is an ensemble.
  legacy = str(tmp_path / 'legacy.npz')
  np.savez(legacy, **{k: v for k, v in param_files.read_params(path).items()
                      if k != param_files.MEMBERS_KEY})
  old = param_files.load_params(legacy, members[0])
  assert isinstance(old, stacked.Ensemble) and old.size == 2
  jax.tree.map(np.testing.assert_array_equal, old.members, ensemble.members)
  one = str(tmp_path / 'one.npz')
  param_files.save_params(members[0], one)
  assert not isinstance(param_files.load_params(one, members[0]),
                        stacked.Ensemble)


def test_a_list_of_files_loads_as_the_ensemble_of_their_members(tmp_path):
  members = [_params('value_net', seed) for seed in (3, 4, 5)]
  paths = [str(tmp_path / f'm{i}.npz') for i in range(3)]
  for params, path in zip(members, paths):
    param_files.save_params(params, path, 'float16')
  pair = str(tmp_path / 'pair.npz')
  param_files.save_params(param_files.stack_params(paths[:2]), pair, 'float16')
  whole = str(tmp_path / 'whole.npz')
  param_files.save_params(param_files.stack_params(paths), whole, 'float16')
  # An ensemble file and a single network named together: three members,
  # the same arrays as the one file that stacks all three.
  listed = param_files.load_params(f'{pair},{paths[2]}', members[0])
  jax.tree.map(np.testing.assert_array_equal, listed,
               param_files.load_params(whole, members[0]))
  assert listed.size == 3
  with pytest.raises(CheckpointError, match='empty file name'):
    param_files.load_params(f'{pair},', members[0])
  with pytest.raises(CheckpointError, match='not found'):
    param_files.load_params(f'{pair},{tmp_path}/missing.npz', members[0])


def test_int8_kernels_keep_each_column_to_half_a_step():
  rng = np.random.default_rng(0)
  kernel = rng.normal(size=(2, 300, 5)).astype(np.float32)  # 2 members
  kernel[1, :, 3] *= 100    # one member's column with a larger range
  kernel[0, :, 4] = 0       # an all-zero column
  q, scale = param_files.quantize_int8(kernel)
  assert q.dtype == np.int8 and scale.shape == (2, 1, 5)
  np.testing.assert_array_equal(np.abs(q).max(axis=1)[:, :4], 127)
  assert np.all(q[0, :, 4] == 0)
  error = np.abs(q * scale - kernel)
  assert np.all(error <= scale / 2 + 1e-6)
  # The large column's scale does not coarsen its neighbours.
  assert scale[1, 0, 3] > 50 * scale[1, 0, 2]


def test_int8_files_store_big_kernels_as_int8_and_read_back_float32(tmp_path):
  members = [_params('value_net', seed) for seed in (3, 4)]
  paths = [str(tmp_path / f'm{i}.npz') for i in range(2)]
  for params, path in zip(members, paths):
    param_files.save_params(params, path)
  pair = str(tmp_path / 'pair_int8.npz')
  param_files.save_params(param_files.stack_params(paths), pair, 'int8')
  with np.load(pair) as stored:
    dtypes = {k: stored[k].dtype for k in stored.files}
  big = [k for k, v in param_files.read_params(paths[0]).items()
         if k.endswith('kernel') and v.size >= param_files.MIN_INT8_SIZE]
  assert big and all(dtypes[k] == np.int8 for k in big)
  assert all(dtypes[k + param_files.SCALE_SUFFIX] == np.float32 for k in big)
  assert all(v == np.float16 for k, v in dtypes.items()
             if k not in big and not k.endswith(param_files.SCALE_SUFFIX)
             and k != param_files.MEMBERS_KEY)
  assert np.issubdtype(dtypes[param_files.MEMBERS_KEY], np.integer)
  loaded = param_files.load_params(pair, members[0])
  for i, member in enumerate(members):
    for original, read in zip(jax.tree.leaves(member),
                              jax.tree.leaves(loaded.members)):
      assert read.dtype == np.float32
      np.testing.assert_allclose(read[i], original,
                                 atol=np.abs(original).max() / 254 + 1e-3)
  with pytest.raises(CheckpointError, match='dtype must be one of'):
    param_files.save_params(members[0], str(tmp_path / 'x.npz'), 'int4')


def test_a_file_of_several_models_is_read_one_model_at_a_time(tmp_path):
  value_nets = [_params('value_net', seed) for seed in (3, 4)]
  fcn = _params('fcn', 0)
  paths = [str(tmp_path / f'm{i}.npz') for i in range(2)]
  for params, path in zip(value_nets, paths):
    param_files.save_params(params, path)
  fcn_path = str(tmp_path / 'fcn.npz')
  param_files.save_params(fcn, fcn_path)
  both = str(tmp_path / 'best.npz')
  param_files.save_sections({'dvn': param_files.read_params_list(
      ','.join(paths)), 'fcn': param_files.read_params(fcn_path)}, both)
  jax.tree.map(np.testing.assert_array_equal,
               param_files.load_params(f'{both}:dvn', value_nets[0]),
               param_files.load_params(','.join(paths), value_nets[0]))
  jax.tree.map(np.testing.assert_array_equal,
               param_files.load_params(f'{both}:fcn', fcn), fcn)
  # Named with commas beside another file: three members.
  three = param_files.load_params(f'{both}:dvn,{paths[0]}', value_nets[0])
  assert jax.tree.leaves(three)[0].shape[0] == 3
  assert param_files.member_params(f'{both}:dvn', 1).keys() == (
      param_files.read_params(paths[1]).keys())
  with pytest.raises(CheckpointError, match=r"models \['dvn', 'fcn'\]; "
                     f'name one as {both}:dvn'):
    param_files.read_params(both)
  with pytest.raises(CheckpointError, match="not 'fnc'"):
    param_files.read_params(f'{both}:fnc')
  with pytest.raises(CheckpointError, match="holds one model; name it "
                     "without ':dvn'"):
    param_files.read_params(f'{fcn_path}:dvn')
  with pytest.raises(CheckpointError, match='not found'):
    param_files.read_params(f'{tmp_path}/absent.npz:dvn')
  for bad in ('a:b', 'runs/a', '', '0dvn'):
    with pytest.raises(CheckpointError, match='model names must be'):
      param_files.save_sections({bad: {}}, str(tmp_path / 'bad.npz'))
  # A ':' followed by no model name belongs to the file's name.
  assert param_files.split_section('c.npz:dvn') == ('c.npz', 'dvn')
  assert param_files.split_section('runs:1/c.npz') == ('runs:1/c.npz', None)
  assert param_files.split_section('c:1.npz') == ('c:1.npz', None)


def test_unreadable_parameter_file_is_a_clear_error(tmp_path):
  path = tmp_path / 'bad.npz'
  path.write_bytes(b'not a zip')
  with pytest.raises(CheckpointError, match='not a readable parameter file'):
    param_files.read_params(str(path))
  with pytest.raises(CheckpointError, match='not found'):
    param_files.read_params(str(tmp_path / 'missing.npz'))
