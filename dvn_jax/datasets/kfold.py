"""k-fold cross-validation over a task's train+val examples ('trainval').

With `data.cv_folds` K > 0 the loaded data gains two splits: 'fold_train'
(the trainval examples outside fold `data.cv_fold`) and 'fold_val' (those in
it). The folds are fixed: the examples of a seed-0 permutation of
trainval, dealt round-robin, so every run of a variant sees the same folds
and K runs (folds 0..K-1) score every trainval example once. Train on one
and score the other with --config.data.train_split=fold_train
--config.data.eval_split=fold_val (benchmarks/cross_validate.py runs all
K folds and reports the mean and its confidence interval).
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np

from dvn_jax.errors import ConfigError

SPLITS = ('fold_train', 'fold_val')


def fold_of(num_examples: int, num_folds: int) -> np.ndarray:
  """The fold of each example: its position in a seed-0 permutation,
  mod num_folds (fold sizes differ by at most one)."""
  position = np.empty(num_examples, np.int64)
  position[np.random.default_rng(0).permutation(num_examples)] = np.arange(
      num_examples)
  return position % num_folds


def subset(split: Any, keep: np.ndarray) -> Any:
  """The examples `keep` (a boolean mask) of a split: a dataclass whose
  array fields share the leading example axis."""
  n = len(keep)
  return dataclasses.replace(split, **{
      field.name: getattr(split, field.name)[keep]
      for field in dataclasses.fields(split)
      if isinstance(getattr(split, field.name), np.ndarray)
      and len(getattr(split, field.name)) == n})


def fold_splits(data: dict[str, Any], num_folds: int, fold: int
                ) -> dict[str, Any]:
  """{'fold_train', 'fold_val'} of data['trainval'] (module docstring)."""
  if 'trainval' not in data:
    raise ConfigError('data.cv_folds needs a trainval split; this task '
                      f'has {sorted(data)}')
  trainval = data['trainval']
  if not 2 <= num_folds <= len(trainval):
    raise ConfigError(f'data.cv_folds must be in [2, {len(trainval)}] (the '
                      f'trainval examples), got {num_folds}')
  if not 0 <= fold < num_folds:
    raise ConfigError(f'data.cv_fold must be in [0, {num_folds}), got {fold}')
  held_out = fold_of(len(trainval), num_folds) == fold
  return {'fold_train': subset(trainval, ~held_out),
          'fold_val': subset(trainval, held_out)}
