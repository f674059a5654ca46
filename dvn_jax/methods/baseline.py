"""Baselines: a network of per-output logits p(y | x) (the FCN, logistic
regression, an MLP) trained with per-output cross-entropy: sigmoid on the
box, softmax over the classes on the simplex (paper Sec. 5). It predicts
its probabilities by the task's protocol (crops averaged for segmentation).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import flax.linen as nn
import jax
import ml_collections
import optax

from dvn_jax import train_state
from dvn_jax.errors import ConfigError
from dvn_jax.tasks import base

Array = jax.Array


def check(task: base.Task, model: nn.Module,
          config: ml_collections.ConfigDict) -> None:
  if not task.is_baseline(model):
    raise ConfigError(f"bad config: method 'baseline' needs a baseline "
                      f'network, and {config.model.name!r} is a value net; '
                      "set --config.method=dvn")


def init_chains(task: base.Task, config: ml_collections.ConfigDict) -> None:
  del task, config


def init_replay(task: base.Task, config: ml_collections.ConfigDict) -> None:
  del task, config


def make_train_step(task: base.Task, model: nn.Module,
                    tx: optax.GradientTransformation,
                    config: ml_collections.ConfigDict) -> Callable:
  """train_step(state, inputs, targets, indices) -> (state, metrics): one
  update on the per-output cross-entropy of the batch `indices` picks."""
  base_key = jax.random.key(config.seed)
  averaged = train_state.make_averager(config)

  def train_step(state, inputs, targets, indices):
    rng = jax.random.fold_in(base_key, state.step)
    # The batch's crops use `rng` itself, dropout a key of its own.
    rng_dropout = jax.random.fold_in(rng, 1)
    x, y_star = task.batch(rng, inputs[indices], targets[indices])

    def loss(params):
      logits = model.apply({'params': params}, x, train=True,
                           rngs={'dropout': rng_dropout})
      return task.baseline_loss(logits, y_star)

    loss_value, grads = jax.value_and_grad(loss)(state.params)
    updates, opt_state = tx.update(grads, state.opt_state, state.params)
    params = optax.apply_updates(state.params, updates)
    metrics = {'loss': loss_value, 'grad_norm': optax.tree.norm(grads),
               'param_norm': optax.tree.norm(params)}
    ema = averaged(state.ema_params, params, state.step)
    return train_state.TrainState(state.step + 1, params, opt_state,
                                  ema_params=ema), metrics

  return train_step


def make_predict(task: base.Task, model: nn.Module,
                 config: ml_collections.ConfigDict,
                 return_trajectory: bool = False) -> Callable:
  """predict(params, inputs) -> the baseline's probabilities of whole test
  inputs (`task.apply_baseline`)."""
  del config
  if return_trajectory:
    raise ConfigError('a baseline has no inference trajectory; pass a value '
                      'network (method dvn)')

  def predict(params: Any, inputs: Array) -> Array:
    return task.apply_baseline(
        lambda x: task.probabilities(model.apply({'params': params}, x)),
        inputs)

  return predict
