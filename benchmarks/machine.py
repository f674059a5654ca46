"""One line naming the machine a benchmark ran on (for its results)."""

import os
import platform
import time

import jax


def describe() -> str:
  cpu = platform.processor() or platform.machine()
  try:
    with open('/proc/cpuinfo') as f:
      cpu = next(l.split(':', 1)[1].strip() for l in f if 'model name' in l)
  except (OSError, StopIteration):
    pass
  return (f'{time.strftime("%Y-%m-%d")}; {cpu}, {os.cpu_count()} cores; '
          f'JAX {jax.__version__} on {jax.devices()[0].device_kind}')
