"""Sweep files and config overrides, shared by benchmarks/sweep.py (trains
the variants side by side on one machine) and launch/sweep.py (one command
or cluster job per variant).

A sweep file defines `get_sweep(arg) -> {variant name: {dotted field:
value}}`; each variant becomes `--config.<field>=<value>` flags of
`python -m dvn_jax.main`, the ml_collections override syntax.
"""

from __future__ import annotations

import importlib.util
import pathlib

import ml_collections

from dvn_jax.errors import ConfigError

Overrides = dict[str, object]


def load_module(path: str, name: str = 'module'):
  """Imports a Python file by path (configs import `configs.*`, so run
  from the repository root or have it on sys.path)."""
  if not pathlib.Path(path).is_file():
    raise ConfigError(f'file not found: {path}')
  spec = importlib.util.spec_from_file_location(name, path)
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module


def load_sweep(spec: str) -> dict[str, Overrides]:
  """Variants of a sweep file 'path[:arg]': its get_sweep(arg)."""
  path, _, arg = spec.partition(':')
  module = load_module(path, 'sweep')
  if not hasattr(module, 'get_sweep'):
    raise ConfigError(f'{path} defines no get_sweep(arg)')
  return module.get_sweep(arg or None)


def load_config(spec: str) -> ml_collections.ConfigDict:
  """get_config(arg) of a config file 'path[:arg]'; ConfigError for a file
  without get_config or an option it does not know."""
  path, _, arg = spec.partition(':')
  module = load_module(path, 'config')
  if not hasattr(module, 'get_config'):
    raise ConfigError(f'{path} defines no get_config(arg)')
  try:
    return module.get_config(arg or None)
  except ValueError as e:
    raise ConfigError(f'bad config {spec!r}: {e}') from None


def parse_sets(items: list[str]) -> Overrides:
  """['field=value', ...] -> {field: value}."""
  pairs = [item.split('=', 1) for item in items]
  bad = [item for item, pair in zip(items, pairs) if len(pair) != 2]
  if bad:
    raise ConfigError(f'--set needs field=value, got {bad[0]!r}')
  return dict(pairs)


def format_value(value: object) -> str:
  if isinstance(value, (tuple, list)):
    return '(' + ','.join(format_value(v) for v in value) + ('' if len(
        value) != 1 else ',') + ')'
  return str(value)


def config_args(overrides: Overrides) -> list[str]:
  """--config.<field>=<value> flags."""
  return [f'--config.{k}={format_value(v)}' for k, v in overrides.items()]


def check_overrides(config: ml_collections.ConfigDict,
                    overrides: Overrides, variant: str = '') -> None:
  """ConfigError naming the first field the config does not have."""
  for dotted in overrides:
    node = config
    for part in dotted.split('.'):
      if not isinstance(node, ml_collections.ConfigDict) or part not in node:
        where = f' (variant {variant!r})' if variant else ''
        raise ConfigError(f'the config has no field {dotted!r}{where}')
      node = node[part]
