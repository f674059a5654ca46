"""Side-by-side val sweep, selection on val, fine-tune on train+val, test once.

Works for any config of the repository (horses, Bibtex, ...): --metric names
the val score that decides (mean_iou for segmentation, f1 for multi-label).

  python benchmarks/horses_sweep.py --root=/tmp/sweep \
      [--config=configs/horses.py] [--sweep=configs/horses_sweep.py] \
      [--steps=200000] [--eval_every=2000] [--deadline_s=600] \
      [--finetune_fraction=0.25] [--set=eval.batch_size=40] [--output=sweep.md]

Phase 1 trains every variant of the sweep file at once (one process each,
`python -m dvn_jax.main`, logs in <root>/<variant>.log) on the train split,
scoring val every --eval_every steps and keeping every such checkpoint. At
--deadline_s seconds the runs still going are interrupted (each saves a
checkpoint); run again with the same --root, and the sweep resumes every
variant from its latest checkpoint. Phase 2 takes the (variant, step) with
the best val mean IoU, fine-tunes that checkpoint on train+val for
--finetune_fraction × step more steps (the paper: "fine-tune on the
combination of training and validation sets"), scores test once and exports
the parameters to <root>/final.npz. Test is never looked at before the
choice is made.

With --finetune_which=all, phase 2 instead fine-tunes every variant's last
checkpoint on train+val (side by side), exports both versions of each to
<root>/<variant>_train.npz and <root>/<variant>_trainval.npz, and scores
nothing on test: the choice is left to a later val comparison made with
other test-time settings (e.g. ensembles of seeds, FCN starts), after
which only the chosen variant's train+val file may be scored on test.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import shutil
import signal
import subprocess
import sys
import time

from absl import app
from absl import flags

from dvn_jax import cli
from dvn_jax import files
from dvn_jax import sweeps

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

_ROOT = flags.DEFINE_string('root', None, 'Folder for all runs of the sweep.')
_CONFIG = flags.DEFINE_string('config', os.path.join(REPO, 'configs',
                                                     'horses.py'),
                              'Base config file.')
_SWEEP = flags.DEFINE_string(
    'sweep', os.path.join(REPO, 'configs', 'horses_sweep.py'),
    'Sweep file (path[:arg]) whose get_sweep(arg) names the variants.')
_STEPS = flags.DEFINE_integer('steps', None, 'Training steps of each variant '
                              '(default: the config\'s num_train_steps).')
_EVAL_EVERY = flags.DEFINE_integer('eval_every', 2000,
                                   'Steps between val scores (and kept '
                                   'checkpoints).')
_DEADLINE = flags.DEFINE_float('deadline_s', 0.0, 'Phase 1 wall-clock limit '
                               'in seconds (0: none).')
_FINETUNE = flags.DEFINE_float('finetune_fraction', 0.25,
                               'Fine-tuning steps on train+val, as a fraction '
                               'of the chosen step.')
_FINETUNE_DEADLINE = flags.DEFINE_float(
    'finetune_deadline_s', 0.0, 'Phase 2 wall-clock limit in seconds (0: '
    'none); an interrupted fine-tune is scored where it stopped.')
_FINETUNE_WHICH = flags.DEFINE_enum(
    'finetune_which', 'best', ['best', 'all'], 'best: fine-tune the (variant, '
    'step) best on val and score test; all: fine-tune every variant\'s last '
    'checkpoint, export train-only and train+val files, score no test.')
_SET = flags.DEFINE_multi_string('set', [], 'field=value override for every '
                                 'run (e.g. eval.batch_size=40).')
_ONLY = flags.DEFINE_list('only', [], 'Variants to run (default: all).')
_OUTPUT = flags.DEFINE_string('output', None, 'Markdown report to write.')
_METRIC = flags.DEFINE_string('metric', 'mean_iou', 'Val score to maximise '
                              '(mean_iou, f1, ...); higher is better.')
# The score reported next to the chosen one, where the task has it.
SECOND = {'mean_iou': 'global_iou'}
flags.mark_flags_as_required(['root'])


@dataclasses.dataclass
class RunResult:
  """What one variant's phase-1 run left behind."""
  name: str
  overrides: dict[str, object]
  evals: list[dict[str, float]]   # {'step', 'seconds', 'score', 'second'}
  steps_done: int
  steps_per_sec: float


def main_command(workdir: str, overrides: dict[str, object],
                 *extra: str) -> list[str]:
  return [sys.executable, '-m', 'dvn_jax.main', f'--config={_CONFIG.value}',
          f'--workdir={workdir}', *sweeps.config_args(overrides), *extra]


def launch(command: list[str], log_path: str) -> subprocess.Popen:
  log = open(log_path, 'w')  # the child keeps its own descriptor
  try:
    return subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT,
                            cwd=REPO)
  finally:
    log.close()


def wait_all(processes: dict[str, subprocess.Popen], deadline: float | None
             ) -> None:
  """Waits; past the deadline interrupts the rest (they save a checkpoint)."""
  while any(p.poll() is None for p in processes.values()):
    if deadline is not None and time.time() > deadline:
      for name, p in processes.items():
        if p.poll() is None:
          print(f'deadline: interrupting {name}', flush=True)
          p.send_signal(signal.SIGINT)
      for p in processes.values():
        try:
          p.wait(timeout=120)
        except subprocess.TimeoutExpired:
          p.kill()
      return
    time.sleep(2)


def read_metrics(workdir: str) -> list[dict[str, float]]:
  path = os.path.join(workdir, 'metrics.jsonl')
  if not os.path.exists(path):
    return []
  with open(path) as f:
    return [json.loads(line) for line in f if line.strip()]


def checkpoint_steps(workdir: str) -> set[int]:
  folder = os.path.join(workdir, 'checkpoints')
  if not os.path.isdir(folder):
    return set()
  return {int(n) for n in os.listdir(folder) if n.isdigit()}


def summarise(name: str, overrides: dict[str, object], workdir: str,
              started: float, metric: str, split: str = 'val') -> RunResult:
  records = read_metrics(workdir)
  second = f'{split}/{SECOND.get(metric, "")}'
  evals = [{'step': r['step'], 'seconds': r['wall_time'] - started,
            'score': r[f'{split}/{metric}'], 'second': r.get(second, math.nan)}
           for r in records if f'{split}/{metric}' in r]
  speeds = sorted(r['train/steps_per_sec'] for r in records
                  if 'train/steps_per_sec' in r)
  steps = max(checkpoint_steps(workdir) | {0})
  return RunResult(name, overrides, evals, steps,
                   speeds[len(speeds) // 2] if speeds else float('nan'))


def choose(results: list[RunResult], root: str) -> tuple[RunResult, dict]:
  """The (variant, eval) with the best val mean IoU whose checkpoint exists."""
  candidates = [(r, e) for r in results for e in r.evals
                if e['step'] in checkpoint_steps(os.path.join(root, r.name))]
  if not candidates:
    raise SystemExit('error: no variant left a scored checkpoint; see the logs '
                     f'in {root}')
  return max(candidates, key=lambda c: (c[1]['score'], -c[1]['step']))


def launch_finetune(root: str, source: str, name: str, step: int,
                    fraction: float, overrides: dict[str, object]
                    ) -> tuple[str, dict[str, object], subprocess.Popen]:
  """Copies <source>'s checkpoint `step` to <root>/<name> and resumes it on
  train+val for fraction × step more steps; returns (workdir, overrides,
  process)."""
  workdir = os.path.join(root, name)
  shutil.rmtree(workdir, ignore_errors=True)
  shutil.copytree(os.path.join(source, 'checkpoints', str(step)),
                  os.path.join(workdir, 'checkpoints', str(step)))
  total = step + max(1, round(fraction * step))
  overrides = {**overrides, 'data.train_split': 'trainval',
               'num_train_steps': total, 'eval_every_steps': 10**9}
  process = launch(main_command(workdir, overrides),
                   os.path.join(root, f'{name}.log'))
  return workdir, overrides, process


def run_main(workdir: str, overrides: dict[str, object], *extra: str) -> None:
  """One `dvn_jax.main` call (evaluate, export) that must succeed."""
  run = subprocess.run(main_command(workdir, overrides, *extra),
                       capture_output=True, text=True, cwd=REPO)
  if run.returncode:
    raise SystemExit(f'error: {" ".join(extra)} of {workdir} failed: '
                     f'{run.stderr[-500:]}')


def finetune(root: str, best: RunResult, step: int, fraction: float,
             common: dict[str, object], deadline_s: float,
             metric: str) -> dict[str, float]:
  """Phase 2: fine-tune on train+val, score test, export; returns numbers."""
  start = time.time()
  workdir, overrides, process = launch_finetune(
      root, os.path.join(root, best.name), 'final', step, fraction,
      {**common, **best.overrides})
  wait_all({'fine-tuning': process},
           start + deadline_s if deadline_s > 0 else None)
  seconds = time.time() - start
  done = max(checkpoint_steps(workdir))
  if process.returncode and done == step:
    raise SystemExit(f'error: fine-tuning failed; see {root}/final.log')
  run_main(workdir, overrides, '--mode=evaluate', '--split=test')
  run_main(workdir, overrides, '--mode=export',
           f'--params={os.path.join(root, "final.npz")}')
  with open(os.path.join(workdir, 'eval_test.json')) as f:
    test = json.load(f)
  return {'finetune_steps': done - step, 'finetune_seconds': seconds,
          'test_score': test[metric],
          'test_second': test.get(SECOND.get(metric, ''), math.nan)}


def finetune_all(root: str, results: list[RunResult], fraction: float,
                 common: dict[str, object], deadline_s: float
                 ) -> tuple[dict[str, dict[str, int]], float]:
  """Phase 2 of --finetune_which=all: every variant's last checkpoint
  fine-tuned on train+val side by side; both versions exported; no test.
  Returns ({variant: {'step', 'finetune_steps'}}, wall seconds)."""
  start = time.time()
  runs = {}
  for r in results:
    if not r.steps_done:
      print(f'{r.name}: no checkpoint; skipped', flush=True)
      continue
    runs[r.name] = (r.steps_done, *launch_finetune(
        root, os.path.join(root, r.name), f'{r.name}_tv', r.steps_done,
        fraction, {**common, **r.overrides}))
  if not runs:
    raise SystemExit(f'error: no variant left a checkpoint; see the logs in '
                     f'{root}')
  wait_all({name: run[3] for name, run in runs.items()},
           start + deadline_s if deadline_s > 0 else None)
  seconds = time.time() - start
  done, exports = {}, {}
  for r in results:
    if r.name not in runs:
      continue
    step, workdir, overrides, _ = runs[r.name]
    reached = max(checkpoint_steps(workdir))
    exports[f'{r.name}_train'] = main_command(
        os.path.join(root, r.name), {**common, **r.overrides},
        '--mode=export', f'--params={root}/{r.name}_train.npz')
    if reached > step:
      exports[f'{r.name}_trainval'] = main_command(
          workdir, overrides, '--mode=export',
          f'--params={root}/{r.name}_trainval.npz')
    done[r.name] = {'step': step, 'finetune_steps': reached - step}
  processes = {name: launch(command, os.path.join(root, f'{name}_export.log'))
               for name, command in exports.items()}
  wait_all(processes, None)
  failed = sorted(n for n, p in processes.items() if p.returncode)
  if failed:
    raise SystemExit(f'error: export failed for {failed}; see '
                     f'{root}/<name>_export.log')
  return done, seconds


def when(seconds: float) -> str:
  """Seconds since the sweep started; scores from an earlier, resumed sweep
  in the same --root are marked as such."""
  return f'{seconds:.0f} s' if seconds >= 0 else 'earlier sweep'


def score_text(e: dict[str, float]) -> str:
  """'80.6 / 79.6' (score / second score) or '42.4' where there is one."""
  return (f'{e["score"]:.1f}' if math.isnan(e['second']) else
          f'{e["score"]:.1f} / {e["second"]:.1f}')


def metric_names(metric: str) -> str:
  """'mean_iou / global_iou' where the metric has a second score."""
  return metric + ('' if metric not in SECOND else f' / {SECOND[metric]}')


def report(results: list[RunResult], machine_line: str, metric: str) -> str:
  """The phase-1 table: one row per variant with its val curve."""
  names = metric_names(metric)
  lines = [f'{machine_line}; {len(results)} runs side by side.', '',
           f'| variant | overrides | steps | steps/s | best val {names} '
           f'(step) | val {metric} by step (seconds since start) |',
           '| --- | --- | --- | --- | --- | --- |']
  for r in results:
    top = max(r.evals, key=lambda e: e['score'], default=None)
    best_text = f'{score_text(top)} ({top["step"]})' if top else '-'
    curve = ', '.join(f'{e["step"]} ({when(e["seconds"])}): {e["score"]:.1f}'
                      for e in r.evals)
    overrides = ', '.join(f'{k}={v}' for k, v in r.overrides.items()) or '-'
    lines.append(f'| {r.name} | {overrides} | {r.steps_done} | '
                 f'{r.steps_per_sec:.1f} | {best_text} | {curve} |')
  return '\n'.join(lines) + '\n'


def chosen_text(best: RunResult, best_eval: dict, final: dict[str, float],
                metric: str) -> str:
  names = metric_names(metric)
  test = {'score': final['test_score'], 'second': final['test_second']}
  return (f'\nChosen on val: **{best.name}** at step {best_eval["step"]} '
          f'(val {names} {score_text(best_eval)}); fine-tuned on train+val '
          f'for {final["finetune_steps"]} steps ({final["finetune_seconds"]:.0f}'
          f' s, start-up included): **test {names} {score_text(test)}**.\n')


def finetuned_text(done: dict[str, dict[str, int]], seconds: float) -> str:
  rows = ', '.join(f'{name} {d["step"]} + {d["finetune_steps"]}'
                   for name, d in done.items())
  return (f'\nEvery variant fine-tuned on train+val side by side '
          f'({seconds:.0f} s, start-up included; steps on train + on '
          f'train+val: {rows}); exported as <variant>_train.npz and '
          '<variant>_trainval.npz. No choice made and no test scored.\n')


def main(argv):
  del argv
  os.environ.setdefault('XLA_PYTHON_CLIENT_PREALLOCATE', 'false')
  with cli.reporting_errors():   # refusals before anything is written
    files.check_output_dir(_ROOT.value, '--root')
    if _OUTPUT.value:
      files.check_output_file(_OUTPUT.value, '--output')
    sweep = sweeps.load_sweep(_SWEEP.value)
    common = sweeps.parse_sets(_SET.value)
  unknown = sorted(set(_ONLY.value) - set(sweep))
  if unknown:
    cli.fail(f'--only names unknown variants {unknown}; the sweep has '
             f'{sorted(sweep)}')
  if _ONLY.value:
    sweep = {k: v for k, v in sweep.items() if k in _ONLY.value}
  root = os.path.abspath(_ROOT.value)
  os.makedirs(root, exist_ok=True)
  phase1 = {'data.train_split': 'train', 'data.eval_split': 'val',
            'eval_every_steps': _EVAL_EVERY.value,
            'checkpoint_every_steps': _EVAL_EVERY.value,
            'max_checkpoints_to_keep': 10**6}
  if _STEPS.value:
    phase1['num_train_steps'] = _STEPS.value
  started = time.time()
  processes = {}
  for name, overrides in sweep.items():
    workdir = os.path.join(root, name)
    processes[name] = launch(
        main_command(workdir, {**common, **overrides, **phase1}),
        os.path.join(root, f'{name}.log'))
  deadline = started + _DEADLINE.value if _DEADLINE.value > 0 else None
  wait_all(processes, deadline)
  results = [summarise(name, overrides, os.path.join(root, name), started,
                       _METRIC.value) for name, overrides in sweep.items()]
  with open(os.path.join(root, 'phase1.json'), 'w') as f:
    json.dump([dataclasses.asdict(r) for r in results], f, indent=1)
  import machine  # pylint: disable=g-import-not-at-top  (imports jax)
  text = report(results, machine.describe(), _METRIC.value)
  if _FINETUNE_WHICH.value == 'all':
    done, seconds = finetune_all(root, results, _FINETUNE.value, common,
                                 _FINETUNE_DEADLINE.value)
    text += finetuned_text(done, seconds)
  else:
    best, best_eval = choose(results, root)
    print(f'chosen on val: {best.name} at step {best_eval["step"]} '
          f'(val {_METRIC.value} {best_eval["score"]:.2f})', flush=True)
    final = finetune(root, best, int(best_eval['step']), _FINETUNE.value,
                     common, _FINETUNE_DEADLINE.value, _METRIC.value)
    text += chosen_text(best, best_eval, final, _METRIC.value)
  print(text)
  if _OUTPUT.value:
    with files.atomic_write(_OUTPUT.value, 'w') as f:
      f.write(text)


if __name__ == '__main__':
  app.run(main, flags_parser=cli.make_flags_parser())
