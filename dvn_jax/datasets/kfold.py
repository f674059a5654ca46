"""K folds of a split, for cross-fitting (ours; docs/horses.md).

Example i of a split is in fold i mod K. One rule serves both sides of a
cross-fit: `without_fold` gives FCN f its training data (the split less
fold f, `data.held_out_fold=f`), and `fold_of` says which FCN may predict
each example (`fcn_starts.crossfit_start_maps`: the one that never saw it).
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np


def fold_of(num_examples: int, num_folds: int) -> np.ndarray:
  """The fold of each of `num_examples` examples: i mod num_folds."""
  return np.arange(num_examples) % num_folds


def without_fold(split: Any, num_folds: int, held_out: int) -> Any:
  """The split (a dataclass of per-example arrays) less its fold `held_out`
  of `num_folds`."""
  keep = fold_of(len(split), num_folds) != held_out
  return type(split)(**{field.name: getattr(split, field.name)[keep]
                        for field in dataclasses.fields(split)})
