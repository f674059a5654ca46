"""The task a config describes: segmentation or multi-label, and its
number of mask channels."""

from __future__ import annotations

import ml_collections

from dvn_jax.errors import ConfigError

TASKS = ('segmentation', 'multilabel')


def task_name(config: ml_collections.ConfigDict) -> str:
  name = config.get('task', 'segmentation')
  if name not in TASKS:
    raise ConfigError(f'unknown task {name!r}; choose one of {list(TASKS)}')
  return name


def num_classes(config: ml_collections.ConfigDict) -> int:
  """Mask channels K of a segmentation config: 1 (binary) or the classes."""
  return config.get('num_classes', 1)
