"""Parameter files (.npz): what `--mode=export` writes and releases ship.

One network's parameters are stored by flat name ('a/b/kernel'), in float32,
float16, or int8 kernels with a float32 scale per column (`DTYPES`). An
ensemble (`stacked.Ensemble`: K networks of one model) stacks its members'
arrays on a leading axis and records K under the key `MEMBERS_KEY`, so the
file itself says whether it is one network or K. A file of several models
(`save_sections`) prefixes each array with 'model:'; 'FILE:model' names one.

Files written before the member count was recorded are read through one
migration function, `_with_member_record`.
"""

from __future__ import annotations

import os
import re
import zipfile
from typing import Any

import flax
import jax
import numpy as np

from dvn_jax import files
from dvn_jax import stacked
from dvn_jax.errors import CheckpointError

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
# An ensemble file's member count K (a 0-d integer array): its other arrays
# stack K networks on their leading axis.
MEMBERS_KEY = '__members__'
Flat = dict[str, np.ndarray]


def member_count(arrays: Flat) -> int | None:
  """K for the flat arrays of an ensemble (`MEMBERS_KEY`), None for one
  network's."""
  return int(arrays[MEMBERS_KEY]) if MEMBERS_KEY in arrays else None


def _with_member_record(arrays: Flat) -> Flat:
  """Migration, applied to every file read: a file written before
  `MEMBERS_KEY` existed was an ensemble when its biases were stacked (rank
  2 instead of 1); its arrays get the record it lacks."""
  biases = [v for k, v in arrays.items() if k.endswith('bias')]
  if MEMBERS_KEY in arrays or not biases or biases[0].ndim == 1:
    return arrays
  return {**arrays, MEMBERS_KEY: np.array(biases[0].shape[0])}


def flatten(params: Any) -> Flat:
  """Flat arrays by name ('a/b/kernel') of one network's parameters, or of
  an `stacked.Ensemble` (its stacked arrays and `MEMBERS_KEY`)."""
  if isinstance(params, stacked.Ensemble):
    return {**flatten(params.members), MEMBERS_KEY: np.array(params.size)}
  return flax.traverse_util.flatten_dict(jax.device_get(params), sep='/')


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
  stored = {k: np.asarray(v) for k, v in flat.items() if k == MEMBERS_KEY}
  flat = {k: v for k, v in flat.items() if k != MEMBERS_KEY}
  if dtype != 'int8':
    return {**{k: np.asarray(v, dtype) for k, v in flat.items()}, **stored}
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


def save_params(params: Any | Flat, path: str, dtype: str = 'float32'
                ) -> None:
  """Writes parameters alone (one network's, an `stacked.Ensemble`, or
  their `flatten`ed arrays) to one compressed .npz (keys 'a/b/kernel'), in
  float32, float16, or int8 kernels with float16 for the rest (DTYPES)."""
  _write_npz(_stored_arrays(flatten(params), dtype), path)


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
  return _with_member_record(
      _dequantized(_select_section(arrays, file, section)))


def files_exist(paths: str) -> bool:
  """Whether each parameter file of `paths` (one, or a.npz,b.npz:
  `param_file_names`; 'c.npz:model' names c.npz) is there."""
  return all(os.path.isfile(split_section(path)[0])
             for path in param_file_names(paths))


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
  """Reads a `save_params` file into `template`'s structure (one network's
  parameters), as float32: one network, or a `stacked.Ensemble` of the
  template's structure when the file is an ensemble (`member_count`); so is
  a comma-separated list of files (`read_params_list`)."""
  arrays = read_params_list(path)
  count = member_count(arrays)
  arrays = {k: v for k, v in arrays.items() if k != MEMBERS_KEY}
  expected = flax.traverse_util.flatten_dict(template, sep='/')
  missing = sorted(set(expected) - set(arrays))
  extra = sorted(set(arrays) - set(expected))
  lead = () if count is None else (count,)
  wrong = [k for k in sorted(set(expected) & set(arrays))
           if arrays[k].shape != lead + tuple(expected[k].shape)]
  if missing or extra or wrong:
    raise CheckpointError(
        f'{path} does not fit this config\'s model (missing {missing[:3]}, '
        f'unexpected {extra[:3]}, wrong shape {wrong[:3]}); use the config '
        'it was trained with')
  params = flax.traverse_util.unflatten_dict(
      {k: np.asarray(v, np.float32) for k, v in arrays.items()}, sep='/')
  return params if count is None else stacked.Ensemble(params)


def _members(arrays: Flat) -> list[Flat]:
  """One network's arrays, or each member's of an ensemble file."""
  count = member_count(arrays)
  if count is None:
    return [arrays]
  return [{k: v[i] for k, v in arrays.items() if k != MEMBERS_KEY}
          for i in range(count)]


def member_params(path: str, index: int) -> dict[str, np.ndarray]:
  """Member `index` of an ensemble file, by flat name: one network's file
  again, e.g. to continue training it (`init_from`)."""
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
  return {**{k: np.stack([arrays[k] for arrays in files]) for k in files[0]},
          MEMBERS_KEY: np.array(len(files))}
