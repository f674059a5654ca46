"""Per-example cost of each conv layer of the value net, by batch size.

  python benchmarks/conv_layers.py [--batch_sizes=16,32,64]

Times, for each convolution of the value net (paper Fig. 2, 24x24 crops),
the forward pass, the gradient w.r.t. its input (what inference's dv/dy
needs) and w.r.t. its kernel (the update), jitted, median of 9 calls. On
this CPU the 24x24 64->128 stride-2 layer costs more per example as the
batch grows (its activations leave the cache), which is why the value net
runs its convolutions on slices of 8 examples on a CPU (models.py).
"""

from __future__ import annotations


import jax
import jax.numpy as jnp
from absl import app
from absl import flags

import machine
from dvn_jax import cli

_BATCH_SIZES = flags.DEFINE_list('batch_sizes', ['16', '32', '64'],
                                 'Batch sizes.')
cli.check_whole_numbers(_BATCH_SIZES)
LAYERS = ((24, 4, 64, 1), (24, 64, 128, 2), (12, 128, 128, 2))  # h, in, out, s
DIMENSIONS = ('NHWC', 'HWIO', 'NHWC')


def conv(x, k, stride):
  return jax.lax.conv_general_dilated(x, k, (stride, stride), 'SAME',
                                      dimension_numbers=DIMENSIONS)


def main(_):
  print(f'# {machine.describe()}')
  print('| layer | batch | forward ms/ex | d/dinput ms/ex | d/dkernel ms/ex |')
  print('|---|---|---|---|---|')
  for size, c_in, c_out, stride in LAYERS:
    k = jax.random.normal(jax.random.key(1), (5, 5, c_in, c_out)) * 0.05
    forward = jax.jit(lambda x, k, s=stride: conv(x, k, s))
    d_input = jax.jit(lambda x, k, ct, s=stride: jax.vjp(
        lambda x: conv(x, k, s), x)[1](ct)[0])
    d_kernel = jax.jit(lambda x, k, ct, s=stride: jax.vjp(
        lambda k: conv(x, k, s), k)[1](ct)[0])
    for batch in (int(b) for b in _BATCH_SIZES.value):
      x = jax.random.normal(jax.random.key(0), (batch, size, size, c_in))
      ct = jnp.ones_like(conv(x, k, stride))   # an argument: no folding
      times = [machine.median_seconds(lambda: forward(x, k), 9),
               machine.median_seconds(lambda: d_input(x, k, ct), 9),
               machine.median_seconds(lambda: d_kernel(x, k, ct), 9)]
      print(f'| {size}x{size} {c_in}->{c_out} /{stride} | {batch} | ' +
            ' | '.join(f'{1e3 * t / batch:.2f}' for t in times) + ' |')


if __name__ == '__main__':
  app.run(main, flags_parser=cli.make_flags_parser())
