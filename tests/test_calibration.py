"""The calibration measure (dvn_jax/calibration.py): rounding, the numbers
on known points, the points of a known network, and the command."""

import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from configs import bibtex as bibtex_config
from dvn_jax import builders
from dvn_jax import calibration
from dvn_jax import inference
from dvn_jax import tasks
from dvn_jax import train
from dvn_jax.errors import ConfigError
from subprocess_runs import run_main


def test_outputs_are_rounded_as_the_task_scores_them():
  box = jnp.array([[0.2, 0.5, 0.7]])
  np.testing.assert_array_equal(
      calibration.round_outputs(box, 'box', 0.5), [[0.0, 1.0, 1.0]])
  simplex = jnp.array([[[0.2, 0.5, 0.3], [0.6, 0.1, 0.3]]])
  np.testing.assert_array_equal(
      calibration.round_outputs(simplex, 'simplex', 0.5),
      [[[0, 1, 0], [1, 0, 0]]])


def test_metrics_of_known_points():
  oracle = np.array([0.2, 0.5, 1.0, 0.8])
  value = np.array([0.3, 0.4, 0.9, 0.85])
  score = np.log(value / (1 - value))
  truth_score = np.array([0.0, 5.0, 0.0, -5.0])
  metrics = calibration.calibration_metrics(
      calibration.Points(oracle, score, truth_score, squash=True))
  assert metrics['examples'] == 4
  assert metrics['oracle'] == pytest.approx(62.5)
  assert metrics['spearman'] == pytest.approx(1.0)   # same order
  # Examples 0, 1, 3 are wrong (v* < 1); the truth outscores the output in
  # 0 (0 > s = -0.85) and 1 (5 > -0.41), not in 3 (-5 < 1.73).
  assert metrics['truth_above'] == pytest.approx(100 * 2 / 3)
  assert metrics['value_mae'] == pytest.approx(100 * np.mean(
      [0.1, 0.1, 0.1, 0.05]))
  assert metrics['overvalued'] == pytest.approx(50.0)
  unsquashed = calibration.calibration_metrics(
      calibration.Points(oracle, score, truth_score, squash=False))
  assert unsquashed['value_mae'] is None and unsquashed['overvalued'] is None
  assert unsquashed['spearman'] == metrics['spearman']


def test_points_of_a_known_score():
  """s(x, y) = sum(w * y): the ascent from 0 sets exactly the labels with
  w > 0, whose F1 against the truth and scores are known."""
  config = bibtex_config.get_config('smoke')
  task = tasks.get(config)
  inputs, targets = task.train_arrays(task.load()['train'])
  x, y_star = jnp.asarray(inputs[:8]), jnp.asarray(targets[:8])
  w = jnp.where(jnp.arange(y_star.shape[1]) < 5, 1.0, -1.0)
  value_fn = inference.ValueFn(lambda f, y: jnp.sum(w * y, axis=1),
                               squash=False)
  spec = inference.AscentSpec(num_steps=4, step_size=0.5, projection='box')
  # 8 examples in batches of 3: one program, the last batch padded.
  points = calibration.calibration_points(task, value_fn, x, y_star, spec,
                                          0.5, jax.random.key(0), 3)
  assert points.oracle.shape == (8,)
  y_hat = np.asarray(w > 0, np.float64)
  truth = np.asarray(y_star, np.float64)
  hits = truth @ y_hat
  np.testing.assert_allclose(points.oracle,
                             2 * hits / (truth.sum(1) + y_hat.sum()), rtol=1e-6)
  np.testing.assert_allclose(points.score, 5.0)
  np.testing.assert_allclose(points.truth_score, truth @ np.asarray(w),
                             rtol=1e-6)
  assert not points.squash


def test_a_baseline_network_is_refused():
  config = bibtex_config.get_config('smoke')
  config.method = 'baseline'
  config.model.name = 'mlc_classifier'
  del config.model.global_hidden
  with pytest.raises(ConfigError, match='calibration needs a value network'):
    calibration.bound_network(config, 'unused.npz')


def test_the_command_compares_a_dvn_and_a_spen(tmp_path):
  for options in ('smoke', 'smoke,spen'):
    config = bibtex_config.get_config(options)
    train.train_and_evaluate(config, str(tmp_path / options))
  output = tmp_path / 'plots' / 'calibration.png'
  result = run_main(
      '--name=DVN', '--config=configs/bibtex.py:smoke',
      f'--params={tmp_path / "smoke"}', '--name=SPEN',
      '--config=configs/bibtex.py:smoke,spen',
      f'--params={tmp_path / "smoke,spen"}', '--split=val',
      f'--output={output}', module='dvn_jax.calibration')
  assert result.returncode == 0, result.stderr[-2000:]
  rows = [line for line in result.stdout.splitlines() if line.startswith('|')]
  assert rows[0].startswith('| network | examples | oracle | spearman')
  dvn_row, spen_row = rows[2].split(' | '), rows[3].split(' | ')
  assert dvn_row[0] == '| DVN' and spen_row[0] == '| SPEN'
  assert dvn_row[-1] != '- |' and spen_row[-1] == '- |'   # SPEN: no value
  from PIL import Image
  assert Image.open(output).size[0] > Image.open(output).size[1]


def test_the_command_refuses_unpaired_flags_in_one_line(tmp_path):
  result = run_main('--name=DVN', '--config=configs/bibtex.py:smoke',
                    module='dvn_jax.calibration')
  assert result.returncode != 0
  assert 'give each network as --name' in result.stderr
  assert 'Traceback' not in result.stderr
  for config, params in (('configs/bibtex.py:smoke', tmp_path / 'missing'),
                         ('configs/bibtex.py:smokee', 'released/bibtex_dvn.npz')):
    result = run_main('--name=DVN', f'--config={config}', f'--params={params}',
                      module='dvn_jax.calibration')
    assert result.returncode != 0 and 'Traceback' not in result.stderr
    assert result.stderr.strip().splitlines()[-1].startswith('error:')


def test_held_out_examples_are_network_sized_and_repeatable():
  from configs import horses as horses_config
  config = horses_config.get_config('smoke')
  builders.check_config(config)
  task = tasks.get(config)
  split = task.load()['val']
  x, y_star = calibration.held_out_examples(task, split, seed=0)
  x_shape, y_shape = task.example_shapes
  assert x.shape == (len(split.images), *x_shape)
  assert y_star.shape == (len(split.images), *y_shape)
  again, _ = calibration.held_out_examples(task, split, seed=0)
  np.testing.assert_array_equal(x, again)


def test_the_loop_logs_the_monitor_which_measures_as_the_command(tmp_path):
  """eval.calibration=True: each evaluation logs <split>/calibration/...,
  the numbers `measure` gives for the same parameters and split."""
  config = bibtex_config.get_config('smoke')
  config.eval.calibration = True
  train.train_and_evaluate(config, str(tmp_path))
  last = [json.loads(line) for line in
          (tmp_path / 'metrics.jsonl').read_text().splitlines()
          if 'val/f1' in line][-1]
  measured = calibration.calibration_metrics(calibration.measure(
      config, str(tmp_path), 'val', config.seed))
  for name in ('value_mae', 'overvalued', 'truth_above', 'spearman'):
    assert last[f'val/calibration/{name}'] == pytest.approx(measured[name],
                                                             rel=1e-4)


def test_calibration_during_training_refuses_a_baseline_network():
  config = bibtex_config.get_config('smoke')
  config.method, config.model.name = 'baseline', 'mlc_classifier'
  del config.model.global_hidden
  builders.check_config(config)   # without eval.calibration: fine
  config.eval.calibration = True
  with pytest.raises(ConfigError, match='eval.calibration needs a value '
                     'network'):
    builders.check_config(config)
