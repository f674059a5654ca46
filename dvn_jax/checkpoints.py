"""Orbax checkpoints of the train state in `<workdir>/checkpoints`."""

from __future__ import annotations

import os
import zipfile
from typing import Any

import flax
import jax
import numpy as np
import orbax.checkpoint as ocp

from dvn_jax.errors import CheckpointError


def checkpoint_dir(workdir: str) -> str:
  return os.path.join(os.path.abspath(workdir), 'checkpoints')


def make_manager(workdir: str, max_to_keep: int = 3,
                 read_only: bool = False) -> ocp.CheckpointManager:
  options = ocp.CheckpointManagerOptions(max_to_keep=max_to_keep,
                                         create=not read_only,
                                         read_only=read_only)
  return ocp.CheckpointManager(checkpoint_dir(workdir), options=options)


def save(manager: ocp.CheckpointManager, step: int, state: Any) -> None:
  """Saves asynchronously; orbax renames the finished folder atomically."""
  manager.save(step, args=ocp.args.StandardSave(state))


def restore_latest(manager: ocp.CheckpointManager, target: Any) -> Any | None:
  """The latest checkpoint restored into `target`'s structure, or None."""
  step = manager.latest_step()
  if step is None:
    return None
  abstract = jax.tree.map(ocp.utils.to_shape_dtype_struct, target)
  try:
    return manager.restore(step, args=ocp.args.StandardRestore(abstract))
  except (ValueError, KeyError, TypeError) as e:
    first_line = str(e).strip().splitlines()[0] if str(e).strip() else ''
    raise CheckpointError(
        f'checkpoint {step} in {manager.directory} does not match this '
        f'config ({type(e).__name__}: {first_line[:200]}); use a new --workdir '
        'or the config it was trained with') from e


# ------------------------------------------------ released parameter files ----


def save_params(params: Any, path: str, dtype: str = 'float32') -> None:
  """Writes parameters alone to one compressed .npz (keys 'a/b/kernel')."""
  flat = flax.traverse_util.flatten_dict(jax.device_get(params), sep='/')
  os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
  with open(path, 'wb') as f:
    np.savez_compressed(f, **{k: np.asarray(v, dtype) for k, v in flat.items()})


def read_params(path: str) -> dict[str, np.ndarray]:
  """The arrays of a `save_params` file, by flat name ('a/b/kernel')."""
  if not os.path.isfile(path):
    raise CheckpointError(f'parameter file not found: {path}')
  try:
    with np.load(path) as data:
      return {k: data[k] for k in data.files}
  except (OSError, ValueError, EOFError, zipfile.BadZipFile) as e:
    raise CheckpointError(f'{path} is not a readable parameter file '
                          f'({type(e).__name__}); export it again') from None


def load_params(path: str, template: Any) -> Any:
  """Reads a `save_params` file into `template`'s structure, as float32."""
  arrays = read_params(path)
  expected = flax.traverse_util.flatten_dict(template, sep='/')
  missing = sorted(set(expected) - set(arrays))
  extra = sorted(set(arrays) - set(expected))
  wrong = sorted(k for k in set(expected) & set(arrays)
                 if arrays[k].shape != expected[k].shape)
  if missing or extra or wrong:
    raise CheckpointError(
        f'{path} does not fit this config\'s model (missing {missing[:3]}, '
        f'unexpected {extra[:3]}, wrong shape {wrong[:3]}); use the config '
        'it was trained with')
  return flax.traverse_util.unflatten_dict(
      {k: np.asarray(v, np.float32) for k, v in arrays.items()}, sep='/')


def warm_start(params: Any, path: str, prefix: str = 'tower/'
               ) -> tuple[Any, list[str]]:
  """Copies the `prefix` layers of a `save_params` file into `params`.

  Used to start the value net from a trained FCN's convolutional tower (the
  two share `tower/conv*`). A kernel whose input has more channels than the
  file's (the value net's first conv sees image + mask, the FCN's the image
  alone) takes the file's weights for the leading channels and keeps its own
  initialisation for the rest. Returns the new params and the names copied.
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
  return flax.traverse_util.unflatten_dict(flat, sep='/'), copied
