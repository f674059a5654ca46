"""The train state and the moving average of its parameters, shared by
every training method (`methods/`) and the loop (train.py)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import flax
import jax
import jax.numpy as jnp
import ml_collections

from dvn_jax.errors import ConfigError

Array = jax.Array


class TrainState(flax.struct.PyTreeNode):
  step: Array
  params: Any
  opt_state: Any
  # Persistent inference chains (tuples.InferenceChains) or None.
  chains: Any = None
  # An exponential moving average of `params` (config.ema_decay > 0) or
  # None; when present it is what evaluation, export and prediction use.
  ema_params: Any = None
  # A replay buffer of earlier training tuples (tuples.ReplayBuffer) or
  # None.
  replay: Any = None


class TrainStateBeforeReplay(flax.struct.PyTreeNode):
  """The train state as checkpoints written before the replay buffer
  existed hold it (`as_current` reads it as today's)."""
  step: Array
  params: Any
  opt_state: Any
  chains: Any = None
  ema_params: Any = None

  def as_current(self) -> TrainState:
    return TrainState(self.step, self.params, self.opt_state, self.chains,
                      self.ema_params)


def ema_decay(config: ml_collections.ConfigDict) -> float:
  """config.ema_decay (0 = no moving average), checked to be in [0, 1)."""
  decay = config.ema_decay
  if not 0.0 <= decay < 1.0:
    raise ConfigError(f'bad config: ema_decay must be in [0, 1) (0 = off), '
                      f'got {decay}')
  return decay


def update_ema(ema_params: Any, params: Any, decay: float, step: Array) -> Any:
  """One step of the parameters' exponential moving average.

  The decay is min(decay, (1 + step) / (10 + step)), so the average of a
  short run is not dominated by the initial parameters (as in
  tf.train.ExponentialMovingAverage with num_updates).
  """
  rate = jnp.minimum(decay, (1.0 + step) / (10.0 + step))
  return jax.tree.map(lambda e, p: rate * e + (1.0 - rate) * p, ema_params,
                      params)


def make_averager(config: ml_collections.ConfigDict) -> Callable[..., Any]:
  """averaged(ema_params, new_params, step) -> the next moving average
  (None without one), for the train steps; `step` counts the updates before
  this one, for the warm-up."""
  decay = ema_decay(config)

  def averaged(ema_params: Any, params: Any, step: Array) -> Any:
    if ema_params is None:
      return None
    return update_ema(ema_params, params, decay, step)

  return averaged


def fresh_copy(params: Any) -> Any:
  """A copy in new buffers (the moving average's start: the train step
  donates the state, and one buffer cannot be donated twice)."""
  return jax.tree.map(jnp.copy, params)


def eval_params(state: TrainState) -> Any:
  """The parameters to evaluate: the moving average if there is one."""
  return state.params if state.ema_params is None else state.ema_params
