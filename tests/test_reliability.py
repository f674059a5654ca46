"""Runs that survive: preemption and exact resume, damaged checkpoints,
divergence, determinism, checkpoint retention, bad input."""

import json
import logging
import os
import pathlib
import signal
import subprocess
import time

import jax
import numpy as np
import pytest

from configs import horses as horses_config
from dvn_jax import builders
from dvn_jax import train
from dvn_jax.errors import CheckpointError
from dvn_jax.errors import ConfigError
from subprocess_runs import REPO, main_command, run_main

SMOKE = '--config=configs/horses.py:smoke'
# Long enough to be interrupted mid-way; one checkpoint only at the end.
LONG = ('--config.num_train_steps=60', '--config.log_every_steps=1',
        '--config.eval_every_steps=60', '--config.checkpoint_every_steps=60')
TIMING_KEYS = ('wall_time', 'train/steps_per_sec', 'train/eta_seconds',
               'train/elapsed_seconds', 'val/eval_seconds')


def last_error_line(result) -> str:
  assert result.returncode != 0
  assert 'Traceback' not in result.stderr, result.stderr[-3000:]
  return result.stderr.strip().splitlines()[-1]


def metric_lines(workdir: pathlib.Path) -> list[dict]:
  """metrics.jsonl without the wall-clock fields, keyed by step."""
  lines = [json.loads(l) for l in
           (workdir / 'metrics.jsonl').read_text().splitlines()]
  return [{k: v for k, v in l.items() if k not in TIMING_KEYS} for l in lines]


def params_of(workdir: pathlib.Path, config=None):
  config = config or horses_config.get_config('smoke')
  model = builders.create_model(config)
  state = train.restore_state(model, config, str(workdir))
  return jax.tree.leaves(jax.device_get(state.params)), int(state.step)


def files_of(workdir: pathlib.Path) -> dict[str, int]:
  return {str(p.relative_to(workdir)): p.stat().st_size
          for p in workdir.rglob('*') if p.is_file()}


def test_sigterm_then_resume_equals_an_uninterrupted_run(tmp_path):
  whole, cut = tmp_path / 'whole', tmp_path / 'cut'
  assert run_main(SMOKE, *LONG, f'--workdir={whole}').returncode == 0

  process = subprocess.Popen(
      main_command(SMOKE, *LONG, f'--workdir={cut}'), stdout=subprocess.PIPE,
      stderr=subprocess.PIPE, text=True, cwd=REPO,
      env=dict(os.environ, JAX_PLATFORMS='cpu'))
  metrics = cut / 'metrics.jsonl'
  deadline = time.time() + 120
  while time.time() < deadline and not (
      metrics.exists() and metrics.read_text().count('\n') >= 8):
    time.sleep(0.05)
  process.send_signal(signal.SIGTERM)
  _, err = process.communicate(timeout=120)
  assert process.returncode == 128 + signal.SIGTERM, err[-3000:]
  message = err.strip().splitlines()[-1]
  assert message.startswith('SIGTERM received: stopped after step ')
  stopped = int(message.split('after step ')[1].split()[0])
  assert 8 <= stopped < 60
  assert (cut / 'checkpoints' / str(stopped)).is_dir()

  resumed = run_main(SMOKE, *LONG, f'--workdir={cut}')
  assert resumed.returncode == 0, resumed.stderr[-3000:]
  (whole_params, whole_step), (cut_params, cut_step) = (params_of(whole),
                                                       params_of(cut))
  assert whole_step == cut_step == 60
  for a, b in zip(whole_params, cut_params):
    np.testing.assert_array_equal(a, b)
  # Every logged step, before and after the cut, has the same metrics.
  by_step = lambda lines: {(l['step'], k): v for l in lines
                           for k, v in l.items() if k != 'step'}
  whole_metrics, cut_metrics = by_step(metric_lines(whole)), by_step(
      metric_lines(cut))
  assert cut_metrics == whole_metrics


def test_same_config_and_seed_give_the_same_metrics(tmp_path):
  config = horses_config.get_config('smoke')
  first = train.train_and_evaluate(config, str(tmp_path / 'a'))
  second = train.train_and_evaluate(config, str(tmp_path / 'b'))
  first.pop('eval_seconds'), second.pop('eval_seconds')
  assert first == second
  assert metric_lines(tmp_path / 'a') == metric_lines(tmp_path / 'b')


def whole_and_cut(tmp_path, config, cut_at: int):
  """The final states of a run trained in one go and of the same run
  stopped at step `cut_at` and resumed; they must be equal."""
  train.train_and_evaluate(config, str(tmp_path / 'whole'))
  half = config.copy_and_resolve_references()
  half.num_train_steps = cut_at
  train.train_and_evaluate(half, str(tmp_path / 'cut'))
  train.train_and_evaluate(config, str(tmp_path / 'cut'))   # resumes
  whole, cut = (train.restore_state(builders.create_model(config), config,
                                    str(tmp_path / run))
                for run in ('whole', 'cut'))
  assert int(whole.step) == int(cut.step) == config.num_train_steps
  for a, b in zip(jax.tree.leaves(jax.device_get(whole)),
                  jax.tree.leaves(jax.device_get(cut))):
    np.testing.assert_array_equal(a, b)
  return whole


def test_inference_chains_resume_exactly(tmp_path):
  """The persistent chains are part of the checkpoint: a run stopped and
  resumed mid-way equals an uninterrupted one (new chains would not)."""
  config = horses_config.get_config('smoke')
  config.tuples.inference_chains = True
  config.tuples.inference.num_steps = 4    # chains outlive the cut
  config.num_train_steps = 8
  config.checkpoint_every_steps = config.eval_every_steps = 4
  whole = whole_and_cut(tmp_path, config, cut_at=5)
  assert np.asarray(whole.chains.age).max() <= 4


def test_a_replay_buffer_resumes_exactly(tmp_path):
  """The replay buffer is part of the checkpoint: a run stopped and
  resumed mid-way equals an uninterrupted one, its buffer included."""
  config = horses_config.get_config('smoke')
  config.tuples.replay_size, config.tuples.replay_share = 12, 0.5
  config.num_train_steps = 6
  config.checkpoint_every_steps = config.eval_every_steps = 3
  whole = whole_and_cut(tmp_path, config, cut_at=4)
  assert int(whole.replay.count) == 6 * config.batch_size
  assert metric_lines(tmp_path / 'whole')[-1] == metric_lines(
      tmp_path / 'cut')[-1]


def test_a_run_resumes_with_a_replay_buffer_switched_on(tmp_path):
  """tuples.replay_size raised mid-run: the run resumes from its
  checkpoint with an empty buffer, which then fills."""
  config = horses_config.get_config('smoke')
  config.num_train_steps = 3
  train.train_and_evaluate(config, str(tmp_path))
  config.tuples.replay_size, config.tuples.replay_share = 12, 0.5
  config.num_train_steps = 5
  train.train_and_evaluate(config, str(tmp_path))
  state = train.restore_state(builders.create_model(config), config,
                              str(tmp_path))
  assert int(state.step) == 5
  assert int(state.replay.count) == 2 * config.batch_size   # steps 4 and 5


def test_a_run_resumes_with_a_moving_average_and_exports_it(tmp_path):
  """ema_decay raised mid-run: the average starts from the checkpoint's
  parameters, is checkpointed, and is what export writes."""
  config = horses_config.get_config('smoke')
  config.num_train_steps = 3
  train.train_and_evaluate(config, str(tmp_path))
  config.ema_decay = 0.5
  # Exporting (or evaluating) it with the average on takes its parameters.
  train.export_params(config, str(tmp_path), str(tmp_path / 'p3.npz'))
  plain = train.restore_state(builders.create_model(config), config,
                              str(tmp_path))
  np.testing.assert_array_equal(
      np.load(tmp_path / 'p3.npz')['tower/conv0/kernel'],
      plain.params['tower']['conv0']['kernel'])
  config.num_train_steps = 6
  metrics = train.train_and_evaluate(config, str(tmp_path))
  assert np.isfinite(metrics['mean_iou'])
  lines = (tmp_path / 'metrics.jsonl').read_text()
  assert 'val_live_params/mean_iou' in lines
  state = train.restore_state(builders.create_model(config), config,
                              str(tmp_path))
  assert int(state.step) == 6 and state.ema_params is not None
  train.export_params(config, str(tmp_path), str(tmp_path / 'p.npz'))
  exported = np.load(tmp_path / 'p.npz')
  kernel = np.asarray(state.ema_params['tower']['conv0']['kernel'])
  np.testing.assert_array_equal(exported['tower/conv0/kernel'], kernel)
  assert not np.array_equal(kernel, state.params['tower']['conv0']['kernel'])


def damage(step_dir: pathlib.Path) -> None:
  """Truncates every array data file of a checkpoint."""
  files = [p for p in step_dir.rglob('*') if p.is_file() and p.parent.name == 'd']
  assert files
  for path in files:
    with open(path, 'r+b') as f:
      f.truncate(100)


def test_live_parameters_are_scored_only_when_asked(tmp_path):
  config = horses_config.get_config('smoke')
  config.ema_decay = 0.5
  config.eval.score_live_params = False
  metrics = train.train_and_evaluate(config, str(tmp_path))
  assert np.isfinite(metrics['mean_iou'])
  lines = (tmp_path / 'metrics.jsonl').read_text()
  assert 'val/mean_iou' in lines and 'val_live_params' not in lines


def test_init_from_continues_an_exported_value_net(tmp_path):
  """A float16 export starts every layer of a new run (fresh optimizer)."""
  config = horses_config.get_config('smoke')
  config.num_train_steps = 3
  train.train_and_evaluate(config, str(tmp_path / 'a'))
  exported = str(tmp_path / 'a.npz')
  train.export_params(config, str(tmp_path / 'a'), exported, dtype='float16')
  config.init_from = exported
  config.num_train_steps = 1   # one Adam step moves a weight <= ~3e-4
  train.train_and_evaluate(config, str(tmp_path / 'b'), evaluate_last=False)
  started = train.restore_state(builders.create_model(config), config,
                                str(tmp_path / 'b'))
  np.testing.assert_allclose(started.params['fc0']['kernel'],
                             np.load(exported)['fc0/kernel'], atol=1e-3)


def test_a_damaged_latest_checkpoint_falls_back_to_the_previous(tmp_path):
  """Also when an earlier fallback already set a step 6 aside: the second
  copy gets a name of its own, and the warning is one short line."""
  args = (SMOKE, f'--workdir={tmp_path}', '--config.checkpoint_every_steps=3')
  assert run_main(*args).returncode == 0          # checkpoints 3 and 6
  earlier = tmp_path / 'checkpoints' / 'damaged_6'
  earlier.mkdir()
  (earlier / 'what.txt').write_text('set aside before')
  damage(tmp_path / 'checkpoints' / '6')
  resumed = run_main(*args, '--config.num_train_steps=9')
  assert resumed.returncode == 0, resumed.stderr[-3000:]
  [warning] = [line.split('] ', 1)[1] for line in resumed.stderr.splitlines()
               if 'Checkpoint 6' in line]
  copy = tmp_path / 'checkpoints' / 'damaged_6_2'
  assert warning == (f'Checkpoint 6 is damaged (a data file is truncated); '
                     f'moved to {copy}; resuming from step 3')
  assert copy.is_dir() and (earlier / 'what.txt').read_text() == (
      'set aside before')
  assert params_of(tmp_path)[1] == 9


def test_only_damaged_checkpoints_are_one_clear_error(tmp_path):
  args = (SMOKE, f'--workdir={tmp_path}', '--config.checkpoint_every_steps=3')
  assert run_main(*args).returncode == 0
  for step in ('3', '6'):
    damage(tmp_path / 'checkpoints' / step)
  before = files_of(tmp_path)
  line = last_error_line(run_main(*args, '--config.num_train_steps=9'))
  assert line.startswith('error: no checkpoint in ') and 'damaged' in line
  assert files_of(tmp_path) == before      # nothing renamed or deleted


# In process, orbax's late reader reports of the damaged checkpoint reach
# pytest (the command line drops them: cli.quiet_library_logs).
@pytest.mark.filterwarnings('ignore::pytest.PytestUnraisableExceptionWarning')
def test_damaged_checkpoints_of_a_moving_average_run_are_called_damaged(
    tmp_path):
  """With ema_decay on, a workdir whose checkpoints are all damaged is
  reported as damaged, not as another config's (the retry without the
  average once said so), and a run that saved no average still resumes."""
  config = horses_config.get_config('smoke')
  config.ema_decay = 0.5
  config.num_train_steps = config.checkpoint_every_steps = 3
  train.train_and_evaluate(config, str(tmp_path / 'ema'))
  damage(tmp_path / 'ema' / 'checkpoints' / '3')
  with pytest.raises(CheckpointError, match='damaged') as error:
    train.restore_state(builders.create_model(config), config,
                        str(tmp_path / 'ema'))
  assert 'does not match' not in str(error.value)
  plain = horses_config.get_config('smoke')
  plain.num_train_steps = 3
  train.train_and_evaluate(plain, str(tmp_path / 'plain'))
  state = train.restore_state(builders.create_model(config), config,
                              str(tmp_path / 'plain'))
  assert int(state.step) == 3
  for a, b in zip(jax.tree.leaves(state.ema_params),
                  jax.tree.leaves(state.params)):
    np.testing.assert_array_equal(a, b)


def test_a_checkpoint_of_another_config_is_one_line_and_kept(tmp_path):
  assert run_main(SMOKE, f'--workdir={tmp_path}').returncode == 0
  before = files_of(tmp_path)
  line = last_error_line(run_main(SMOKE, f'--workdir={tmp_path}',
                                  '--config.crop_size=20'))
  assert 'does not match this config' in line and 'new --workdir' in line
  assert files_of(tmp_path) == before


def test_divergence_names_the_step_keeps_the_good_checkpoint_and_resumes(
    tmp_path):
  args = (SMOKE, f'--workdir={tmp_path}', '--config.checkpoint_every_steps=2')
  assert run_main(*args).returncode == 0                    # steps 1..6
  line = last_error_line(run_main(*args, '--config.num_train_steps=20',
                                  '--config.optimizer.learning_rate=1e30'))
  assert line.startswith('error: training diverged at step ')
  assert 'the last good checkpoint is step 6' in line
  saved = [p.name for p in (tmp_path / 'checkpoints').iterdir()]
  assert max(int(s) for s in saved if s.isdigit()) == 6     # no NaN saved
  resumed = run_main(*args, '--config.num_train_steps=10')  # default lr
  assert resumed.returncode == 0, resumed.stderr[-3000:]
  assert params_of(tmp_path)[1] == 10


def test_workdir_that_cannot_be_created_is_one_line(tmp_path):
  blocker = tmp_path / 'file'
  blocker.write_text('not a folder')
  line = last_error_line(run_main(SMOKE, f'--workdir={blocker / "run"}'))
  assert line == (f"error: cannot write to --workdir '{blocker / 'run'}': "
                  f'{blocker} is a file, not a folder')
  assert blocker.read_text() == 'not a folder'


def test_a_run_refused_at_its_first_step_leaves_no_workdir(tmp_path,
                                                         monkeypatch):
  """A refusal found only when the train step is traced (after the data,
  the model and the checkpoint manager are set up) removes the workdir it
  created; an existing workdir keeps what it held, and only that (no
  checkpoint folder, config.json or event file)."""
  def refusing_step(*args, **kwargs):
    def step(*step_args):
      raise ConfigError('refused at trace time')
    return step
  monkeypatch.setattr(train, 'make_train_step', refusing_step)
  config = horses_config.get_config('smoke')
  with pytest.raises(ConfigError, match='refused at trace time'):
    train.train_and_evaluate(config, str(tmp_path / 'new' / 'run'))
  assert list(tmp_path.iterdir()) == []
  (tmp_path / 'old').mkdir()
  (tmp_path / 'old' / 'notes.txt').write_text('mine')
  with pytest.raises(ConfigError):
    train.train_and_evaluate(config, str(tmp_path / 'old'))
  assert files_of(tmp_path / 'old') == {'notes.txt': 4}
  assert [p.name for p in (tmp_path / 'old').iterdir()] == ['notes.txt']


def test_scoring_a_split_trained_on_warns(tmp_path, caplog):
  config = horses_config.get_config('smoke')
  config.num_train_steps = 1
  config.data.train_split = 'trainval'
  with caplog.at_level(logging.WARNING):
    train.train_and_evaluate(config, str(tmp_path))
  assert 'data.eval_split=val is part of data.train_split=trainval' in (
      caplog.text)
