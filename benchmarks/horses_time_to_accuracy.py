"""Time to accuracy on Weizmann horses: val and test IoU vs steps and time.

  python benchmarks/horses_time_to_accuracy.py --workdir=/tmp/tta \
      [--config=configs/horses.py] [--every=1000] [--members=1] \
      [--output=tta.md]

Trains the config (resuming in --workdir) in chunks of --every steps up to
config.num_train_steps; after each chunk it scores the checkpoint on val and
test with the config's test-time inference and appends a row: step, training
wall-clock seconds so far (start-up, compilation and checkpointing included,
scoring excluded), val and test mean/global IoU. The hyperparameters must
already be fixed (chosen on val); the test column only reports.

With --members=N it trains N networks, one after another chunk by chunk
(seeds config.seed + k, in <workdir>/member_k), and scores their ensemble
(each infers, the soft masks are averaged); the time is the sum of all
members' training.
"""

from __future__ import annotations

import json
import os
import time

import machine
from absl import app
from absl import flags
from ml_collections import config_flags

from dvn_jax import cli
from dvn_jax import train

_CONFIG = config_flags.DEFINE_config_file(
    'config', os.path.join(os.path.dirname(__file__), '..', 'configs',
                           'horses.py'), 'Config to time.', lock_config=True)
_WORKDIR = flags.DEFINE_string('workdir', None, 'Run folder (resumable).')
_EVERY = flags.DEFINE_integer('every', 1000, 'Steps between measurements.')
_MEMBERS = flags.DEFINE_integer(
    'members', 1, 'Networks trained (seeds config.seed + k) and scored as '
    'one ensemble; the time is their sum.', lower_bound=1)
_OUTPUT = flags.DEFINE_string('output', None, 'Markdown file to write.')
flags.mark_flags_as_required(['workdir'])

HEADER = ('| step | training time (s) | val mean IoU | val global IoU | '
          'test mean IoU | test global IoU |\n| --- | --- | --- | --- | --- | --- |')


def member_workdirs(workdir: str, members: int) -> list[str]:
  """One network trains in `workdir`; an ensemble's k-th in member_k."""
  if members == 1:
    return [workdir]
  return [os.path.join(workdir, f'member_{k}') for k in range(members)]


def chunk_config(base, target: int, member: int = 0):
  """The config that trains member `member` up to step `target`, unscored."""
  config = base.copy_and_resolve_references()
  with config.unlocked():
    config.seed = base.seed + member
    config.num_train_steps = target
    config.eval_every_steps = 10**9   # scoring is done below, untimed
  return config


def score(base, workdirs: list[str], metrics: dict[str, float]
          ) -> dict[str, dict[str, float]]:
  """Val and test scores of the latest checkpoint(s). A single network's
  loop already scored its eval split at the end of the chunk (`metrics`);
  an ensemble's members are restored once for both splits."""
  splits = ('val', 'test')
  if len(workdirs) > 1:
    return train.evaluate_ensemble(base, workdirs, splits)
  return {split: (metrics if split == base.data.eval_split and
                  'mean_iou' in metrics else
                  train.evaluate_checkpoint(base, workdirs[0], split))
          for split in splits}


def run(base, workdir: str, every: int, members: int = 1
        ) -> list[dict[str, float]]:
  """Trains chunk by chunk; returns one record per measurement."""
  workdirs = member_workdirs(workdir, members)
  os.makedirs(workdir, exist_ok=True)
  log_path = os.path.join(workdir, 'time_to_accuracy.jsonl')
  records = []
  if os.path.exists(log_path):  # resume the record too
    with open(log_path) as f:
      records = [json.loads(line) for line in f]
  elapsed = records[-1]['seconds'] if records else 0.0
  done = int(records[-1]['step']) if records else 0
  for target in range(done + every, base.num_train_steps + every, every):
    target = min(target, base.num_train_steps)
    for member, member_dir in enumerate(workdirs):
      start = time.perf_counter()
      # An ensemble's members are scored together below, not one by one.
      metrics = train.train_and_evaluate(
          chunk_config(base, target, member), member_dir,
          evaluate_last=members == 1)
      elapsed += (time.perf_counter() - start -
                  metrics.get('eval_seconds', 0.0))
    record = {'step': target, 'seconds': elapsed}
    for split, scores in score(chunk_config(base, target), workdirs,
                               metrics).items():
      record[f'{split}_mean_iou'] = scores['mean_iou']
      record[f'{split}_global_iou'] = scores['global_iou']
    records.append(record)
    with open(log_path, 'a') as f:
      f.write(json.dumps(record) + '\n')
    print(json.dumps(record), flush=True)
  return records


def table(records: list[dict[str, float]]) -> str:
  rows = [f'| {r["step"]} | {r["seconds"]:.0f} | {r["val_mean_iou"]:.1f} | '
          f'{r["val_global_iou"]:.1f} | {r["test_mean_iou"]:.1f} | '
          f'{r["test_global_iou"]:.1f} |' for r in records]
  return '\n'.join([HEADER] + rows) + '\n'


def main(argv):
  del argv
  cli.quiet_library_logs()
  with cli.reporting_errors():
    records = run(_CONFIG.value, _WORKDIR.value, _EVERY.value,
                  _MEMBERS.value)
  ensemble = (f'; an ensemble of {_MEMBERS.value} networks (seeds from '
              f'{_CONFIG.value.seed}), step = each one\'s, time = their sum'
              if _MEMBERS.value > 1 else '')
  machine.print_and_save(
      table(records), _OUTPUT.value,
      f'{machine.describe()}; training on {_CONFIG.value.data.train_split}'
      f'{ensemble}.')


if __name__ == '__main__':
  app.run(main, flags_parser=cli.make_flags_parser(_CONFIG))
