"""Orbax checkpoints of the train state in `<workdir>/checkpoints`: the
manager (keep the last N and the best), saving, and restoring the newest
readable one (a damaged one is set aside, another config's refused).
Parameter files for release are `param_files.py`."""

from __future__ import annotations

import json
import os
import traceback
from collections.abc import Sequence
from typing import Any

import jax
import numpy as np
import orbax.checkpoint as ocp
from absl import logging

from dvn_jax.errors import CheckpointError


def checkpoint_dir(workdir: str) -> str:
  return os.path.join(os.path.abspath(workdir), 'checkpoints')



def make_manager(workdir: str, max_to_keep: int = 3, keep_best: int = 0,
                 read_only: bool = False) -> ocp.CheckpointManager:
  """Keeps the last `max_to_keep` checkpoints plus the `keep_best` with the
  highest validation score (`save(..., score=...)`)."""
  policies = [ocp.checkpoint_managers.LatestN(n=max_to_keep)]
  if keep_best:
    policies.append(ocp.checkpoint_managers.BestN(
        get_metric_fn=lambda metrics: metrics['score'], n=keep_best,
        keep_checkpoints_without_metrics=False))
  options = ocp.CheckpointManagerOptions(
      preservation_policy=ocp.checkpoint_managers.AnyPreservationPolicy(
          policies), create=not read_only, read_only=read_only)
  return ocp.CheckpointManager(checkpoint_dir(workdir), options=options)


def save(manager: ocp.CheckpointManager, step: int, state: Any,
         score: float | None = None) -> None:
  """Saves asynchronously, with the step's validation score if it has one.

  Orbax writes into a temporary folder and renames it when complete, so a
  crash mid-save never leaves a half-written checkpoint as the latest.
  """
  metrics = None if score is None else {'score': float(score)}
  manager.save(step, args=ocp.args.StandardSave(state), metrics=metrics)


# What a failed restore's error says, as words for a one-line warning.
_DAMAGE_KINDS = (
    (('byte range', 'OUT_OF_RANGE', 'truncated', 'unexpected end'),
     'a data file is truncated'),
    (('NOT_FOUND', 'No such file', 'does not exist'), 'a file is missing'),
    (('DATA_LOSS', 'checksum', 'corrupt', 'Corrupt'),
     'a data file is corrupt'),
    (('JSON', 'json', 'Expecting value'), 'its metadata cannot be parsed'),
)


def damage_reason(error: BaseException) -> str:
  """A few words on why a checkpoint could not be read, for a one-line
  message (the full error goes to the debug log): the kind of damage when
  the error names one, else the error's type and its first words."""
  text = f'{type(error).__name__}: {error}'
  for needles, reason in _DAMAGE_KINDS:
    if any(needle in text for needle in needles):
      return reason
  words = ' '.join(str(error).split()[:8])
  return f'{type(error).__name__}: {words[:60]}'.rstrip(': ')


def set_aside(manager: ocp.CheckpointManager, step: int) -> str:
  """Renames a damaged step folder to `damaged_<step>` (kept, not deleted;
  `damaged_<step>_2`, `_3`, ... when an earlier one holds that name) so
  that training can write that step again; returns the new path."""
  directory = os.fspath(manager.directory)
  source = os.path.join(directory, str(step))
  target = os.path.join(directory, f'damaged_{step}')
  copy = 1
  while os.path.lexists(target):
    copy += 1
    target = os.path.join(directory, f'damaged_{step}_{copy}')
  if jax.process_index() == 0 and os.path.isdir(source):
    os.replace(source, target)
  manager.reload()
  return target


def _key_name(key: Any) -> str:
  for attribute in ('key', 'name', 'idx'):
    if hasattr(key, attribute):
      return str(getattr(key, attribute))
  return str(key)


def fits_target(manager: ocp.CheckpointManager, step: int,
                target: Any) -> bool | None:
  """Whether checkpoint `step` can hold `target`'s arrays with its shapes.

  False also when it holds other arrays than `target` (another optimizer's
  state, an older version's). Read from the checkpoint's tree metadata (a
  small JSON file), which survives damage to the array data; None if that
  cannot be read either.
  Tells a checkpoint of another config (False) from a damaged one (True).
  The metadata records the shape of the chunks written, so a different
  shape that the chunks also tile would pass here and fail on reading.
  """
  path = os.path.join(os.fspath(manager.directory), str(step), 'default',
                      '_METADATA')
  try:
    with open(path) as f:
      entries = json.load(f)['tree_metadata'].values()
    values = {tuple(k['key'] for k in e['key_metadata']): e['value_metadata']
              for e in entries}
    # Shapes are recorded for jax.Arrays (the train state); None: unknown.
    written = {keys: value.get('write_shape') for keys, value in values.items()}
    # Written as None: a None field, or an empty node (optax's EmptyState).
    arrays = {keys for keys, value in values.items()
              if value.get('value_type') != 'None'}
  except (OSError, ValueError, KeyError, TypeError, AttributeError):
    return None
  leaves = {tuple(_key_name(k) for k in path_keys): leaf
            for path_keys, leaf in jax.tree_util.tree_flatten_with_path(
                target, is_leaf=lambda x: x is None)[0]}
  if not leaves.keys() <= written.keys() or not arrays <= leaves.keys():
    return False   # other fields: another optimizer, an older version
  return all(leaf is None or written[keys] is None or
             _could_hold(written[keys], np.shape(leaf))
             for keys, leaf in leaves.items())


def _could_hold(write_shape: list[int], shape: tuple[int, ...]) -> bool:
  """Whether an array of `shape` can have been written in chunks of
  `write_shape` (the full shape from one device; a slice of it when the
  array was replicated over several devices, e.g. 384 written as 8 x 48)."""
  return len(write_shape) == len(shape) and all(
      0 < w <= n and n % w == 0 for w, n in zip(write_shape, shape))


def restore_latest(manager: ocp.CheckpointManager, target: Any,
                   set_aside_damaged: bool = True,
                   alternatives: Sequence[Any] = ()) -> Any | None:
  """The newest readable checkpoint restored into `target`'s structure.

  None when there is no checkpoint. A damaged newest checkpoint (truncated,
  corrupt) is skipped with a warning, and set aside (renamed, so training
  can write that step again) unless `set_aside_damaged` is False; the one
  before it is used. A checkpoint whose metadata does not fit `target` is
  restored into the first of `alternatives` it fits (e.g. a train state
  without a moving average), so the caller can tell them apart by the
  result's structure. If none can be read: CheckpointError, saying whether
  they were written for another config or are damaged.
  """
  failures: list[tuple[int, Exception]] = []
  mismatched: list[int] = []   # steps written for other arrays or shapes
  steps = sorted(manager.all_steps(), reverse=True)
  for step in steps:
    fitting = next((t for t in (target, *alternatives)
                    if fits_target(manager, step, t) is not False), None)
    if fitting is None:   # another config's
      mismatched.append(step)
      failures.append((step, CheckpointError('written for another state')))
      continue
    abstract = jax.tree.map(ocp.utils.to_shape_dtype_struct, fitting)
    try:
      state = manager.restore(step, args=ocp.args.StandardRestore(abstract))
    except Exception as e:  # pylint: disable=broad-except  (orbax: Exception)
      failures.append((step, e))
      continue
    for bad, error in failures:
      logging.debug('Checkpoint %d in %s cannot be read:\n%s', bad,
                    manager.directory, ''.join(traceback.format_exception(
                        error)))
    if failures and set_aside_damaged:
      for bad, error in failures:
        logging.warning('Checkpoint %d is damaged (%s); moved to %s; '
                        'resuming from step %d', bad, damage_reason(error),
                        set_aside(manager, bad), step)
    elif failures:
      logging.warning('Checkpoint(s) %s in %s cannot be read (%s); using '
                      'step %d', [bad for bad, _ in failures],
                      manager.directory, damage_reason(failures[0][1]), step)
    return state
  if not failures:
    return None
  if mismatched:
    raise CheckpointError(
        f'checkpoint {mismatched[0]} in {manager.directory} does not match '
        'this config (it holds other arrays or shapes); use a new --workdir '
        'or the config it was trained with')
  error = failures[0][1]
  raise CheckpointError(
      f'no checkpoint in {manager.directory} can be read (steps {steps}; '
      f'newest: {damage_reason(error)}); they are damaged: move the folder '
      'away to start again, or restore it from a copy') from error
