"""Orbax checkpoints of the train state (dvn_jax/checkpoints.py): retention,
half-written and damaged checkpoints, another config's."""

import os

import numpy as np
import pytest

from dvn_jax import checkpoints
from dvn_jax.errors import CheckpointError


def test_checkpoints_keep_the_last_n_and_the_best(tmp_path):
  manager = checkpoints.make_manager(str(tmp_path), max_to_keep=2, keep_best=1)
  state = {'w': np.zeros(3, np.float32)}
  for step, score in enumerate([0.1, 0.9, 0.2, 0.3, None, 0.5], start=1):
    checkpoints.save(manager, step, state, score)
  manager.wait_until_finished()
  assert sorted(manager.all_steps()) == [2, 5, 6]   # best (0.9) + last two


def test_half_written_checkpoints_are_never_the_latest(tmp_path):
  manager = checkpoints.make_manager(str(tmp_path))
  state = {'w': np.arange(3, dtype=np.float32)}
  checkpoints.save(manager, 1, state)
  manager.wait_until_finished()
  # What an interrupted save leaves: orbax's temporary folder.
  (tmp_path / 'checkpoints' / '2.orbax-checkpoint-tmp-123').mkdir()
  reopened = checkpoints.make_manager(str(tmp_path))
  assert reopened.latest_step() == 1
  restored = checkpoints.restore_latest(reopened, state)
  np.testing.assert_array_equal(restored['w'], state['w'])


def test_no_readable_checkpoint_in_process_is_a_checkpoint_error(tmp_path):
  manager = checkpoints.make_manager(str(tmp_path))
  checkpoints.save(manager, 1, {'w': np.zeros(4, np.float32)})
  manager.wait_until_finished()
  with pytest.raises(CheckpointError, match='does not match this config'):
    checkpoints.restore_latest(manager, {'v': np.zeros(2, np.float32)})


def test_checkpoint_with_arrays_the_config_lacks_is_another_configs(tmp_path):
  # E.g. a run with a moving average, evaluated with ema_decay=0, or another
  # optimizer's state: not a damaged checkpoint.
  manager = checkpoints.make_manager(str(tmp_path))
  checkpoints.save(manager, 1, {'w': np.zeros(4, np.float32),
                                'ema': np.zeros(4, np.float32)})
  manager.wait_until_finished()
  with pytest.raises(CheckpointError, match='does not match this config'):
    checkpoints.restore_latest(manager, {'w': np.zeros(4, np.float32)})
  # A None field is written as one and restores into the same structure.
  checkpoints.save(manager, 2, {'w': np.ones(4, np.float32), 'ema': None})
  manager.wait_until_finished()
  restored = checkpoints.restore_latest(
      manager, {'w': np.zeros(4, np.float32), 'ema': None})
  np.testing.assert_array_equal(restored['w'], np.ones(4))


def test_damage_is_named_in_a_few_words():
  reason = checkpoints.damage_reason
  assert reason(ValueError('OUT_OF_RANGE: Requested byte range [0, 9044) is '
                           'not valid for value of size 100')) == (
                               'a data file is truncated')
  assert reason(FileNotFoundError(2, 'No such file or directory')) == (
      'a file is missing')
  assert reason(ValueError('DATA_LOSS: checksum mismatch')) == (
      'a data file is corrupt')
  assert reason(RuntimeError(' '.join(['word'] * 30))) == (
      'RuntimeError: ' + ' '.join(['word'] * 8))


def test_a_step_set_aside_twice_gets_a_new_name(tmp_path):
  manager = checkpoints.make_manager(str(tmp_path))
  for step in (1, 2):
    checkpoints.save(manager, step, {'w': np.zeros(3, np.float32)})
  manager.wait_until_finished()
  folder = tmp_path / 'checkpoints'
  (folder / 'damaged_2').mkdir()
  (folder / 'damaged_2' / 'old').write_text('kept')
  moved = checkpoints.set_aside(manager, 2)
  assert moved == os.path.join(folder, 'damaged_2_2')
  assert (folder / 'damaged_2' / 'old').read_text() == 'kept'
  assert sorted(manager.all_steps()) == [1]
