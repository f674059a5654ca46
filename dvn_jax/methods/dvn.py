"""Deep value networks (the paper): a value network v(x, y) regressed onto
the oracle values v*(y, y*) of generated tuples (Sec. 3.2, 3.3, Eq. 11),
predicting by projected gradient ascent on y (Eq. 8).

Each train step takes a batch (`task.batch`), generates its tuples with the
current network (`tuples.generate_tuples_with_chains`: inference,
adversarial, stratified, ground-truth, interpolated and mixup outputs, in the
config's mix), mixes in tuples of earlier steps if the config keeps a
replay buffer (`tuples.replay_batch`), and makes one update on the
regression loss. Prediction is
`task.infer` of the bound value network, wrapped by `hybrid` when
`config.eval.fcn` asks for it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections
import optax

from dvn_jax import builders
from dvn_jax import hybrid
from dvn_jax import inference
from dvn_jax import losses
from dvn_jax import models
from dvn_jax import train_state
from dvn_jax import tuples
from dvn_jax.errors import ConfigError
from dvn_jax.tasks import base

Array = jax.Array


def bind(model: nn.Module, params: Any) -> inference.ValueFn:
  """The value network with fixed parameters, in inference mode, as
  prediction climbs it: the value sigmoid(s).

  Networks with `encode` and `value_logits` methods (models.TwoStageValueNet)
  are bound in their two stages, so inference encodes each input once.
  """
  variables = {'params': params}
  if isinstance(model, models.TwoStageValueNet):
    return inference.ValueFn(
        encode=lambda x: model.apply(variables, x, method='encode'),
        logits=lambda f, y: model.apply(variables, f, y,
                                        method='value_logits'))
  return inference.ValueFn(
      lambda x, y: model.apply(variables, x, y, train=False))


def tuple_spec(task: base.Task, config: ml_collections.ConfigDict
               ) -> tuples.TupleSpec:
  """The static settings of tuple generation of `config.tuples`."""
  t = config.tuples
  # Generators with weight 0 are left out; the batch is split in the fixed
  # order of tuples.GENERATORS (unknown names sort last; TupleSpec rejects
  # them, and negative or all-zero weights).
  order = {name: i for i, name in enumerate(tuples.GENERATORS)}
  mix = tuple(sorted(((name, float(w)) for name, w in t.mix.items() if w != 0),
                     key=lambda item: order.get(item[0], len(order))))
  return tuples.TupleSpec(
      mix=mix, oracle=task.oracle, loss=config.loss,
      inference_ascent=builders.ascent_spec(t.inference, task),
      inference_pick=t.inference_pick, inference_points=t.inference_points,
      temperature=t.temperature,
      adversarial_ascent=builders.ascent_spec(t.adversarial, task),
      adversarial_start=t.adversarial_start,
      adversarial_objective=t.adversarial_objective,
      inference_chains=t.inference_chains, chain_steps=t.chain_steps,
      replay_size=t.replay_size, replay_share=t.replay_share)


def check(task: base.Task, model: nn.Module,
          config: ml_collections.ConfigDict) -> None:
  if task.is_baseline(model):
    raise ConfigError(f"bad config: {config.model.name!r} is a baseline "
                      "network; train it with --config.method=baseline")
  spec = tuple_spec(task, config)
  batch = config.batch_size
  if 0 < spec.replay_size < batch:
    raise ConfigError(f'bad config: tuples.replay_size ({spec.replay_size}) '
                      f'must hold at least a batch ({batch})')
  replayed = tuples.replayed_count(batch, spec.replay_share)
  if spec.replay_size and not (1 <= replayed < batch or
                               spec.replay_share == 1.0):
    raise ConfigError(f'bad config: tuples.replay_share {spec.replay_share} '
                      f'of batch_size {batch} replays {replayed} tuples; '
                      'choose a share that replays 1 or more and leaves '
                      'fresh ones (or 1.0: all drawn from the buffer)')
  sizes = dict(tuples.split_sizes(batch, spec.mix))
  starved = [name for name, _ in spec.mix if name not in sizes]
  if starved:
    raise ConfigError(f'bad config: tuples.mix.{starved[0]} gets no tuple of '
                      f'a batch of {batch}; raise its weight or batch_size '
                      '(or set it to 0)')
  if sizes.get('mixup', 0) == 1:
    raise ConfigError('bad config: the mixup tuples of a batch mix truths of '
                      'two examples or more; raise tuples.mix.mixup or '
                      'batch_size')
  builders.ascent_spec(config.eval.inference, task)
  base.check_fields(hybrid.check(config))


def init_chains(task: base.Task, config: ml_collections.ConfigDict
                ) -> tuples.InferenceChains | None:
  """Persistent inference chains when the config asks for them, shaped
  like the task's training examples."""
  spec = tuple_spec(task, config)
  count = tuples.num_chains(config.batch_size, spec)
  if count == 0:
    return None
  x_shape, y_shape = task.example_shapes
  return tuples.init_chains((count, *x_shape), (count, *y_shape), spec)


def init_replay(task: base.Task, config: ml_collections.ConfigDict
                ) -> tuples.ReplayBuffer | None:
  """An empty replay buffer of training tuples when the config asks for
  one, shaped like the task's training examples."""
  size = config.tuples.replay_size
  if size == 0:
    return None
  x_shape, y_shape = task.example_shapes
  return tuples.init_replay((size, *x_shape), (size, *y_shape))


def make_train_step(task: base.Task, model: nn.Module,
                    tx: optax.GradientTransformation,
                    config: ml_collections.ConfigDict) -> Callable:
  """train_step(state, inputs, targets, indices) -> (state, metrics).

  inputs and targets are the whole training set on the device
  (`task.train_arrays`); indices (B,) pick the batch.
  """
  spec = tuple_spec(task, config)
  loss_fn = losses.get_loss(config.loss)
  if spec.replay_size:   # fresh tuples (of every generator), then replayed
    replayed = tuples.replayed_count(config.batch_size, spec.replay_share)
    sizes = [('fresh', config.batch_size - replayed), ('replayed', replayed)]
  else:
    sizes = tuples.split_sizes(config.batch_size, spec.mix)
  base_key = jax.random.key(config.seed)
  averaged = train_state.make_averager(config)

  def train_step(state, inputs, targets, indices):
    rng = jax.random.fold_in(base_key, state.step)
    rng_batch, rng_tuples, rng_dropout = jax.random.split(rng, 3)
    x, y_star = task.batch(rng_batch, inputs[indices], targets[indices])
    x, y, v_star, chains = tuples.generate_tuples_with_chains(
        rng_tuples, bind(model, state.params), x, y_star, spec,
        state.chains)
    replay = state.replay
    if replay is not None:   # a key of its own: runs without stay the same
      x, y, v_star, replay = tuples.replay_batch(
          tuples.replay_key(rng_tuples), replay, x, y, v_star,
          spec.replay_share)

    def loss(params):
      logits = model.apply({'params': params}, x, y, train=True,
                           rngs={'dropout': rng_dropout})
      return jnp.mean(loss_fn(logits, v_star)), logits

    (loss_value, logits), grads = jax.value_and_grad(loss, has_aux=True)(
        state.params)
    updates, opt_state = tx.update(grads, state.opt_state, state.params)
    params = optax.apply_updates(state.params, updates)
    ema = averaged(state.ema_params, params, state.step)
    abs_error = jnp.abs(jax.nn.sigmoid(logits) - v_star)
    metrics = {'loss': loss_value, 'value_abs_error': abs_error.mean(),
               'grad_norm': optax.tree.norm(grads),
               'param_norm': optax.tree.norm(params)}
    start = 0
    for name, size in sizes:
      metrics[f'v_star/{name}'] = v_star[start:start + size].mean()
      metrics[f'abs_error/{name}'] = abs_error[start:start + size].mean()
      start += size
    return train_state.TrainState(state.step + 1, params, opt_state, chains,
                                  ema, replay), metrics

  return train_step


def make_predict(task: base.Task, model: nn.Module,
                 config: ml_collections.ConfigDict,
                 return_trajectory: bool = False,
                 bind_fn: Callable[[nn.Module, Any], inference.ValueFn]
                 = bind) -> Callable:
  """predict(params, inputs) -> outputs of whole test inputs (with
  return_trajectory: (outputs, trajectory)), by `task.infer` with
  `config.eval.inference`, from a fixed key (repeatable scores)."""
  spec = builders.ascent_spec(config.eval.inference, task)
  eval_key = jax.random.key(config.seed)
  wrap = hybrid.from_config(task, config) or (lambda value_fn: value_fn)

  def predict(params: Any, inputs: Array):
    outputs, trajectory = task.infer(wrap(bind_fn(model, params)),
                                     inputs, spec, eval_key,
                                     return_trajectory)
    return (outputs, trajectory) if return_trajectory else outputs

  return predict
