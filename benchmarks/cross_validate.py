"""A config's val score with its noise: k-fold cross-validation, seeds, or both.

  python benchmarks/cross_validate.py --config=configs/horses.py:quick \
      --folds=5 --seeds=0 --root=/tmp/cv [--set=num_train_steps=2000] \
      [--metric=mean_iou] [--output=cv.json] [--against=base.json]

Runs `python -m dvn_jax.main` once per (fold, seed), one after another, each
in <root>/fold<f>_seed<s> (logs beside it). With --folds K >= 2, run f
trains on train+val less fold f and scores fold f (data.cv_folds,
data.cv_fold: dvn_jax/datasets/kfold.py), so the K runs score every
train+val example once; with --folds=0 every run uses the config's own
split and only the seed changes. A run already finished in <root> (its
<run>/cross_validate_seconds.txt written) is read, not rerun; an
interrupted one resumes from its checkpoint.

Prints, for every step at which all runs were scored, the mean of --metric
over the runs, its standard deviation and the half-width of its 95%
confidence interval (Student's t); the last line is
`<metric> <mean> +- <half-width> (95% CI, n runs, step N, <hours> h)`, the
hours being the runs' wall-clock time, one run at a time (each run's own,
however many invocations it took). --output writes the same as JSON.

--against=<an earlier --output> compares paired runs: for each run name
both reports hold (the same fold and seed), the difference of this run's
score from that one's, and the mean of those differences with its 95% CI;
the fold's difficulty cancels in each difference, so a paired CI is the
width a variant-against-baseline decision has. The last line is then
`paired delta <metric> <mean> +- <half-width> (95% CI, n pairs, step N)`.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import numpy as np
import scipy.stats
from absl import app
from absl import flags
from absl import logging

from dvn_jax import cli
from dvn_jax import errors
from dvn_jax import files
from dvn_jax import sweeps

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

def define_flags() -> None:
  """The command's flags, defined only when it runs (tests import the
  module beside others that define --config)."""
  flags.DEFINE_string('config', None, 'Config file[:options].')
  flags.DEFINE_string('root', None, 'Folder for the runs.')
  flags.DEFINE_integer('folds', 5, 'K of k-fold cross-validation over '
                       'train+val (0: the config\'s own split).')
  flags.DEFINE_list('seeds', ['0'], 'Seeds of each fold.')
  flags.DEFINE_multi_string('set', [], 'field=value override of every run '
                            '(e.g. num_train_steps=2000).')
  flags.DEFINE_string('metric', 'mean_iou', 'The val score.')
  flags.DEFINE_string('output', None, 'JSON report to write.')
  flags.DEFINE_string('against', None, 'An earlier --output report (the '
                      'baseline): print the paired differences from it.')
  flags.mark_flags_as_required(['config', 'root'])


def run_overrides(fold: int | None, folds: int, seed: int
                  ) -> sweeps.Overrides:
  """The config fields one run sets."""
  overrides = {'seed': seed}
  if fold is not None:
    overrides.update({'data.cv_folds': folds, 'data.cv_fold': fold,
                      'data.train_split': 'fold_train',
                      'data.eval_split': 'fold_val'})
  return overrides


def run_name(fold: int | None, seed: int) -> str:
  """The run's folder name under --root (and its key in the report)."""
  return f'fold{fold}_seed{seed}' if fold is not None else f'seed{seed}'


def val_scores(workdir: str, metric: str) -> dict[int, float]:
  """{step: score} of the run's eval split (its config.json) in its
  metrics.jsonl (empty if none)."""
  path = os.path.join(workdir, 'metrics.jsonl')
  if not os.path.exists(path):
    return {}
  with open(os.path.join(workdir, 'config.json')) as f:
    key = json.load(f)['data']['eval_split'] + '/' + metric
  scores = {}
  with open(path) as f:
    for line in f:
      record = json.loads(line)
      if key in record:
        scores[record['step']] = record[key]
  return scores


def interval(values: list[float]) -> dict[str, float]:
  """Mean, standard deviation and 95% CI half-width (Student's t)."""
  n = len(values)
  mean = float(np.mean(values))
  std = float(np.std(values, ddof=1)) if n > 1 else float('nan')
  half = (float(scipy.stats.t.ppf(0.975, n - 1) * std / np.sqrt(n))
          if n > 1 else float('nan'))
  return {'mean': mean, 'std': std, 'half_width': half, 'n': n}


def summarise(runs: dict[str, dict[int, float]]) -> dict[int, dict]:
  """The interval of each step that every run scored."""
  common = set.intersection(*(set(scores) for scores in runs.values()))
  return {step: interval([runs[name][step] for name in sorted(runs)])
          for step in sorted(common)}


def read_report(path: str, folds: int, metric: str
                ) -> dict[str, dict[int, float]]:
  """The {run: {step: score}} of an earlier --output report, refused if it
  scored another metric or split train+val into other folds (fold f of K
  is not fold f of another K)."""
  try:
    with open(path) as f:
      report = json.load(f)
    runs = {name: {int(step): float(score) for step, score in scores.items()}
            for name, scores in report['runs'].items()}
    theirs = (int(report['folds']), report['metric'])
  except (OSError, ValueError, KeyError, TypeError, AttributeError) as e:
    raise errors.DvnError(f'--against {path} is not a cross_validate '
                          f'report ({type(e).__name__}: {e})') from None
  if theirs != (folds, metric):
    raise errors.DvnError(
        f'--against {path} has --folds={theirs[0]} --metric={theirs[1]}; '
        f'these runs have --folds={folds} --metric={metric}: pair runs of the '
        'same folds and metric')
  return runs


def paired(runs: dict[str, dict[int, float]],
           baseline: dict[str, dict[int, float]]) -> dict[int, dict]:
  """The interval of run-by-run differences (runs - baseline) at each step
  that every shared run scored in both."""
  differences = {n: {step: runs[n][step] - baseline[n][step]
                     for step in set(runs[n]) & set(baseline[n])}
                 for n in set(runs) & set(baseline)}
  if not differences:
    return {}
  return {step: {**s, 'deltas': {n: differences[n][step]
                                 for n in sorted(differences)}}
          for step, s in summarise(differences).items()}


def main(argv):
  if len(argv) > 1:
    cli.fail(f'unexpected arguments: {" ".join(argv[1:])}')
  args = flags.FLAGS
  folds = args.folds
  if folds == 1 or folds < 0:
    cli.fail(f'--folds must be 0 (the config\'s split) or >= 2, got {folds}')
  try:
    seeds = [int(s) for s in args.seeds]
  except ValueError:
    cli.fail(f'--seeds must be whole numbers, got {args.seeds}')
  if not seeds:
    cli.fail('--seeds names no seed (e.g. --seeds=0,1,2)')
  root = os.path.abspath(args.root)
  path, colon, options = args.config.partition(':')
  config = os.path.abspath(path) + colon + options   # runs start in REPO
  with cli.reporting_errors():
    files.check_output_dir(root, '--root')
    sets = sweeps.parse_sets(args.set)
    if args.output:
      files.check_output_file(args.output, '--output')
    baseline = (read_report(args.against, folds, args.metric)
                if args.against else None)
  plan = [(fold, seed) for fold in (range(folds) if folds else [None])
          for seed in seeds]
  if baseline is not None:   # refused now, not after hours of runs
    shared = {run_name(fold, seed) for fold, seed in plan} & set(baseline)
    if len(shared) < 2:
      cli.fail(f'--against {args.against} holds {len(shared)} of these runs '
               '(same --folds and --seeds?); a paired interval needs 2 or '
               'more')
  os.makedirs(root, exist_ok=True)
  runs, seconds, start = {}, 0.0, time.time()
  for i, (fold, seed) in enumerate(plan):
    name = run_name(fold, seed)
    workdir = os.path.join(root, name)
    timing = os.path.join(workdir, 'cross_validate_seconds.txt')
    begun = time.time()
    if not os.path.exists(timing):
      with open(workdir + '.log', 'a') as log:
        result = subprocess.run(
            [sys.executable, '-m', 'dvn_jax.main', f'--config={config}',
             f'--workdir={workdir}',
             *sweeps.config_args({**run_overrides(fold, folds, seed),
                                  **sets})],
            cwd=REPO, stdout=log, stderr=subprocess.STDOUT)
      if result.returncode:
        cli.fail(f'run {name} failed (exit {result.returncode}); its log: '
                 f'{workdir}.log', status=1)
      with open(timing, 'w') as f:
        f.write(f'{time.time() - begun:.1f}\n')
    with open(timing) as f:
      run_seconds = float(f.read())
    seconds += run_seconds
    runs[name] = val_scores(workdir, args.metric)
    if not runs[name]:
      cli.fail(f'run {name} logged no val/{args.metric}; pass --metric '
               f'(see {workdir}/metrics.jsonl)', status=1)
    last = max(runs[name])
    left = (time.time() - start) / (i + 1) * (len(plan) - i - 1)
    print(f'[{i + 1}/{len(plan)}] {name}: val {args.metric} '
          f'{runs[name][last]:.2f} at step {last} ({run_seconds:.0f} '
          f's; ETA {left / 60:.0f} min)', flush=True)
  summary = summarise(runs)
  if not summary:
    cli.fail('the runs share no scored step (were they trained with '
             'different --set values?); see ' + root, status=1)
  for step, s in summary.items():
    print(f'step {step}: {s["mean"]:.2f} +- {s["half_width"]:.2f} (std '
          f'{s["std"]:.2f}, n {s["n"]})')
  deltas = paired(runs, baseline) if baseline is not None else None
  if baseline is not None and not deltas:
    logging.warning('--against %s shares no scored step with these runs '
                    '(trained to other steps?): no paired delta', args.against)
  if args.output:
    with files.atomic_write(args.output, 'w') as f:
      json.dump({'config': args.config, 'folds': folds, 'seeds': seeds,
                 'set': args.set, 'metric': args.metric, 'runs': runs,
                 'summary': summary, 'run_seconds': seconds,
                 **({'against': args.against, 'paired': deltas}
                    if deltas else {})}, f, indent=2)
  step = max(summary)
  s = summary[step]
  print(f'{args.metric} {s["mean"]:.2f} +- {s["half_width"]:.2f} (95% CI, '
        f'{s["n"]} runs, step {step}, {seconds / 3600:.2f} h)')
  if deltas:
    for step, d in deltas.items():
      each = ', '.join(f'{n} {v:+.2f}' for n, v in d['deltas'].items())
      print(f'paired delta at step {step}: {each}')
    step = max(deltas)
    d = deltas[step]
    print(f'paired delta {args.metric} {d["mean"]:+.2f} +- '
          f'{d["half_width"]:.2f} (95% CI, {d["n"]} pairs, step {step})')


if __name__ == '__main__':
  define_flags()
  app.run(main)
