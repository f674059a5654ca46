"""Structured prediction energy networks (Belanger & McCallum, 2016) on the
same networks and the same gradient inference as the DVN: the paper's
closest rival (its Table 1), trained by SPEN's structured hinge.

The value network's logit s(x, y) plays the negative energy, -E(x, y), an
unbounded score (not squashed by the sigmoid: a margin of up to 1 between
values in [0, 1] would saturate it). Each train step finds, per example,
the most violating output by cost-augmented inference, projected gradient
ascent from y = 0 on

  s(x, y) + Delta(y, y*),   Delta = 1 - v*(y, y*)   (the task loss),

and takes one update on the structured hinge

  max(0, Delta(y_hat, y*) + s(x, y_hat) - s(x, y*)),

which is zero once the truth outscores every output by its task loss.
Prediction is the DVN's gradient ascent from y = 0 (`task.infer`, the same
steps and projection) on s instead of sigmoid(s) (`ValueFn.squash`), so
the two methods differ in the training objective and in what is climbed.
`config.spen.ascent` sets the cost-augmented ascent (steps, step size).

SPEN's pre-training (its Sec. 7): with `config.spen.pretrain_steps` N > 0
the first N steps train the feature network alone, its encoding read as
per-output logits with the task's logistic loss (networks whose encoding
has the output's shape: the multi-label value net's b(x)); the hinge takes
over from step N on.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections
import optax

from dvn_jax import builders
from dvn_jax import inference
from dvn_jax import oracles
from dvn_jax import train_state
from dvn_jax.errors import ConfigError
from dvn_jax.methods import dvn
from dvn_jax.tasks import base

Array = jax.Array


def bind(model: nn.Module, params: Any) -> inference.ValueFn:
  """The network with fixed parameters, as prediction climbs it: the
  score s itself."""
  return dataclasses.replace(dvn.bind(model, params), squash=False)


def make_predict(task: base.Task, model: nn.Module,
                 config: ml_collections.ConfigDict,
                 return_trajectory: bool = False) -> Callable:
  """predict(params, inputs): `dvn.make_predict` ascending the score."""
  return dvn.make_predict(task, model, config, return_trajectory,
                          bind_fn=bind)


def check(task: base.Task, model: nn.Module,
          config: ml_collections.ConfigDict) -> None:
  if task.is_baseline(model):
    raise ConfigError(f"bad config: method 'spen' needs a value network, and "
                      f'{config.model.name!r} is a baseline network')
  if 'spen' not in config:
    raise ConfigError("bad config: method 'spen' needs a config.spen block "
                      '(configs/common.py spen())')
  builders.ascent_spec(config.spen.ascent, task)
  builders.ascent_spec(config.eval.inference, task)
  if config.spen.pretrain_steps < 0:
    raise ConfigError('spen.pretrain_steps must be >= 0, got '
                      f'{config.spen.pretrain_steps}')
  if config.spen.pretrain_steps:
    x_shape, y_shape = task.example_shapes
    params = jax.eval_shape(lambda: task.init_params(model, jax.random.key(0)))
    encoded = jax.eval_shape(
        lambda p: model.apply({'params': p}, jnp.zeros((1, *x_shape)),
                              method='encode'), params)
    if getattr(encoded, 'shape', None) != (1, *y_shape):
      raise ConfigError(f'spen.pretrain_steps needs a network whose encoding '
                        f'has the output\'s shape {y_shape} (per-output '
                        f'logits); {config.model.name!r} has none')


def init_chains(task: base.Task, config: ml_collections.ConfigDict) -> None:
  del task, config


def init_replay(task: base.Task, config: ml_collections.ConfigDict) -> None:
  del task, config


def task_loss(oracle: Callable[[Array, Array], Array], y: Array,
              y_star: Array) -> Array:
  """Delta(y, y*) = 1 - v*(y, y*), (B,): the margin SPEN asks for."""
  return 1.0 - oracle(y, y_star)


def most_violating(value_fn: inference.LogitFn, x: Array, y_star: Array,
                   oracle: Callable[[Array, Array], Array],
                   spec: inference.AscentSpec) -> Array:
  """Cost-augmented inference: projected gradient ascent from y = 0 (the
  output set's point nearest it) on the ascent's objective (the score s for
  `bind`) + Delta(y, y*); no gradient flows to the network
  through the result."""
  value = inference.objective_fn(value_fn, x)
  y0 = inference.start_point(y_star.shape, spec)
  y, _ = inference.gradient_ascent(
      lambda y: value(y) + task_loss(oracle, y, y_star), y0, spec)
  return jax.lax.stop_gradient(y)


def structured_hinge(s_hat: Array, s_truth: Array, delta: Array) -> Array:
  """max(0, Delta + s(x, y_hat) - s(x, y*)) per example."""
  return jax.nn.relu(delta + s_hat - s_truth)


def make_train_step(task: base.Task, model: nn.Module,
                    tx: optax.GradientTransformation,
                    config: ml_collections.ConfigDict) -> Callable:
  """train_step(state, inputs, targets, indices) -> (state, metrics): one
  update on the structured hinge of the batch `indices` picks."""
  spec = builders.ascent_spec(config.spen.ascent, task)
  oracle = oracles.get_oracle(task.oracle)
  base_key = jax.random.key(config.seed)
  averaged = train_state.make_averager(config)
  pretrain_steps = config.spen.pretrain_steps

  def train_step(state, inputs, targets, indices):
    rng = jax.random.fold_in(base_key, state.step)
    rng_batch, rng_dropout = jax.random.split(rng)
    x, y_star = task.batch(rng_batch, inputs[indices], targets[indices])

    def hinge_grads(params):
      """(hinge, (share violated, mean task loss)), its gradient."""
      y_hat = most_violating(bind(model, params), x, y_star, oracle, spec)
      delta = task_loss(oracle, y_hat, y_star)

      def hinge_loss(params):
        both = model.apply({'params': params}, jnp.concatenate([x, x]),
                           jnp.concatenate([y_hat, y_star]), train=True,
                           rngs={'dropout': rng_dropout})
        s_hat, s_truth = jnp.split(both, 2)
        hinge = structured_hinge(s_hat, s_truth, delta)
        return jnp.mean(hinge), (jnp.mean(hinge > 0), jnp.mean(delta))

      return jax.value_and_grad(hinge_loss, has_aux=True)(params)

    def pretrain_grads(params):
      """The logistic loss of the encoding, its gradient (no
      cost-augmented inference: its output would go unused)."""
      def pretrain_loss(params):
        logits = model.apply({'params': params}, x, train=True,
                             rngs={'dropout': rng_dropout}, method='encode')
        return task.baseline_loss(logits, y_star), (jnp.zeros(()),
                                                    jnp.zeros(()))

      return jax.value_and_grad(pretrain_loss, has_aux=True)(params)

    if pretrain_steps:   # (check() has made sure the encoding fits)
      (loss_value, (violated, delta)), grads = jax.lax.cond(
          state.step < pretrain_steps, pretrain_grads, hinge_grads,
          state.params)
    else:
      (loss_value, (violated, delta)), grads = hinge_grads(state.params)
    updates, opt_state = tx.update(grads, state.opt_state, state.params)
    params = optax.apply_updates(state.params, updates)
    ema = averaged(state.ema_params, params, state.step)
    metrics = {'loss': loss_value, 'violated': violated,
               'task_loss': delta,
               'grad_norm': optax.tree.norm(grads),
               'param_norm': optax.tree.norm(params)}
    return train_state.TrainState(state.step + 1, params, opt_state,
                                  ema_params=ema), metrics

  return train_step
