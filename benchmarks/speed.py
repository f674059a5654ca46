"""Speed of the value networks on this machine.

  python benchmarks/speed.py [--config=configs/horses.py] [--repeats=5]
  python benchmarks/speed.py --config=configs/bibtex.py

For a multi-label config it prints the train step (examples/s) and batched
prediction over the test split (examples/s). For the horses:

Prints, for the config's settings: the full DVN train step (tuple generation
+ update), the bare value-net update, one inference gradient step, and
full-image prediction (crops x steps), each after compilation, as the median
of --repeats timed calls, with the machine it ran on.
"""

from __future__ import annotations

import functools
import os
import statistics
import time

import jax
import jax.numpy as jnp
import optax
from absl import app
from absl import flags
from ml_collections import config_flags

import machine
from dvn_jax import builders
from dvn_jax import cli
from dvn_jax import evaluate
from dvn_jax import input_pipeline
from dvn_jax import predictors
from dvn_jax import tasks
from dvn_jax import train
from dvn_jax.datasets import horses

_CONFIG = config_flags.DEFINE_config_file(
    'config', os.path.join(os.path.dirname(__file__), '..', 'configs',
                           'horses.py'), 'Config file.')
_REPEATS = flags.DEFINE_integer('repeats', 5, 'Timed calls per measurement.',
                                lower_bound=1)


def time_call(fn, *args) -> tuple[float, float]:
  """(compile + first call seconds, median seconds of the next calls)."""
  start = time.perf_counter()
  jax.block_until_ready(fn(*args))
  first = time.perf_counter() - start
  times = []
  for _ in range(_REPEATS.value):
    start = time.perf_counter()
    jax.block_until_ready(fn(*args))
    times.append(time.perf_counter() - start)
  return first, statistics.median(times)


def multilabel_speed(config) -> None:
  """Train step and batched test-split prediction, in examples/s."""
  data = train.load_data(config)
  features, labels = tasks.get(config).train_arrays(data['train'])
  model = builders.create_model(config)
  tx = builders.make_optimizer(config.optimizer)
  step = train.make_train_step(model, tx, config)
  b = config.batch_size
  idx = input_pipeline.batch_indices(0, 0, len(features), b)[None]
  holder = {'state': train.create_state(model, tx, config)}

  def full_step():
    holder['state'], metrics = step(holder['state'], features, labels, idx)
    return metrics
  first, median = time_call(full_step)
  print(f'train step, batch {b}, {config.tuples.inference.num_steps} '
        f'inference steps: {1e3 * median:.2f} ms ({b / median:.0f} examples/s;'
        f' compile {first:.1f} s)')
  test = data['test']
  predict = predictors.make_predict_fn(model, config)
  first, median = time_call(
      lambda: evaluate.predict_in_batches(
          functools.partial(predict, holder['state'].params), test.features,
          config.eval.batch_size))
  print(f'predict the test split ({len(test)} examples, batch '
        f'{config.eval.batch_size}, {config.eval.inference.num_steps} steps): '
        f'{median:.3f} s ({len(test) / median:.0f} examples/s)')


def main(_):
  config = _CONFIG.value
  builders.check_config(config)
  print(f'# {machine.describe()}')
  if config.task == 'multilabel':
    multilabel_speed(config)
    return
  data = horses.load_weizmann_horses()['train']
  images = input_pipeline.images_to_float(data.images)
  masks = input_pipeline.masks_to_float(data.masks)
  model = builders.create_model(config)
  tx = builders.make_optimizer(config.optimizer)
  state = train.create_state(model, tx, config)
  b = config.batch_size
  idx = input_pipeline.batch_indices(0, 0, len(images), b)[None]

  step = train.make_train_step(model, tx, config)
  holder = {'state': state}

  def full_step():
    holder['state'], metrics = step(holder['state'], images, masks, idx)
    return metrics
  first, median = time_call(full_step)
  mix = {k: v for k, v in config.tuples.mix.items() if v}
  steps = config.tuples.inference.num_steps
  ascent = (f'chains of {steps} inference steps, '
            f'{config.tuples.chain_steps} a train step'
            if config.tuples.inference_chains else
            f'{steps} inference steps')
  print(f'DVN train step, batch {b}, mix {mix}, {ascent}: '
        f'{1e3 * median:.0f} ms ({b / median:.0f} tuples/s; compile '
        f'{first:.1f} s)')

  state = holder['state']  # the first state was donated to the train step
  x = images[idx[0], :config.crop_size, :config.crop_size]
  y = masks[idx[0], :config.crop_size, :config.crop_size]
  v = jnp.full((b,), 0.5)

  @jax.jit
  def value_update(params, opt_state):
    def loss(p):
      logits = model.apply({'params': p}, x, y, train=True,
                           rngs={'dropout': jax.random.key(0)})
      return optax.sigmoid_binary_cross_entropy(logits, v).mean()
    grads = jax.grad(loss)(params)
    updates, opt_state = tx.update(grads, opt_state, params)
    return optax.apply_updates(params, updates), opt_state
  first, median = time_call(value_update, state.params, state.opt_state)
  print(f'value-net update only, batch {b}: {1e3 * median:.1f} ms '
        f'({b / median:.0f} tuples/s)')

  grad_y = jax.jit(jax.grad(lambda y, p: jax.nn.sigmoid(
      model.apply({'params': p}, x, y)).sum()))
  first, median = time_call(grad_y, y, state.params)
  print(f'one inference step (dv/dy), batch {b}: {1e3 * median:.1f} ms')

  test_images = horses.load_weizmann_horses()['test'].images
  for combine in ('joint', 'average'):
    config.eval.combine = combine
    predict = predictors.make_predict_fn(model, config)
    n = config.eval.batch_size
    first, median = time_call(predict, state.params, test_images[:n])
    print(f'predict {combine}, {n} image(s) x {config.eval.num_crops} crops x '
          f'{config.eval.inference.num_steps} steps: {median:.2f} s '
          f'({n / median:.2f} images/s; compile {first:.1f} s)')


if __name__ == '__main__':
  app.run(main, flags_parser=cli.make_flags_parser(_CONFIG))
