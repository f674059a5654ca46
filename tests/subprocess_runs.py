"""Runs `python ...` from the repository root on the CPU for the tests.

Importable from every test file (pytest puts tests/ on sys.path). The
subprocesses inherit the environment, so also conftest's compilation cache.
"""

import os
import pathlib
import subprocess
import sys

REPO = pathlib.Path(__file__).resolve().parents[1]


def run_python(*args: object, timeout: float = 300,
               env: dict[str, str] | None = None
               ) -> subprocess.CompletedProcess:
  """`python ARGS` from the repository root, output captured; `env` adds
  environment variables (JAX_PLATFORMS is cpu unless it says otherwise)."""
  return subprocess.run([sys.executable, *map(str, args)],
                        capture_output=True, text=True, timeout=timeout,
                        cwd=REPO,
                        env={**os.environ, 'JAX_PLATFORMS': 'cpu', **(env or {})})


def main_command(*args: object, module: str = 'dvn_jax.main') -> list[str]:
  """The command line of `python -m MODULE ARGS`."""
  return [sys.executable, '-m', module, *map(str, args)]


def run_main(*args: object, timeout: float = 300,
             module: str = 'dvn_jax.main') -> subprocess.CompletedProcess:
  """`python -m MODULE ARGS` (dvn_jax.main by default), output captured."""
  return run_python('-m', module, *args, timeout=timeout)
