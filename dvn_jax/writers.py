"""Metric writing and progress reports, without TensorFlow.

clu's `metric_writers` and `periodic_actions` import TensorFlow at import
time (clu 0.0.12), and TensorFlow is ~1.4 GB we do not otherwise need. This
module keeps clu's `MetricWriter` shape (write_scalars / write_images /
flush / close) on tensorboardX (TensorBoard event files) plus absl logging,
and appends every scalar record to `<logdir>/metrics.jsonl` (one JSON object
per line: step, wall_time, the scalars) for scripts such as sweeps.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Mapping, Sequence

import numpy as np
from absl import logging


class MetricWriter:
  """Writes scalars (and images) to TensorBoard, metrics.jsonl and the log.

  Only an enabled writer (process 0) writes TensorBoard files; every writer
  logs. The event file is opened at the first write, so a run refused
  before it leaves none.
  """

  def __init__(self, logdir: str, enabled: bool = True):
    self._logdir = logdir
    self._enabled = enabled
    self._opened = None
    self._jsonl_path = os.path.join(logdir, 'metrics.jsonl') if enabled else None

  @property
  def _summary(self):
    """The TensorBoard writer (opened on first use), or None if disabled."""
    if self._enabled and self._opened is None:
      import tensorboardX  # pylint: disable=g-import-not-at-top
      self._opened = tensorboardX.SummaryWriter(logdir=self._logdir)
    return self._opened

  def write_scalars(self, step: int, scalars: Mapping[str, float]) -> None:
    logging.info('[%d] %s', step, ', '.join(
        f'{k}={float(v):.5g}' for k, v in sorted(scalars.items())))
    if self._summary is not None:
      for key, value in scalars.items():
        self._summary.add_scalar(key, float(value), step)
    if self._jsonl_path is not None:
      record = {'step': int(step), 'wall_time': time.time()}
      record.update({k: float(v) for k, v in scalars.items()})
      with open(self._jsonl_path, 'a') as f:
        f.write(json.dumps(record) + '\n')

  def write_images(self, step: int, images: Mapping[str, np.ndarray]) -> None:
    """images: name -> (N, H, W, C) float in [0, 1] or uint8."""
    if self._summary is not None:
      for key, value in images.items():
        self._summary.add_images(key, np.asarray(value), step,
                                 dataformats='NHWC')

  def flush(self) -> None:
    if self._opened is not None:
      self._opened.flush()

  def close(self) -> None:
    if self._opened is not None:
      self._opened.close()


class ProgressReporter:
  """Logs steps/s and the ETA every `every_steps` steps (like clu's
  ReportProgress), and returns them as scalars for the writer.

  steps/s counts training alone: time reported by `pause` (evaluations,
  checkpoint writes) is left out of it, and the ETA adds the remaining
  evaluations (`eval_steps`, the steps still to be scored) at the last one's
  measured time (a step logged and scored logs first).
  """

  def __init__(self, num_train_steps: int, every_steps: int, first_step: int,
               eval_steps: Sequence[int] = ()):
    self._num_train_steps = num_train_steps
    self._every_steps = max(1, every_steps)
    self._last_step = first_step
    self._last_time = time.perf_counter()
    self._paused = 0.0
    self._eval_steps = sorted(eval_steps)
    self._eval_seconds = 0.0

  def pause(self, seconds: float, evaluation: bool = False) -> None:
    """Leaves `seconds` of non-training work out of steps/s; an evaluation's
    time also prices the evaluations still to come in the ETA."""
    self._paused += seconds
    if evaluation:
      self._eval_seconds = seconds

  def __call__(self, step: int) -> dict[str, float] | None:
    if step % self._every_steps and step != self._num_train_steps:
      return None
    now = time.perf_counter()
    train_seconds = max(now - self._last_time - self._paused, 1e-9)
    steps_per_sec = (step - self._last_step) / train_seconds
    self._last_step, self._last_time, self._paused = step, now, 0.0
    remaining = self._num_train_steps - step
    evals_left = sum(s >= step for s in self._eval_steps)
    eta = (remaining / steps_per_sec if steps_per_sec > 0 else float('inf'))
    eta += evals_left * self._eval_seconds
    logging.info('step %d/%d (%.1f%%), %.2f steps/s, ETA %s', step,
                 self._num_train_steps, 100.0 * step / self._num_train_steps,
                 steps_per_sec, format_seconds(eta))
    return {'steps_per_sec': steps_per_sec}


def format_seconds(seconds: float) -> str:
  if not np.isfinite(seconds):
    return '?'
  seconds = int(round(seconds))
  hours, rest = divmod(seconds, 3600)
  minutes, seconds = divmod(rest, 60)
  return f'{hours}h{minutes:02d}m{seconds:02d}s' if hours else (
      f'{minutes}m{seconds:02d}s')

