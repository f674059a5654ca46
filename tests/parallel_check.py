"""Run by test_parallel.py in a process with 8 simulated CPU devices.

Trains a config's smoke variant for a few steps on 1 device and on N
devices (the same global batch) and prints one JSON line: the largest
parameter difference relative to the parameters' scale, and both runs'
final train loss and eval metrics.

  python tests/parallel_check.py CONFIG WORKDIR NUM_DEVICES [OVERRIDE=VALUE ...]
"""

import importlib.util
import json
import pathlib
import sys

import jax
import numpy as np

from dvn_jax import builders
from dvn_jax import train

REPO = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def load_config(spec: str):
  """get_config(arg) of 'path/to/config.py[:arg]' (relative to the repo)."""
  path, _, arg = spec.partition(':')
  loader = importlib.util.spec_from_file_location('config', REPO / path)
  module = importlib.util.module_from_spec(loader)
  loader.loader.exec_module(module)
  return module.get_config(arg or None)


def set_field(config, dotted: str, value: str) -> None:
  *parents, leaf = dotted.split('.')
  for name in parents:
    config = config[name]
  config[leaf] = type(config[leaf])(value)


def train_on(config, num_devices: int, workdir: str):
  config = config.copy_and_resolve_references()
  config.num_devices = num_devices
  metrics = train.train_and_evaluate(config, workdir)
  params = train.eval_params(train.restore_state(builders.create_model(config),
                                                 config, workdir))
  lines = [json.loads(l) for l in
           (pathlib.Path(workdir) / 'metrics.jsonl').read_text().splitlines()]
  losses = [l['train/loss'] for l in lines if 'train/loss' in l]
  return metrics, jax.tree.leaves(jax.device_get(params)), losses


def main(config_spec: str, workdir: str, num_devices: str, *overrides: str):
  config = load_config(config_spec)
  for override in overrides:
    set_field(config, *override.split('=', 1))
  m1, p1, l1 = train_on(config, 1, f'{workdir}/one')
  mn, pn, ln = train_on(config, int(num_devices), f'{workdir}/many')
  diff = max(float(np.max(np.abs(a - b)) / (np.max(np.abs(a)) + 1e-12))
             for a, b in zip(p1, pn))
  print(json.dumps({'devices': jax.device_count(), 'param_rel_diff': diff,
                    'losses': [l1, ln],
                    'metrics': [{k: v for k, v in m.items()
                                 if k != 'eval_seconds'} for m in (m1, mn)]}))


if __name__ == '__main__':
  main(*sys.argv[1:])
