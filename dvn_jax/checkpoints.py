"""Orbax checkpoints of the train state in `<workdir>/checkpoints`."""

from __future__ import annotations

import os
from typing import Any

import jax
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
