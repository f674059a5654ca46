"""Shared test settings: tests run on the CPU, with float32 matmuls exact.

Compiled programs are cached on disk for the session (JAX's persistent
compilation cache, in a fresh temporary folder removed at exit), so the many
tests that compile the same smoke programs, in this process, in the
pytest-xdist workers (the controller sets the folder before it starts them)
and in the `python -m dvn_jax.main` subprocesses that inherit the
environment, compile each once. A cached program is the one XLA would
compile again, so results do not change; a clean checkout starts with an
empty cache.
"""

import atexit
import os
import shutil
import tempfile

os.environ.setdefault('JAX_PLATFORMS', 'cpu')
if 'JAX_COMPILATION_CACHE_DIR' not in os.environ:
  _cache_dir = tempfile.mkdtemp(prefix='dvn_jax_tests_xla_cache_')
  atexit.register(shutil.rmtree, _cache_dir, ignore_errors=True)
  os.environ['JAX_COMPILATION_CACHE_DIR'] = _cache_dir
  os.environ.setdefault('JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS', '0.2')
  os.environ.setdefault('JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES', '0')

import jax  # noqa: E402

jax.config.update('jax_default_matmul_precision', 'highest')
