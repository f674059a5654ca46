"""One line naming the machine a benchmark ran on (for its results)."""

import os
import platform
import statistics
import time
from collections.abc import Callable

import jax

from dvn_jax import files


def describe() -> str:
  cpu = platform.processor() or platform.machine()
  try:
    with open('/proc/cpuinfo') as f:
      cpu = next(l.split(':', 1)[1].strip() for l in f if 'model name' in l)
  except (OSError, StopIteration):
    pass
  return (f'{time.strftime("%Y-%m-%d")}; {cpu}, {os.cpu_count()} cores; '
          f'JAX {jax.__version__} on {jax.devices()[0].device_kind}')


def check_output(path: str | None) -> None:
  """ConfigError unless `--output` (if given) can be written: checked at the
  start, so hours of measurement never end in an unwritable path."""
  if path is not None:
    files.check_output_file(path, '--output')


def print_and_save(text: str, path: str | None, caption: str) -> None:
  """Prints a benchmark's markdown; writes it under its caption to path
  (whole or not at all)."""
  print(text)
  if path:
    with files.atomic_write(path, 'w') as f:
      f.write(f'{caption}\n\n{text}')


def median_seconds(fn: Callable[[], object], repeats: int,
                   warmup: bool = True) -> float:
  """Median wall time of `repeats` calls of fn (waited for with
  jax.block_until_ready), after one untimed call unless warmup=False."""
  if warmup:
    jax.block_until_ready(fn())
  times = []
  for _ in range(repeats):
    start = time.perf_counter()
    jax.block_until_ready(fn())
    times.append(time.perf_counter() - start)
  return statistics.median(times)
