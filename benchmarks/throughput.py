r"""Throughput of training and inference, against the chip's measured peak.

  python benchmarks/throughput.py [--config=configs/horses.py] \
      [--batch_sizes=32,64] [--unrolls=full,1] [--steps_per_call=1,10] \
      [--precision=float32]
  python benchmarks/throughput.py --config=configs/bibtex.py --batch_sizes=32

For each batch size, `lax.scan` unroll factor ('full' or an integer;
applied to the inference steps of training tuples and of prediction) and
number of train steps fused in one compiled call (config.steps_per_call;
the time of a call divided by it) it prints one markdown row: the train
step (ms, tuples/s), its FLOPs (XLA's
cost analysis of the fully unrolled step: a rolled loop's cost analysis
counts its body once), the FLOP/s achieved and their share of the peak, the
compile time, inference throughput (crop-steps/s for segmentation: crops x
ascent steps per second of full-image prediction; examples/s for
multi-label), and the process's peak memory. The peak is a large float32
matmul timed on the same chip in the same run. --precision sets
jax_default_matmul_precision (on a GPU: 'tensorfloat32' or 'bfloat16'
passes; on a CPU all are float32).
"""

from __future__ import annotations

import resource
import time

import jax
import jax.numpy as jnp
from absl import app
from absl import flags
from ml_collections import config_flags

import machine
from dvn_jax import builders
from dvn_jax import cli
from dvn_jax import input_pipeline
from dvn_jax import parallel
from dvn_jax import predictors
from dvn_jax import tasks
from dvn_jax import train

_CONFIG = config_flags.DEFINE_config_file(
    'config', 'configs/horses.py', 'Config file.')
_BATCH_SIZES = flags.DEFINE_list('batch_sizes', [], 'Train batch sizes '
                                 '(default: the config\'s).')
_UNROLLS = flags.DEFINE_list('unrolls', ['full', '1'],
                             "lax.scan unroll factors: 'full' or integers.")
_STEPS_PER_CALL = flags.DEFINE_list('steps_per_call', ['1'], 'Train steps '
                                    'fused in one compiled call.')
cli.check_whole_numbers(_BATCH_SIZES)
cli.check_whole_numbers(_UNROLLS, words=('full',))
cli.check_whole_numbers(_STEPS_PER_CALL)
_PRECISION = flags.DEFINE_enum('precision', 'float32',
                               ['float32', 'tensorfloat32', 'bfloat16'],
                               'Matmul/conv precision.')
_REPEATS = flags.DEFINE_integer('repeats', 5, 'Timed calls per measurement.',
                                lower_bound=1)
_PEAK_N = flags.DEFINE_integer('peak_n', 0, 'Matmul size for the peak (0: '
                               '2048 on CPU, 8192 on GPU/TPU).', lower_bound=0)


def matmul_peak(n: int, repeats: int) -> float:
  """FLOP/s of an n x n float32 matmul (2 n^3 FLOPs), best of repeats."""
  a = jax.random.normal(jax.random.key(0), (n, n), jnp.float32)
  f = jax.jit(lambda a: a @ a)
  jax.block_until_ready(f(a))
  best = min(machine.median_seconds(lambda: f(a), 1, warmup=False)
             for _ in range(repeats))
  return 2 * n ** 3 / best


def compiled_flops(compiled) -> float:
  cost = compiled.cost_analysis()
  if isinstance(cost, list):
    cost = cost[0]
  return float(cost.get('flops', 0.0)) if cost else 0.0


def peak_memory() -> str:
  stats = jax.devices()[0].memory_stats() or {}
  if 'peak_bytes_in_use' in stats:
    return f'{stats["peak_bytes_in_use"] / 2**20:.0f} MiB (device)'
  kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
  return f'{kib / 2**10:.0f} MiB (process RSS)'


def parse_unroll(text: str) -> int:
  """'full' -> 0 (the configs' "unroll every step"), else the factor."""
  return 0 if text == 'full' else int(text)


def with_settings(config, batch_size: int, unroll: int, steps_per_call: int):
  config = config.copy_and_resolve_references()
  config.batch_size = batch_size
  config.steps_per_call = steps_per_call
  ascents = [config.eval.inference]
  if 'tuples' in config:
    ascents += [config.tuples.inference, config.tuples.adversarial]
  for ascent in ascents:
    ascent.unroll = unroll
  return config


def measure(config, data, mesh, repeats: int) -> dict[str, float]:
  """Train step and prediction timings for one config."""
  model = builders.create_model(config)
  tx = builders.make_optimizer(config.optimizer)
  rep = parallel.replicated(mesh)
  inputs, targets = (parallel.put(a, rep)
                     for a in tasks.get(config).train_arrays(data['train']))
  state = parallel.put_tree(train.create_state(model, tx, config), rep)
  # A lax.scan's cost analysis counts its body once: the compiled program's
  # FLOPs are one step's whatever steps_per_call is.
  k = config.steps_per_call
  indices = parallel.put(input_pipeline.steps_batch_indices(
      0, 0, k, len(inputs), config.batch_size),
                         parallel.steps_batch_sharded(mesh))
  step = train.make_train_step(model, tx, config, mesh)
  start = time.perf_counter()
  compiled = step.lower(state, inputs, targets, indices).compile()
  compile_s = time.perf_counter() - start
  holder = {'state': state}

  def one_step():
    holder['state'], metrics = compiled(holder['state'], inputs, targets,
                                        indices)
    return metrics
  jax.block_until_ready(one_step())
  step_s = machine.median_seconds(one_step, repeats, warmup=False) / k

  params = holder['state'].params
  predict = predictors.make_predict_fn(model, config)
  split = data['test'] if 'test' in data else data['val']
  if config.task == 'segmentation':
    batch = split.images[:config.eval.batch_size]
    work = (len(batch) * config.eval.num_crops *
            config.eval.inference.num_steps)        # crop-steps
  else:
    batch = split.features[:max(config.eval.batch_size, 1)]
    work = len(batch)                                # examples
  jax.block_until_ready(predict(params, batch))
  predict_s = machine.median_seconds(lambda: predict(params, batch), repeats,
                                     warmup=False)
  return {'step_s': step_s, 'compile_s': compile_s,
          'flops': compiled_flops(compiled), 'predict_rate': work / predict_s}


def main(_):
  jax.config.update('jax_default_matmul_precision', _PRECISION.value)
  config = _CONFIG.value
  builders.check_config(config)
  segmentation = config.task == 'segmentation'
  data = train.load_data(config)
  mesh = parallel.make_mesh(config.num_devices)
  platform = jax.devices()[0].platform
  n = _PEAK_N.value or (2048 if platform == 'cpu' else 8192)
  peak = matmul_peak(n, _REPEATS.value)
  print(f'# {machine.describe()}; {mesh.size} device(s); precision '
        f'{_PRECISION.value}')
  print(f'# peak: {n}x{n} float32 matmul {peak / 1e9:.1f} GFLOP/s')
  rate = 'crop-steps/s' if segmentation else 'examples/s'
  print(f'| batch | unroll | steps/call | train step ms | tuples/s | '
        f'GFLOP/step | GFLOP/s | % of peak | compile s | predict {rate} | '
        'peak memory |')
  print('|---|---|---|---|---|---|---|---|---|---|---|')
  batch_sizes = [int(b) for b in _BATCH_SIZES.value] or [config.batch_size]
  for batch_size in batch_sizes:
    flops = None
    for unroll_text in _UNROLLS.value:
      unroll = parse_unroll(unroll_text)
      for k in (int(k) for k in _STEPS_PER_CALL.value):
        result = measure(with_settings(config, batch_size, unroll, k), data,
                         mesh, _REPEATS.value)
        if unroll == 0:
          flops = result['flops']
        work = flops or result['flops']
        achieved = work / result['step_s']
        print(f'| {batch_size} | {unroll_text} | {k} | '
              f'{1e3 * result["step_s"]:.2f} | '
              f'{batch_size / result["step_s"]:.0f} | {work / 1e9:.2f} | '
              f'{achieved / 1e9:.1f} | {100 * achieved / peak:.0f} | '
              f'{result["compile_s"]:.1f} | {result["predict_rate"]:.0f} | '
              f'{peak_memory()} |', flush=True)


if __name__ == '__main__':
  app.run(main, flags_parser=cli.make_flags_parser(_CONFIG))
