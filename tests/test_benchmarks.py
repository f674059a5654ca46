"""The benchmark scripts still run (on the smoke config; numbers not checked)."""

import json
import os
import pathlib
import re

import subprocess_runs
from subprocess_runs import REPO

HORSES_SMOKE = f'--config={REPO / "configs" / "horses.py"}:smoke'


def run_python(*args: object, timeout: float = 600):
  return subprocess_runs.run_python(*args, timeout=timeout)


def benchmark(script: str) -> pathlib.Path:
  return REPO / 'benchmarks' / script


def test_ablation_script_writes_the_table(tmp_path):
  output = tmp_path / 'ablation.md'
  result = run_python(benchmark('horses_ablation.py'), HORSES_SMOKE,
                      f'--root={tmp_path / "runs"}', f'--output={output}',
                      '--num_test_images=2', timeout=1800)
  # (it ran past 600 s on a 2-core AVX2 CPU shared with another job, 2026-12-01)
  assert result.returncode == 0, result.stderr[-2000:]
  table = output.read_text()
  assert table.count('\n|') == 2 + 3 + 8   # header, 3 tuple mixes, 8 crop rows
  assert '| inference + adversarial (average, 4 crops) | 81.6 |' in table
  assert 'mask averaging non-binary (25 crops) | 69.6 |' in table
  for name in ('inference+ground_truth', 'inference+stratified',
               'inference+adversarial'):
    assert (tmp_path / 'runs' / name / 'checkpoints').is_dir()


def test_time_to_accuracy_script_resumes_and_writes_rows(tmp_path):
  output = tmp_path / 'tta.md'
  for _ in range(2):  # the second run finds everything done and resumes
    result = run_python(benchmark('horses_time_to_accuracy.py'), HORSES_SMOKE,
                        f'--workdir={tmp_path / "run"}', '--every=3',
                        f'--output={output}')
    assert result.returncode == 0, result.stderr[-2000:]
  rows = [line for line in output.read_text().splitlines()
          if line.startswith('| 3 ') or line.startswith('| 6 ')]
  assert len(rows) == 2
  # Time grows from row to row: checked on the unrounded record, since the
  # table prints whole seconds and a fast CPU's 3 smoke steps take < 0.5 s.
  with open(tmp_path / 'run' / 'time_to_accuracy.jsonl') as f:
    seconds = [json.loads(line)['seconds'] for line in f]
  assert len(seconds) == 2 and 0 < seconds[0] < seconds[1]
  assert [row.split('|')[2].strip() for row in rows] == [
      f'{s:.0f}' for s in seconds]
  # val comes from the train loop's own end-of-run score, not a rescoring.
  assert (tmp_path / 'run' / 'eval_test.json').exists()
  assert not (tmp_path / 'run' / 'eval_val.json').exists()


def test_time_to_accuracy_script_times_an_ensemble(tmp_path):
  output = tmp_path / 'tta.md'
  result = run_python(benchmark('horses_time_to_accuracy.py'), HORSES_SMOKE,
                      f'--workdir={tmp_path / "run"}', '--every=6',
                      '--members=2', f'--output={output}')
  assert result.returncode == 0, result.stderr[-2000:]
  text = output.read_text()
  assert 'an ensemble of 2 networks' in text
  assert len([l for l in text.splitlines() if l.startswith('| 6 ')]) == 1
  # Two networks with their own seeds, each trained to the step.
  seeds = [json.loads((tmp_path / 'run' / f'member_{k}' /
                       'config.json').read_text())['seed'] for k in (0, 1)]
  assert seeds[1] == seeds[0] + 1
  for k in (0, 1):
    assert sorted(os.listdir(
        tmp_path / 'run' / f'member_{k}' / 'checkpoints')) == ['3', '6']
    # Scored only as an ensemble: no member scores val on its own.
    member_metrics = (tmp_path / 'run' / f'member_{k}' /
                      'metrics.jsonl').read_text()
    assert 'train/loss' in member_metrics
    assert 'val/' not in member_metrics
  no_members = run_python(benchmark('horses_time_to_accuracy.py'),
                          HORSES_SMOKE, f'--workdir={tmp_path / "none"}',
                          '--members=0')
  assert no_members.returncode != 0
  assert no_members.stderr.strip().splitlines()[-1].startswith(
      'error: flag --members=0')


def test_time_to_accuracy_script_trains_the_fcn_first_and_scores_with_it(
    tmp_path):
  run_dir, output = tmp_path / 'run', tmp_path / 'tta.md'
  fcn_flags = ('--config.eval.fcn.start_scale=0.1',
               '--config.eval.fcn.prior_weight=2.35e-4')
  for _ in range(2):  # the second run finds both done: no FCN trained again
    result = run_python(
        benchmark('horses_time_to_accuracy.py'), HORSES_SMOKE,
        f'--fcn_config={REPO / "configs" / "horses_fcn.py"}:ema,smoke',
        *fcn_flags, '--config.data.train_split=trainval',
        f'--workdir={run_dir}', '--every=6', f'--output={output}')
    assert result.returncode == 0, result.stderr[-2000:]
  with open(run_dir / 'time_to_accuracy.jsonl') as f:
    records = [json.loads(line) for line in f]
  assert [r['step'] for r in records] == ['FCN 6', 6]
  assert 0 < records[0]['seconds'] < records[1]['seconds']  # the FCN's time
  assert '| FCN 6 |' in output.read_text()
  assert 'first an FCN (6 steps' in output.read_text()
  fcn_config = json.loads((run_dir / 'fcn' / 'config.json').read_text())
  assert fcn_config['data']['train_split'] == 'trainval'
  # The value net's test score is the one its checkpoint gets with the FCN
  # file at the same start and prior.
  evaluated = run_python('-m', 'dvn_jax.main', HORSES_SMOKE,
                         f'--workdir={run_dir}', '--mode=evaluate',
                         f'--config.eval.fcn.params={run_dir / "fcn.npz"}',
                         *fcn_flags)
  assert evaluated.returncode == 0, evaluated.stderr[-2000:]
  assert (f'mean IoU {records[1]["test_mean_iou"]:.2f}%, global IoU '
          f'{records[1]["test_global_iou"]:.2f}%') in evaluated.stdout
  # A resumed run must be started the same way, with or without the FCN.
  without = run_python(benchmark('horses_time_to_accuracy.py'), HORSES_SMOKE,
                       f'--workdir={run_dir}', '--every=6')
  assert without.returncode != 0
  assert without.stderr.strip().splitlines()[-1] == (
      f'error: {run_dir} was started with --fcn_config: pass it again to '
      'resume, or use a new --workdir')
  (run_dir / 'fcn.npz').unlink()
  gone = run_python(
      benchmark('horses_time_to_accuracy.py'), HORSES_SMOKE,
      f'--fcn_config={REPO / "configs" / "horses_fcn.py"}:ema,smoke',
      *fcn_flags, f'--workdir={run_dir}', '--every=6')
  assert gone.returncode != 0
  assert gone.stderr.strip().splitlines()[-1] == (
      f'error: {run_dir}/fcn.npz is missing: the FCN this run was scored '
      'with is gone; use a new --workdir')
  fcn_smoke = f'--fcn_config={REPO / "configs" / "horses_fcn.py"}:smoke'
  old_log = tmp_path / 'old'
  old_log.mkdir()
  (old_log / 'time_to_accuracy.jsonl').write_text(
      json.dumps(dict(records[1], step=6)) + '\n')
  late = run_python(benchmark('horses_time_to_accuracy.py'), HORSES_SMOKE,
                    fcn_smoke, *fcn_flags, f'--workdir={old_log}')
  assert late.returncode != 0
  assert late.stderr.strip().splitlines()[-1] == (
      f'error: {old_log} was started without --fcn_config: drop it to '
      'resume, or use a new --workdir')
  unused = run_python(benchmark('horses_time_to_accuracy.py'), HORSES_SMOKE,
                      fcn_smoke, f'--workdir={tmp_path / "unused"}')
  assert unused.returncode != 0
  assert unused.stderr.strip().splitlines()[-1] == (
      'error: --fcn_config needs --config.eval.fcn.start_scale or '
      'prior_weight > 0, or the FCN is unused')
  named = run_python(benchmark('horses_time_to_accuracy.py'), HORSES_SMOKE,
                     fcn_smoke, *fcn_flags, '--config.eval.fcn.params=x.npz',
                     f'--workdir={tmp_path / "named"}')
  assert named.returncode != 0
  assert named.stderr.strip().splitlines()[-1] == (
      'error: --fcn_config trains the FCN; drop '
      '--config.eval.fcn.params=x.npz')
  missing = run_python(benchmark('horses_time_to_accuracy.py'), HORSES_SMOKE,
                       f'--fcn_config={tmp_path / "none.py"}',
                       f'--workdir={tmp_path / "missing"}')
  assert missing.returncode != 0
  assert missing.stderr.strip().splitlines()[-1].startswith(
      'error: cannot load --fcn_config: ')


def test_sweep_chooses_on_val_finetunes_and_scores_test(tmp_path):
  root, output = tmp_path / 'sweep', tmp_path / 'sweep.md'
  result = run_python(benchmark('sweep.py'), HORSES_SMOKE,
                      f'--sweep={REPO / "configs" / "horses_sweep.py"}:smoke',
                      f'--root={root}', '--eval_every=3',
                      '--finetune_fraction=0.5', f'--output={output}')
  assert result.returncode == 0, result.stderr[-2000:]
  table = output.read_text()
  assert table.count('\n| base |') == 1 and table.count('\n| pts1 |') == 1
  assert 'Chosen on val: **' in table
  assert 'test mean_iou / global_iou' in table
  # Every variant kept its checkpoints at the scored steps; the final run
  # started from the chosen one and trained half as many steps again.
  for name in ('base', 'pts1'):
    assert sorted(os.listdir(root / name / 'checkpoints')) == ['3', '6']
  chosen = int(re.search(r'chosen on val: \w+ at step (\d+)',
                         result.stdout).group(1))
  final_steps = [int(s) for s in os.listdir(root / 'final' / 'checkpoints')]
  assert max(final_steps) == chosen + round(0.5 * chosen)
  assert 'on trainval' in (root / 'final.log').read_text()
  assert (root / 'final.npz').stat().st_size > 0
  assert (root / 'final' / 'eval_test.json').exists()


def test_sweep_finetune_all_exports_every_variant_and_scores_no_test(tmp_path):
  root, output = tmp_path / 'sweep', tmp_path / 'sweep.md'
  result = run_python(benchmark('sweep.py'), HORSES_SMOKE,
                      f'--sweep={REPO / "configs" / "horses_sweep.py"}:smoke',
                      f'--root={root}', '--eval_every=3',
                      '--finetune_fraction=0.5', '--finetune_which=all',
                      f'--output={output}')
  assert result.returncode == 0, result.stderr[-2000:]
  text = output.read_text()
  assert 'No choice made and no test scored' in text
  assert 'Chosen on val' not in text and not (root / 'final').exists()
  for name in ('base', 'pts1'):
    # 6 steps on train, then 3 more on train+val from that checkpoint.
    assert max(int(s) for s in os.listdir(root / f'{name}_tv' / 'checkpoints')
               ) == 9
    assert 'on trainval' in (root / f'{name}_tv.log').read_text()
    assert not list((root / f'{name}_tv').glob('eval_test.json'))
    for version in ('train', 'trainval'):
      assert (root / f'{name}_{version}.npz').stat().st_size > 0


def test_speed_script_times_a_multilabel_config():
  result = run_python(benchmark('speed.py'),
                      f'--config={REPO / "configs" / "bibtex.py"}:smoke',
                      '--repeats=1')
  assert result.returncode == 0, result.stderr[-2000:]
  assert re.search(r'train step, batch 20, 2 inference steps: [\d.]+ ms',
                   result.stdout)
  assert 'predict the test split (2515 examples' in result.stdout


def test_test_time_script_scores_variants_on_val_and_refuses_test(tmp_path):
  config = HORSES_SMOKE
  workdir = tmp_path / 'run'
  trained = run_python('-m', 'dvn_jax.main', config, f'--workdir={workdir}')
  assert trained.returncode == 0, trained.stderr[-2000:]
  script = benchmark('horses_test_time.py')
  output = tmp_path / 'test_time.md'
  result = run_python(script, config, f'--workdir={workdir}',
                      '--variants=default,crops9', '--thresholds=0.4,0.5',
                      '--num_images=3', f'--output={output}')
  assert result.returncode == 0, result.stderr[-2000:]
  lines = output.read_text().splitlines()
  assert ('| variant | test-time change | threshold 0.4 | threshold 0.5 | '
          'seconds |') in lines
  rows = [line for line in lines
          if line.startswith('| ') and not line.startswith(('| variant',
                                                            '| ---'))]
  assert [row.split('|')[1].strip() for row in rows] == ['default', 'crops9']
  assert '`eval.num_crops=9`' in rows[1]
  cells = rows[0].split('|')[3:5]   # 2 thresholds: mean / global
  for cell in cells:
    mean, global_ = (float(v) for v in cell.split('/'))
    assert 0.0 <= mean <= 100.0 and 0.0 <= global_ <= 100.0
  refused = run_python(script, config, f'--workdir={workdir}',
                       '--split=test')
  assert refused.returncode != 0 and 'test' in refused.stderr
  unknown = run_python(script, config, f'--workdir={workdir}',
                       '--variants=crops10')
  assert unknown.returncode == 1
  assert unknown.stderr.strip().startswith("error: unknown variant(s) ['crops10']")
  trainval_run = tmp_path / 'trainval_run'
  trainval_run.mkdir()
  (trainval_run / 'config.json').write_text(
      '{"data": {"train_split": "trainval"}}')
  not_held_out = run_python(script, config, f'--workdir={trainval_run}')
  assert not_held_out.returncode == 1
  assert "trained on 'trainval'" in not_held_out.stderr
  # An exported pair (stacked by dvn_jax.ensemble) scores like one network.
  params_file, pair_file = tmp_path / 'net.npz', tmp_path / 'pair.npz'
  exported = run_python('-m', 'dvn_jax.main', config, f'--workdir={workdir}',
                        '--mode=export', f'--params={params_file}')
  assert exported.returncode == 0, exported.stderr[-2000:]
  stacked = run_python('-m', 'dvn_jax.ensemble', f'--output={pair_file}',
                       str(params_file), str(params_file))
  assert stacked.returncode == 0, stacked.stderr[-2000:]
  from_file = run_python(script, config, f'--params={pair_file}',
                         '--variants=default', '--thresholds=0.4,0.5',
                         '--num_images=3')
  assert from_file.returncode == 0, from_file.stderr[-2000:]
  # Two copies of one network average to its own masks and ratings: the
  # same scores.
  assert re.search(r'^default: (.*) \(', from_file.stdout, re.M).group(1) == \
      re.search(r'^default: (.*) \(', result.stdout, re.M).group(1)
  both = run_python(script, config, f'--workdir={workdir}',
                    f'--params={pair_file}')
  assert both.returncode == 1
  assert both.stderr.strip().startswith('error: pass either --workdir')
  neither = run_python(script, config)
  assert neither.returncode == 1
  assert neither.stderr.strip().startswith('error: pass either --workdir')


def test_bibtex_recipe_script_ends_with_the_test_f1_and_its_time(tmp_path):
  """The published recipe as one command (smoke sizes): val after phase 1,
  then train+val, then test; its temporary workdir is gone at the end."""
  result = run_python(benchmark('bibtex_time_to_accuracy.py'),
                      f'--config={REPO / "configs" / "bibtex.py"}:smoke',
                      '--config.steps_per_call=4')
  assert result.returncode == 0, result.stderr[-2000:]
  lines = result.stdout.strip().splitlines()
  assert re.fullmatch(r'val F1 \d+\.\d\d after 6 steps on train \(.* s\)',
                      lines[-3]), lines
  assert lines[-2].startswith('1 more steps on trainval')
  assert re.fullmatch(r'test F1 \d+\.\d\d in \d+\.\d s', lines[-1]), lines


def test_throughput_script_times_fused_steps():
  result = run_python(benchmark('throughput.py'),
                      f'--config={REPO / "configs" / "bibtex.py"}:smoke',
                      '--batch_sizes=4', '--unrolls=1',
                      '--steps_per_call=1,3', '--repeats=1', '--peak_n=64')
  assert result.returncode == 0, result.stderr[-2000:]
  rows = [l for l in result.stdout.splitlines() if l.startswith('| 4 | 1 |')]
  assert [row.split('|')[3].strip() for row in rows] == ['1', '3']
