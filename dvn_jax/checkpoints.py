"""Orbax checkpoints of the train state in `<workdir>/checkpoints`."""

from __future__ import annotations

import contextlib
import json
import logging as std_logging
import os
import re
import sys
import tempfile
import time
import traceback
import warnings
import zipfile
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import flax
import jax
import numpy as np
import orbax.checkpoint as ocp
from absl import logging

from dvn_jax import files
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


@contextlib.contextmanager
def _stderr_held() -> Iterator[Callable[[], None]]:
  """Holds back what is written to file descriptor 2 inside the block.

  Yields `discard()`; unless it is called, the held text is written out at
  the end. When orbax fails to read a damaged checkpoint, its reader
  threads (C++, tensorstore) print dozens of 'Event loop is closed'
  tracebacks straight to fd 2 as their callbacks outlive the failed restore;
  `restore_latest` reports the failure in one line instead.
  """
  sys.stderr.flush()
  saved = os.dup(2)
  held = tempfile.TemporaryFile()
  os.dup2(held.fileno(), 2)
  state = {'discard': False}
  try:
    yield lambda: state.update(discard=True)
  finally:
    if state['discard']:
      time.sleep(0.5)   # let the reader threads finish printing
    sys.stderr.flush()
    os.dup2(saved, 2)
    os.close(saved)
    if not state['discard']:
      held.seek(0)
      os.write(2, held.read())
    held.close()


class OrbaxReaderNoiseFilter(std_logging.Filter):
  """Drops asyncio's 'Task exception was never retrieved' reports of orbax's
  failed read tasks; they are logged (with a traceback) whenever the tasks
  are collected, which can be long after the failed restore."""

  def filter(self, record: std_logging.LogRecord) -> bool:
    if 'exception was never retrieved' not in str(record.msg):
      return True
    text = record.getMessage()
    if record.exc_info and record.exc_info[2] is not None:
      tb = record.exc_info[2]
      while tb is not None:
        text += tb.tb_frame.f_code.co_filename
        tb = tb.tb_next
    return 'orbax' not in text


def _late_read_callback(unraisable: Any) -> bool:
  """True for a failed restore's read finishing on a thread after its event
  loop closed: RuntimeError('Event loop is closed') from asyncio's
  call_soon_threadsafe, reported as 'Exception ignored in: None'."""
  error, trace = unraisable.exc_value, unraisable.exc_traceback
  if not isinstance(error, RuntimeError) or str(error) != 'Event loop is closed':
    return False
  frames = [frame.f_code.co_name for frame, _ in traceback.walk_tb(trace)]
  return 'call_soon_threadsafe' in frames


def _drop_orbax_reader_noise() -> None:
  """Silences the 'Exception ignored in <coroutine ...>' reports that orbax's
  unfinished read coroutines of a failed restore print when collected, and
  asyncio's reports of its failed read tasks (OrbaxReaderNoiseFilter)."""
  asyncio_logger = std_logging.getLogger('asyncio')
  if not any(isinstance(f, OrbaxReaderNoiseFilter)
             for f in asyncio_logger.filters):
    asyncio_logger.addFilter(OrbaxReaderNoiseFilter())
  previous = sys.unraisablehook

  def hook(unraisable):
    code = getattr(unraisable.object, 'cr_code', None)
    if code is not None and 'orbax' in code.co_filename:
      return
    if _late_read_callback(unraisable):
      return
    previous(unraisable)

  sys.unraisablehook = hook
  # Its read coroutines that never started warn when collected, maybe after
  # the one-line error: "coroutine ... was never awaited".
  warnings.filterwarnings('ignore', message='coroutine .* was never awaited',
                          category=RuntimeWarning)


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
    with _stderr_held() as discard_stderr:
      try:
        state = manager.restore(step, args=ocp.args.StandardRestore(abstract))
      except Exception as e:  # pylint: disable=broad-except  (orbax: Exception)
        discard_stderr()
        _drop_orbax_reader_noise()
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


# ------------------------------------------------ released parameter files ----


# int8 storage (`save_params(dtype='int8')`): each kernel array of at least
# this many entries as stored (a stacked ensemble's members together) is kept
# as int8 with a float32 scale per column (the key with SCALE_SUFFIX); every
# other array as float16.
MIN_INT8_SIZE = 4096
SCALE_SUFFIX = '#scale'
# A file of several models (`save_sections`) keys each array
# 'model:a/b/kernel'; 'FILE:model' names one of them.
SECTION_SEP = ':'
MODEL_NAME = re.compile(r'[A-Za-z_][\w-]*')
DTYPES = ('float32', 'float16', 'int8')


def quantize_int8(kernel: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
  """Symmetric int8 of a kernel, one scale per column: kernel ~ q * scale
  with scale = max |kernel| over the input axis (-2) / 127, so each output
  unit (and each member of a stacked ensemble) keeps its own range."""
  kernel = np.asarray(kernel, np.float32)
  scale = np.abs(kernel).max(axis=-2, keepdims=True) / 127
  scale = np.where(scale > 0, scale, 1).astype(np.float32)
  return np.clip(np.rint(kernel / scale), -127, 127).astype(np.int8), scale


def _stored_arrays(flat: dict[str, Any], dtype: str) -> dict[str, np.ndarray]:
  """The arrays `save_params` writes for flat parameters in `dtype`."""
  if dtype not in DTYPES:
    raise CheckpointError(f'dtype must be one of {list(DTYPES)}, got {dtype!r}')
  if dtype != 'int8':
    return {k: np.asarray(v, dtype) for k, v in flat.items()}
  stored = {}
  for name, value in flat.items():
    value = np.asarray(value, np.float32)
    if name.endswith('kernel') and value.ndim >= 2 and (
        value.size >= MIN_INT8_SIZE):
      stored[name], stored[name + SCALE_SUFFIX] = quantize_int8(value)
    else:
      stored[name] = value.astype(np.float16)
  return stored


def _dequantized(arrays: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
  """int8 kernels (`_stored_arrays`) times their scales, as float32; other
  arrays as they are."""
  scales = {k[:-len(SCALE_SUFFIX)]: v for k, v in arrays.items()
            if k.endswith(SCALE_SUFFIX)}
  return {k: v.astype(np.float32) * scales[k] if k in scales else v
          for k, v in arrays.items() if not k.endswith(SCALE_SUFFIX)}


def _write_npz(arrays: dict[str, np.ndarray], path: str) -> None:
  """Writes a compressed .npz at `path` as it is named (no '.npz' added),
  whole or not at all (`files.atomic_write`)."""
  files.check_output_file(path, 'the parameter file')
  with files.atomic_write(path) as f:
    np.savez_compressed(f, **arrays)


def save_params(params: Any, path: str, dtype: str = 'float32') -> None:
  """Writes parameters alone to one compressed .npz (keys 'a/b/kernel'), in
  float32, float16, or int8 kernels with float16 for the rest (DTYPES)."""
  flat = flax.traverse_util.flatten_dict(jax.device_get(params), sep='/')
  _write_npz(_stored_arrays(flat, dtype), path)


def is_model_name(name: str) -> bool:
  """Whether `name` can name a model of a `save_sections` file: a letter or
  '_', then letters, digits, '_' or '-' (so never part of a path)."""
  return MODEL_NAME.fullmatch(name) is not None


def save_sections(sections: dict[str, dict[str, np.ndarray]], path: str,
                  dtype: str = 'float32') -> None:
  """Writes several models' flat parameters (name -> `read_params` arrays)
  to one file, read back one model at a time as 'FILE:name' (e.g. value
  nets and the FCNs that start their ascent, released as one file)."""
  if not sections or not all(map(is_model_name, sections)):
    raise CheckpointError(f"model names must be a letter or '_', then "
                          f"letters, digits, '_' or '-': got {list(sections)}")
  _write_npz({f'{name}{SECTION_SEP}{key}': value
              for name, flat in sections.items()
              for key, value in _stored_arrays(flat, dtype).items()}, path)


def split_section(name: str) -> tuple[str, str | None]:
  """(file, model) of a parameter-file name 'FILE' or 'FILE:model'."""
  head, sep, tail = name.rpartition(SECTION_SEP)
  if not sep or os.path.isfile(name) or not is_model_name(tail):
    return name, None
  return head, tail


def _select_section(arrays: dict[str, np.ndarray], path: str,
                    section: str | None) -> dict[str, np.ndarray]:
  """The arrays of one model of a `save_sections` file (all of a file of
  one model), by flat name."""
  names = sorted({k.split(SECTION_SEP, 1)[0] for k in arrays
                  if SECTION_SEP in k})
  if not names:
    if section is not None:
      raise CheckpointError(f'{path} holds one model; name it without '
                            f"':{section}'")
    return arrays
  if section not in names:
    example = f'{path}{SECTION_SEP}{names[0]}'
    raise CheckpointError(
        f'{path} holds the models {names}' +
        (f', not {section!r}' if section is not None else '') +
        f'; name one as {example}')
  prefix = section + SECTION_SEP
  return {k[len(prefix):]: v for k, v in arrays.items()
          if k.startswith(prefix)}


def read_params(path: str) -> dict[str, np.ndarray]:
  """The arrays of a `save_params` file, by flat name ('a/b/kernel'), or of
  one model of a `save_sections` file ('FILE:model'); int8 kernels come
  back as float32."""
  file, section = split_section(path)
  if not os.path.isfile(file):
    raise CheckpointError(f'parameter file not found: {file}')
  try:
    with np.load(file) as data:
      arrays = {k: data[k] for k in data.files}
  except (OSError, ValueError, EOFError, zipfile.BadZipFile) as e:
    raise CheckpointError(f'{file} is not a readable parameter file '
                          f'({type(e).__name__}); export it again') from None
  return _dequantized(_select_section(arrays, file, section))


def param_file_names(paths: str) -> list[str]:
  """The files of a parameter-file argument: one, or several named with
  commas ('a.npz,b.npz'), each maybe one model of a file ('c.npz:dvn')."""
  return paths.split(',')


def read_params_list(paths: str) -> dict[str, np.ndarray]:
  """The arrays of one parameter file, or of several named with commas
  (`param_file_names`): their members stacked as one ensemble
  (`stack_params`), which keeps each released file small."""
  names = param_file_names(paths)
  if len(names) == 1:
    return read_params(paths)
  if not all(names):
    raise CheckpointError(f'empty file name in the list {paths!r}; name '
                          'files as a.npz,b.npz')
  return stack_params(names)


def load_params(path: str, template: Any) -> Any:
  """Reads a `save_params` file into `template`'s structure, as float32.

  An ensemble file (`stack_params`: every array with one more, leading
  axis of the same size K, the members) is read as the template's structure
  with that leading axis; so is a comma-separated list of files
  (`read_params_list`).
  """
  arrays = read_params_list(path)
  expected = flax.traverse_util.flatten_dict(template, sep='/')
  missing = sorted(set(expected) - set(arrays))
  extra = sorted(set(arrays) - set(expected))
  common = sorted(set(expected) & set(arrays))
  stacked = all(arrays[k].shape[1:] == tuple(expected[k].shape)
                for k in common) and len(
                    {arrays[k].shape[0] for k in common}) == 1
  wrong = [] if stacked else [
      k for k in common if arrays[k].shape != tuple(expected[k].shape)]
  if missing or extra or wrong:
    raise CheckpointError(
        f'{path} does not fit this config\'s model (missing {missing[:3]}, '
        f'unexpected {extra[:3]}, wrong shape {wrong[:3]}); use the config '
        'it was trained with')
  return flax.traverse_util.unflatten_dict(
      {k: np.asarray(v, np.float32) for k, v in arrays.items()}, sep='/')


def _members(arrays: dict[str, np.ndarray]) -> list[dict[str, np.ndarray]]:
  """One network's arrays, or each member's of an ensemble file (told apart
  by the biases: rank 1 in one network, rank 2 stacked)."""
  biases = [v for k, v in arrays.items() if k.endswith('bias')]
  if not biases or biases[0].ndim == 1:
    return [arrays]
  return [{k: v[i] for k, v in arrays.items()}
          for i in range(biases[0].shape[0])]


def member_params(path: str, index: int) -> dict[str, np.ndarray]:
  """Member `index` of an ensemble file, by flat name: one network's file
  again, e.g. to continue training it (`init_layers=all`)."""
  members = _members(read_params(path))
  if len(members) == 1:
    raise CheckpointError(f'{path} holds one network, not an ensemble; use '
                          'it as it is')
  if not 0 <= index < len(members):
    raise CheckpointError(f'{path} has members 0..{len(members) - 1}, not '
                          f'{index}')
  return members[index]


def stack_params(paths: list[str]) -> dict[str, np.ndarray]:
  """The parameter files of several networks of one model, stacked on a new
  leading axis (the ensemble's members, in order), by flat name. A file
  that is itself an ensemble adds each of its members."""
  named = [(path, member) for path in paths
           for member in _members(read_params(path))]
  paths, files = [p for p, _ in named], [m for _, m in named]
  for path, arrays in zip(paths[1:], files[1:]):
    if arrays.keys() != files[0].keys() or any(
        arrays[k].shape != files[0][k].shape for k in arrays):
      raise CheckpointError(f'{path} and {paths[0]} hold different models; '
                            'an ensemble needs networks of one config')
  return {k: np.stack([arrays[k] for arrays in files]) for k in files[0]}


def average_params(paths: list[str]) -> dict[str, np.ndarray]:
  """The mean of several parameter files of one model, by flat name, in
  float32: checkpoint (weight) averaging, for snapshots of one run; the
  weights of separately trained networks do not average into a network."""
  return {k: v.astype(np.float64).mean(0).astype(np.float32)
          for k, v in stack_params(paths).items()}


def warm_start(params: Any, path: str, prefix: str = 'tower/'
               ) -> tuple[Any, list[str]]:
  """Copies the `prefix` layers of a `save_params` file into `params`.

  Used to start the value net from a trained FCN's convolutional tower (the
  two share `tower/conv*`). A kernel whose input has more channels than the
  file's (the value net's first conv sees image + mask, the FCN's the image
  alone) takes the file's weights for the leading channels and keeps its own
  initialisation for the rest. prefix '' copies every layer, and then the
  file must hold them all (continuing a value-net export). Returns the new
  params and the names copied.
  """
  source = {k: v for k, v in read_params(path).items() if k.startswith(prefix)}
  flat = dict(flax.traverse_util.flatten_dict(params, sep='/'))
  copied = []
  for name, value in sorted(source.items()):
    if name not in flat:
      continue
    target = np.array(flat[name], np.float32)
    if value.shape == target.shape:
      target[...] = value
    elif (value.ndim == 4 == target.ndim and value.shape[:2] == target.shape[:2]
          and value.shape[3] == target.shape[3]
          and value.shape[2] < target.shape[2]):
      target[:, :, :value.shape[2], :] = value   # conv kernel: extra inputs
    else:
      raise CheckpointError(
          f'{path}: {name} has shape {value.shape}, the model needs '
          f'{target.shape}; warm-start from a model with the same tower')
    flat[name] = target
    copied.append(name)
  if not copied:
    raise CheckpointError(f'{path} has no {prefix!r} layers that this model '
                          'has; warm-start from an FCN or value net export')
  missing = sorted(set(flat) - set(copied))
  if not prefix and missing:
    raise CheckpointError(
        f'{path} lacks {len(missing)} of this model\'s layers ({missing[0]}, '
        '...); init_layers=all needs an export of the same model (an FCN '
        'file starts the tower only: init_layers=tower)')
  return flax.traverse_util.unflatten_dict(flat, sep='/'), copied
