"""Time to accuracy on Weizmann horses: val and test IoU vs steps and time.

  python benchmarks/horses_time_to_accuracy.py --workdir=/tmp/tta \
      [--config=configs/horses.py] [--every=1000] [--members=1] \
      [--output=tta.md] [--fcn_config=configs/horses_fcn.py:ema \
       --config.eval.fcn.start_scale=0.1 --config.eval.fcn.prior_weight=2.35e-4]

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

With --fcn_config it first trains that FCN on the value net's training
split (in <workdir>/fcn, exported to <workdir>/fcn.npz), scores it alone on
val and test (the first row), and uses it at test time as
config.eval.fcn.params (the value net's config sets the start scale and
the prior weight: dvn_jax/hybrid.py); its training time starts the clock.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable

import machine
from absl import app
from absl import flags
from ml_collections import config_flags

from dvn_jax import cli
from dvn_jax import errors
from dvn_jax import files
from dvn_jax import train

_CONFIG = config_flags.DEFINE_config_file(
    'config', os.path.join(os.path.dirname(__file__), '..', 'configs',
                           'horses.py'), 'Config to time.', lock_config=True)
_WORKDIR = flags.DEFINE_string('workdir', None, 'Run folder (resumable).')
_EVERY = flags.DEFINE_integer('every', 1000, 'Steps between measurements.',
                             lower_bound=1)
_MEMBERS = flags.DEFINE_integer(
    'members', 1, 'Networks trained (seeds config.seed + k) and scored as '
    'one ensemble; the time is their sum.', lower_bound=1)
_OUTPUT = flags.DEFINE_string('output', None, 'Markdown file to write.')
_FCN_CONFIG = config_flags.DEFINE_config_file(
    'fcn_config', None, 'An FCN config (configs/horses_fcn.py:ema) to train '
    'first, on the same split, for the test-time start and mask mix '
    '(config.eval.fcn); its time counts.', lock_config=True)
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


def scored_record(step: int | str, seconds: float,
                  scores: dict[str, dict[str, float]]) -> dict[str, object]:
  """One row: the step, training seconds so far, each split's IoUs."""
  record = {'step': step, 'seconds': seconds}
  for split, split_scores in scores.items():
    record[f'{split}_mean_iou'] = split_scores['mean_iou']
    record[f'{split}_global_iou'] = split_scores['global_iou']
  return record


def append_record(log_path: str, record: dict[str, object]) -> None:
  """Appends `record` to the resumable log and prints it."""
  with open(log_path, 'a') as f:
    f.write(json.dumps(record) + '\n')
  print(json.dumps(record), flush=True)


def with_fcn(base, fcn_path: str):
  """`base` scoring with the FCN file `fcn_path` (config.eval.fcn.params);
  ConfigError if the config would not use it or already names another."""
  fcn = base.eval.fcn
  if fcn.params:
    raise errors.ConfigError(f'--fcn_config trains the FCN; drop '
                             f'--config.eval.fcn.params={fcn.params}')
  if fcn.start_scale <= 0 and fcn.prior_weight <= 0:
    raise errors.ConfigError(
        '--fcn_config needs --config.eval.fcn.start_scale or prior_weight '
        '> 0, or the FCN is unused')
  config = base.copy_and_resolve_references()
  with config.unlocked():
    config.eval.fcn.params = fcn_path
  return config


def train_fcn(fcn_base, train_split: str, workdir: str
              ) -> dict[str, float | str]:
  """Trains the FCN on `train_split` in <workdir>/fcn, exports it to
  <workdir>/fcn.npz; its record: training seconds (scoring excluded), val
  and test scores alone."""
  fcn_dir = os.path.join(workdir, 'fcn')
  config = fcn_base.copy_and_resolve_references()
  with config.unlocked():
    config.data.train_split = train_split
    config.eval_every_steps = 10**9
  start = time.perf_counter()
  metrics = train.train_and_evaluate(config, fcn_dir, evaluate_last=False)
  seconds = time.perf_counter() - start - metrics.get('eval_seconds', 0.0)
  train.export_params(config, fcn_dir, os.path.join(workdir, 'fcn.npz'))
  return scored_record(f'FCN {config.num_train_steps}', seconds,
                       score(config, [fcn_dir], {}))


def check_resumable(records: list[dict[str, object]], workdir: str,
                    fcn: bool) -> None:
  """ConfigError unless a resumed log (`records`, non-empty) was started
  the same way: with an FCN row first and <workdir>/fcn.npz iff `fcn`."""
  if not records:
    return
  started_with_fcn = str(records[0]['step']).startswith('FCN')
  if started_with_fcn and not fcn:
    raise errors.ConfigError(
        f'{workdir} was started with --fcn_config: pass it again to resume, '
        'or use a new --workdir')
  if fcn and not started_with_fcn:
    raise errors.ConfigError(
        f'{workdir} was started without --fcn_config: drop it to resume, or '
        'use a new --workdir')
  if fcn and not os.path.exists(os.path.join(workdir, 'fcn.npz')):
    raise errors.ConfigError(
        f'{workdir}/fcn.npz is missing: the FCN this run was scored with is '
        'gone; use a new --workdir')


def run(base, workdir: str, every: int, members: int = 1, fcn_base=None
        ) -> list[dict[str, float]]:
  """Trains chunk by chunk (after the FCN of `fcn_base`, if given); returns
  one record per measurement."""
  workdirs = member_workdirs(workdir, members)
  files.check_output_dir(workdir, '--workdir')
  with files.created_for_run(workdir) as keep:
    return _run_in(base, workdir, every, workdirs, fcn_base, keep)


def _run_in(base, workdir: str, every: int, workdirs: list[str], fcn_base,
            keep_workdir: Callable[[], None]) -> list[dict[str, float]]:
  """`run` in an existing workdir; calls `keep_workdir()` once a record is
  written."""
  log_path = os.path.join(workdir, 'time_to_accuracy.jsonl')
  records = []
  if os.path.exists(log_path):  # resume the record too
    with open(log_path) as f:
      records = [json.loads(line) for line in f]
  check_resumable(records, workdir, fcn_base is not None)
  if fcn_base is not None:
    base = with_fcn(base, os.path.join(workdir, 'fcn.npz'))
    if not records:
      records.append(train_fcn(fcn_base, base.data.train_split, workdir))
      append_record(log_path, records[-1])
      keep_workdir()
  elapsed = records[-1]['seconds'] if records else 0.0
  steps = [r['step'] for r in records if isinstance(r['step'], int)]
  done = steps[-1] if steps else 0   # the FCN's record has no value-net step
  for target in range(done + every, base.num_train_steps + every, every):
    target = min(target, base.num_train_steps)
    for member, member_dir in enumerate(workdirs):
      start = time.perf_counter()
      # An ensemble's members are scored together below, not one by one.
      metrics = train.train_and_evaluate(
          chunk_config(base, target, member), member_dir,
          evaluate_last=len(workdirs) == 1)
      elapsed += (time.perf_counter() - start -
                  metrics.get('eval_seconds', 0.0))
    records.append(scored_record(
        target, elapsed, score(chunk_config(base, target), workdirs, metrics)))
    append_record(log_path, records[-1])
    keep_workdir()
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
    machine.check_output(_OUTPUT.value)
    records = run(_CONFIG.value, _WORKDIR.value, _EVERY.value,
                  _MEMBERS.value, _FCN_CONFIG.value)
  ensemble = (f'; an ensemble of {_MEMBERS.value} networks (seeds from '
              f'{_CONFIG.value.seed}), step = each one\'s, time = their sum'
              if _MEMBERS.value > 1 else '')
  fcn = (f'; first an FCN ({_FCN_CONFIG.value.num_train_steps} steps, its '
         f'time counted), its mask at test time: start scale '
         f'{_CONFIG.value.eval.fcn.start_scale}, prior weight '
         f'{_CONFIG.value.eval.fcn.prior_weight}'
         if _FCN_CONFIG.value is not None else '')
  machine.print_and_save(
      table(records), _OUTPUT.value,
      f'{machine.describe()}; training on {_CONFIG.value.data.train_split}'
      f'{ensemble}{fcn}.')


if __name__ == '__main__':
  app.run(main, flags_parser=cli.make_flags_parser(_CONFIG, _FCN_CONFIG))
