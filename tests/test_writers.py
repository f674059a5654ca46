"""Progress reports: steps/s of training alone, an ETA with the evaluations."""

import time

from dvn_jax import train
from dvn_jax import writers


def test_eval_steps_are_every_n_and_the_last():
  assert train.eval_steps(0, 10, 4) == [4, 8, 10]
  assert train.eval_steps(0, 10, 4, evaluate_last=False) == [4, 8]
  assert train.eval_steps(8, 12, 4) == [12]
  assert train.eval_steps(12, 12, 4) == []


def test_paused_time_is_left_out_of_steps_per_second_and_priced_in_eta(
    monkeypatch):
  clock = [100.0]
  monkeypatch.setattr(time, 'perf_counter', lambda: clock[0])
  reporter = writers.ProgressReporter(num_train_steps=300, every_steps=100,
                                      first_step=0, eval_steps=[100, 300])
  assert reporter(50) is None                     # not a logging step
  clock[0] += 10.0                                # 100 steps in 10 s
  assert reporter(100)['steps_per_sec'] == 10.0
  reporter.pause(30.0, evaluation=True)           # the eval at step 100
  clock[0] += 40.0                                # 100 steps + that eval
  logged = []
  monkeypatch.setattr(writers.logging, 'info',
                      lambda fmt, *args: logged.append(fmt % args))
  assert reporter(200)['steps_per_sec'] == 10.0
  # 100 steps at 10 steps/s and the eval at step 300 at 30 s.
  assert logged[-1].endswith('ETA 0m40s'), logged
