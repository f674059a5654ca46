"""Data parallelism: N simulated CPU devices give what one device gives."""

import json
import os
import socket
import subprocess
import sys

import pytest

from dvn_jax import parallel
from dvn_jax.errors import ConfigError
from subprocess_runs import REPO, run_python



def run_with_devices(num_devices: int, *args: str, timeout: int = 300):
  return run_python(*args, timeout=timeout, env=dict(
      XLA_FLAGS=f'--xla_force_host_platform_device_count={num_devices}'))


@pytest.mark.parametrize('config, overrides', [
    # SGD: Adam's first steps amplify float-level differences of near-zero
    # gradients (g / (|g| + eps)), which would hide a real mismatch.
    ('configs/horses.py:smoke', ['batch_size=8', 'optimizer.name=sgd',
                                 'optimizer.learning_rate=0.01']),
    ('configs/bibtex.py:smoke', ['batch_size=16']),
    # Persistent inference chains, split over the devices like the batch,
    # and a moving average of the parameters (replicated; compared here).
    ('configs/horses.py:smoke', ['batch_size=16', 'optimizer.name=sgd',
                                 'optimizer.learning_rate=0.01',
                                 'tuples.inference_chains=True',
                                 'ema_decay=0.9',
                                 # Small ascent steps: steps of 50 amplify
                                 # float rounding (1 device vs 8 order sums
                                 # differently) into a 1% parameter
                                 # difference on an AVX2 CPU (2026-12-01).
                                 'tuples.inference.step_size=1.0',
                                 'tuples.adversarial.step_size=1.0']),
])
def test_eight_devices_train_like_one(tmp_path, config, overrides):
  result = run_with_devices(8, 'tests/parallel_check.py', config,
                            str(tmp_path), '8', *overrides)
  assert result.returncode == 0, result.stderr[-3000:]
  report = json.loads(result.stdout.strip().splitlines()[-1])
  assert report['devices'] == 8
  assert report['param_rel_diff'] < 1e-5
  one, many = report['losses']
  assert len(one) >= 2 and one == pytest.approx(many, rel=1e-5)
  assert report['metrics'][0] == pytest.approx(report['metrics'][1], abs=1e-3)


def test_batch_must_split_evenly_over_the_devices():
  mesh = parallel.make_mesh(1)
  parallel.check_divisible(5, mesh, 'batch_size')   # 1 device: anything goes
  with pytest.raises(ConfigError, match='num_devices must be in 0..1'):
    parallel.make_mesh(2)


def test_indivisible_batch_is_one_line(tmp_path):
  result = run_with_devices(
      8, '-m', 'dvn_jax.main', '--config=configs/horses.py:smoke',
      '--config.batch_size=6', f'--workdir={tmp_path}')
  assert result.returncode == 1 and 'Traceback' not in result.stderr
  assert ('batch_size = 6 must be a multiple of the 8 devices it is split '
          'over; set it to 8') in result.stderr


def free_port() -> int:
  with socket.socket() as s:
    s.bind(('127.0.0.1', 0))
    return s.getsockname()[1]


def test_two_processes_train_the_smoke_config(tmp_path):
  """Two local processes (2 CPU devices each) on a loopback coordinator."""
  address = f'127.0.0.1:{free_port()}'
  env = dict(os.environ, JAX_PLATFORMS='cpu',
             XLA_FLAGS='--xla_force_host_platform_device_count=2')
  processes = [subprocess.Popen(
      [sys.executable, '-m', 'dvn_jax.main', '--config=configs/horses.py:smoke',
       f'--workdir={tmp_path}', f'--coordinator_address={address}',
       '--num_processes=2', f'--process_id={i}'],
      stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=REPO,
      env=env) for i in range(2)]
  outputs = [p.communicate(timeout=240) for p in processes]
  for p, (_, err) in zip(processes, outputs):
    assert p.returncode == 0, err[-3000:]
  assert 'val: mean IoU' in outputs[0][0]      # process 0 reports
  assert 'val:' not in outputs[1][0]           # process 1 stays quiet
  assert (tmp_path / 'checkpoints' / '6').is_dir()
  lines = (tmp_path / 'metrics.jsonl').read_text().splitlines()
  assert any('"val/mean_iou"' in line for line in lines)
