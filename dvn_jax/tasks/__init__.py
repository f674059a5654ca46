"""Tasks, one module each (`base.Task` says what a task provides).

`config.task` names the task: one of `BUILTIN`, or the dotted path of a
module of your own that defines `build(config) -> Task` (importable from
where you run, e.g. `--config.task=my_tasks.denoising`). A task module may
also define `MIGRATION_DEFAULTS`, {dotted field: value} for fields that its
configs written before them lack (`migration.migrate` fills them).
"""

from __future__ import annotations

import importlib
from types import ModuleType

import ml_collections

from dvn_jax.errors import ConfigError
from dvn_jax.tasks.base import Task

BUILTIN = {
    'segmentation': 'dvn_jax.tasks.segmentation',
    'multilabel': 'dvn_jax.tasks.multilabel',
    'digits': 'dvn_jax.tasks.digits',
}


def module(name: str) -> ModuleType:
  """The module of task `name` (`BUILTIN` or a dotted module path)."""
  path = BUILTIN.get(name, name)
  try:
    found = importlib.import_module(path)
  except ImportError as e:
    raise ConfigError(f'unknown task {name!r} ({e}); choose one of '
                      f'{sorted(BUILTIN)} or name a module that defines '
                      'build(config)') from None
  if not hasattr(found, 'build'):
    raise ConfigError(f'task module {path} defines no build(config)')
  return found


def get(config: ml_collections.ConfigDict) -> Task:
  """The task of `config` (`config.task`), built from the config."""
  path = BUILTIN.get(config.task, config.task)
  task = module(config.task).build(config)
  if not isinstance(task, Task):
    raise ConfigError(f'{path}.build(config) returned {type(task).__name__}, '
                      'not a dvn_jax.tasks.base.Task')
  return task


__all__ = ['BUILTIN', 'Task', 'get', 'module']
