"""Parameters of one network, or of an ensemble: `Ensemble`, the members'
parameter trees stacked on a leading axis (`param_files.stack_params` for
files, `python -m dvn_jax.ensemble`). Prediction averages the members'
outputs. Whether parameters are an ensemble is decided by their type alone.
"""

from __future__ import annotations

from collections.abc import Callable
from collections.abc import Sequence
from typing import Any

import flax
import jax
import numpy as np


@flax.struct.dataclass
class Ensemble:
  """K networks of one model: each leaf of `members` is the K members'
  arrays stacked on a leading axis. A pytree, so it passes through jit."""
  members: Any

  @property
  def size(self) -> int:
    return int(jax.tree.leaves(self.members)[0].shape[0])


def split_members(params: Any) -> list[Any]:
  """[params] of one network, or an ensemble's members."""
  if not isinstance(params, Ensemble):
    return [params]
  return [jax.tree.map(lambda p, i=i: p[i], params.members)
          for i in range(params.size)]


def averaged_over_members(predict: Callable) -> Callable:
  """predict(params, inputs) that also takes an `Ensemble`, whose output is
  the mean of its members' outputs (masks, or trajectories, averaged: mask
  averaging over networks, as over crops in paper Sec. 5.4)."""
  def ensemble_predict(params, inputs):
    members = split_members(params)
    if len(members) == 1:
      return predict(members[0], inputs)
    # One traced copy per member, not lax.map: convolutions inside a rolled
    # loop leave XLA's fast path on a CPU (docs/throughput.md).
    outputs = [predict(member, inputs) for member in members]
    return jax.tree.map(lambda *outs: sum(outs) / len(members), *outputs)
  return ensemble_predict


def stack_members(trees: Sequence[Any]) -> Ensemble:
  """Parameter trees of one model stacked into an `Ensemble`."""
  return Ensemble(jax.tree.map(lambda *leaves: np.stack(leaves), *trees))
