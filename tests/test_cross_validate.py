"""benchmarks/cross_validate.py: folds and seeds, the interval, a rerun
that reads finished runs."""

import json
import sys

import numpy as np
import pytest

from subprocess_runs import REPO
from subprocess_runs import run_python

sys.path.insert(0, str(REPO / 'benchmarks'))
import cross_validate  # noqa: E402
from dvn_jax import errors  # noqa: E402


def test_the_interval_is_students():
  s = cross_validate.interval([1.0, 2.0, 3.0])
  assert s['mean'] == 2.0 and s['std'] == 1.0 and s['n'] == 3
  assert s['half_width'] == pytest.approx(4.302653 / np.sqrt(3), rel=1e-5)


def test_summary_keeps_the_steps_every_run_scored():
  summary = cross_validate.summarise({'a': {1: 1.0, 2: 2.0},
                                      'b': {2: 4.0, 3: 5.0}})
  assert list(summary) == [2] and summary[2]['mean'] == 3.0


def test_two_folds_run_and_a_rerun_reads_them(tmp_path):
  args = ['benchmarks/cross_validate.py', '--config=configs/bibtex.py:smoke',
          '--folds=2', '--seeds=0', '--metric=f1', f'--root={tmp_path}',
          f'--output={tmp_path / "cv.json"}']
  result = run_python(*args)
  assert result.returncode == 0, result.stderr[-2000:]
  assert '[2/2] fold1_seed0' in result.stdout
  last = result.stdout.strip().splitlines()[-1]
  assert last.startswith('f1 ') and '(95% CI, 2 runs, step 6' in last
  report = json.loads((tmp_path / 'cv.json').read_text())
  assert set(report['runs']) == {'fold0_seed0', 'fold1_seed0'}
  for fold in (0, 1):
    config = json.loads((tmp_path / f'fold{fold}_seed0' / 'config.json'
                         ).read_text())
    assert config['data']['cv_fold'] == fold
    assert config['data']['cv_folds'] == 2
    assert config['data']['eval_split'] == 'fold_val'
  # A rerun reads the finished runs (their own times included): the same
  # report, and no run is started again.
  # Paired against its own report, every difference is zero.
  logs = (tmp_path / 'fold0_seed0.log').read_text()
  again = run_python(*args, f'--against={tmp_path / "cv.json"}')
  assert again.returncode == 0, again.stderr[-2000:]
  lines = again.stdout.strip().splitlines()
  first_paired = next(i for i, line in enumerate(lines)
                      if line.startswith('paired delta at step'))
  assert lines[first_paired - 1] == last
  assert lines[-1].startswith('paired delta f1 +0.00 +- 0.00 (95% CI, 2 '
                              'pairs, step 6')
  assert (tmp_path / 'fold0_seed0.log').read_text() == logs


def test_paired_differences_match_runs_by_name():
  deltas = cross_validate.paired(
      {'fold0': {1: 3.0, 2: 5.0}, 'fold1': {2: 7.0}, 'fold2': {2: 0.0}},
      {'fold0': {2: 4.0}, 'fold1': {2: 4.0}})
  assert list(deltas) == [2]
  assert deltas[2]['deltas'] == {'fold0': 1.0, 'fold1': 3.0}
  assert deltas[2]['mean'] == 2.0 and deltas[2]['n'] == 2
  assert cross_validate.paired({'a': {1: 1.0}}, {'b': {1: 1.0}}) == {}


def test_a_baseline_of_other_folds_or_metric_is_refused(tmp_path):
  report = tmp_path / 'base.json'
  report.write_text(json.dumps({'folds': 10, 'metric': 'mean_iou',
                                'runs': {'fold0_seed0': {'1000': 60.0}}}))
  with pytest.raises(errors.DvnError, match='--folds=10 --metric=mean_iou; '
                     'these runs have --folds=5'):
    cross_validate.read_report(str(report), 5, 'mean_iou')
  assert cross_validate.read_report(str(report), 10, 'mean_iou') == {
      'fold0_seed0': {1000: 60.0}}


@pytest.mark.parametrize('flag,message', [('--folds=1', '--folds must be 0'),
                                          ('--seeds=', '--seeds names no'),
                                          ('--against=/nonexistent.json',
                                           'is not a cross_validate report')])
def test_bad_flags_are_one_line(tmp_path, flag, message):
  result = run_python('benchmarks/cross_validate.py',
                      '--config=configs/bibtex.py:smoke', flag,
                      f'--root={tmp_path}')
  assert result.returncode != 0 and 'Traceback' not in result.stderr
  assert message in result.stderr
