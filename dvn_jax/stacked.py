"""Parameters of one network, or of an ensemble: the members' parameter
trees stacked on a leading axis (`checkpoints.stack_params` for files,
`python -m dvn_jax.ensemble`). Prediction averages the members' outputs."""

from __future__ import annotations

from collections.abc import Callable
from collections.abc import Sequence
from typing import Any

import jax
import numpy as np


def split_members(params: Any, ndim: int) -> list[Any]:
  """[params] of one network, or an ensemble's members (parameters stacked
  on a leading axis; `ndim` the rank of one network's first parameter)."""
  if jax.tree.leaves(params)[0].ndim == ndim:
    return [params]
  members = jax.tree.leaves(params)[0].shape[0]
  return [jax.tree.map(lambda p, i=i: p[i], params) for i in range(members)]


def averaged_over_members(predict: Callable, ndim: int) -> Callable:
  """predict(params, inputs) that also takes an ensemble: parameters stacked
  on a leading member axis (`checkpoints.stack_params`; `ndim` is the rank
  of one network's first parameter). An ensemble's output is the mean of
  its members' outputs (masks, or trajectories, averaged: mask averaging
  over networks, as over crops in paper Sec. 5.4)."""
  def ensemble_predict(params, inputs):
    members = split_members(params, ndim)
    if len(members) == 1:
      return predict(members[0], inputs)
    # One traced copy per member, not lax.map: convolutions inside a rolled
    # loop leave XLA's fast path on a CPU (docs/throughput.md).
    outputs = [predict(member, inputs) for member in members]
    return jax.tree.map(lambda *outs: sum(outs) / len(members), *outputs)
  return ensemble_predict


def stack_members(trees: Sequence[Any]) -> Any:
  """Parameter trees of one model stacked on a new leading axis: an ensemble
  for `averaged_over_members` (as `checkpoints.stack_params` for files)."""
  return jax.tree.map(lambda *leaves: np.stack(leaves), *trees)
