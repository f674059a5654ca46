"""Calibration: does a trained network's score track the oracle on the
outputs of its own test-time inference, on held-out data?

A DVN is trained to output v*(y, y*) (paper Eq. 3); its inference only
needs the values' order, but tuples near its own outputs are what makes
the order right there (Sec. 3.2). SPEN's score s has no absolute scale;
its hinge asks the truth to outscore every output by the task loss.

  python -m dvn_jax.calibration \\
      --name=DVN --config=configs/bibtex.py --params=released/bibtex_dvn.npz \\
      --name=SPEN --config=configs/bibtex.py:spen \\
      --params=released/bibtex_spen.npz --output=docs/figures/calibration.png

For each network (a parameter file or a trained workdir): the held-out
examples at the network's own input size (`task.batch` of the split under
a fixed key: Bibtex's examples, a random crop of each horse image;
`config.eval.batch_size` of them per compiled call), the
method's gradient ascent from y = 0 (`config.eval.inference`; the FCN's
start and prior too where `config.eval.fcn` has them), its final
output rounded as the task scores it (threshold on the box, argmax on the
simplex), and there, per example,
- the oracle v*(y_hat, y*), the score s(x, y_hat) and s(x, y*);
- `spearman`: rank correlation of s and v* over the examples (scale-free:
  comparable across methods);
- `truth_above`: % of examples with y_hat != y* where s(x, y*) > s(x, y_hat)
  (does the network know its output is not the truth);
- for networks whose prediction climbs the value sigmoid(s) (the DVN):
  `value_mae` |sigmoid(s) - v*| and `overvalued` % sigmoid(s) > v*, in the
  oracle's units (x 100). A score-climbing network (SPEN) has none.
Prints one markdown table row per network and writes a scatter plot
(v* against the climbed value or score, one panel per network).
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable
from collections.abc import Sequence
from typing import Any

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import scipy.stats
from absl import app
from absl import flags
from absl import logging

from dvn_jax import builders
from dvn_jax import cli
from dvn_jax import evaluate
from dvn_jax import files
from dvn_jax import hybrid
from dvn_jax import inference
from dvn_jax import methods
from dvn_jax import oracles
from dvn_jax import plots
from dvn_jax import sweeps
from dvn_jax import tasks
from dvn_jax.errors import ConfigError
from dvn_jax.tasks import base

Array = jax.Array


@dataclasses.dataclass(frozen=True)
class Points:
  """Per held-out example: v*(y_hat, y*), s(x, y_hat), s(x, y*)."""
  oracle: np.ndarray
  score: np.ndarray
  truth_score: np.ndarray
  squash: bool   # the prediction climbs sigmoid(s) (a value), not s

  @property
  def value(self) -> np.ndarray:
    """sigmoid(s(x, y_hat)): the network's value of its output."""
    return 1.0 / (1.0 + np.exp(-self.score))


def round_outputs(y: Array, projection: str, threshold: float) -> Array:
  """The output the task scores: y >= threshold on the box, one-hot argmax
  over the last axis on the simplex."""
  if projection == 'simplex':
    return jax.nn.one_hot(jnp.argmax(y, axis=-1), y.shape[-1], dtype=y.dtype)
  return (y >= threshold).astype(y.dtype)


def held_out_examples(task: base.Task, split: Any, seed: int
                      ) -> tuple[Array, Array]:
  """(x, y*) at the network's input size from a whole split: `task.batch`
  of its arrays under a fixed key (the examples as they are, or one random
  crop of each image)."""
  inputs, targets = task.train_arrays(split)
  return task.batch(jax.random.key(seed), jnp.asarray(inputs),
                    jnp.asarray(targets))


def calibration_points(task: base.Task, value_fn: inference.ValueFn,
                       x: Array, y_star: Array, spec: inference.AscentSpec,
                       threshold: float, rng: Array, batch_size: int
                       ) -> Points:
  """The ascent from the start on each x, rounded, scored by the oracle
  and by the network (module docstring); `batch_size` examples per
  compiled call (one program: the last batch padded)."""

  run = jax.jit(lambda xb, yb: point_columns(task, value_fn, xb, yb, spec,
                                              threshold, rng))
  return points_in_batches(run, x, y_star, batch_size, value_fn.squash)


def point_columns(task: base.Task, value_fn: inference.ValueFn, x: Array,
                  y_star: Array, spec: inference.AscentSpec, threshold: float,
                  rng: Array) -> Array:
  """(N, 3): v*(y_hat, y*), s(x, y_hat), s(x, y*) of the rounded ascent."""
  y_soft, _ = task.ascend_from_start(value_fn, x, y_star.shape, spec, rng)
  y_hat = round_outputs(y_soft, spec.projection, threshold)
  features = value_fn.encode(x)
  return jnp.stack([oracles.get_oracle(task.oracle)(y_hat, y_star),
                    value_fn.logits(features, y_hat),
                    value_fn.logits(features, y_star)], axis=1)


def points_in_batches(run: Callable[[Array, Array], Array], x: Array,
                      y_star: Array, batch_size: int, squash: bool) -> Points:
  """Points of `run` (a compiled `point_columns`) over batches of the
  examples (one program: the last batch padded)."""
  columns = evaluate.predict_in_batches(
      lambda indices: run(x[indices], y_star[indices]), np.arange(len(x)),
      batch_size)
  oracle, score, truth_score = np.asarray(columns, np.float64).T
  return Points(oracle, score, truth_score, squash)


def make_monitor(task: base.Task, model: Any, config: ml_collections.ConfigDict,
                 split: Any) -> Callable[[Any], dict[str, float]]:
  """monitor(params) -> the calibration numbers of `split` (module
  docstring) under the names `calibration/<number>`, for the train loop to
  log at each evaluation (`config.eval.calibration`): the held-out crops
  are drawn once, the program compiled once (the parameters are its
  argument). Crops and ascent are keyed by `config.seed`: the command
  (`--seed`) gives the same numbers with the same seed."""
  method = methods.get(config)   # one with `bind` (builders.check_config)
  x, y_star = held_out_examples(task, split, config.seed)
  spec = builders.ascent_spec(config.eval.inference, task)
  wrap = hybrid.from_config(task, config) or (lambda value_fn: value_fn)
  rng = jax.random.key(config.seed)

  @jax.jit
  def run(params, xb, yb):
    return point_columns(task, wrap(method.bind(model, params)), xb, yb, spec,
                         config.eval.threshold, rng)

  def monitor(params: Any) -> dict[str, float]:
    points = points_in_batches(lambda xb, yb: run(params, xb, yb), x, y_star,
                               config.eval.batch_size,
                               method.bind(model, params).squash)
    return {f'calibration/{name}': value
            for name, value in calibration_metrics(points).items()
            if value is not None and name != 'examples'}

  return monitor


def calibration_metrics(points: Points) -> dict[str, float | None]:
  """The module docstring's numbers (in %, `spearman` as a coefficient)."""
  wrong = points.oracle < 1.0
  truth_above = (100.0 * np.mean(points.truth_score[wrong] > points.score[wrong])
                 if wrong.any() else None)
  constant = np.ptp(points.score) == 0 or np.ptp(points.oracle) == 0
  spearman = (None if constant else
              float(scipy.stats.spearmanr(points.score, points.oracle)[0]))
  metrics = {'examples': float(len(points.oracle)),
             'oracle': 100.0 * float(np.mean(points.oracle)),
             'spearman': spearman, 'truth_above': truth_above,
             'value_mae': None, 'overvalued': None}
  if points.squash:
    metrics['value_mae'] = 100.0 * float(
        np.mean(np.abs(points.value - points.oracle)))
    metrics['overvalued'] = 100.0 * float(np.mean(points.value > points.oracle))
  return metrics


def bound_network(config: ml_collections.ConfigDict, params_path: str
                  ) -> tuple[base.Task, inference.ValueFn]:
  """The task and the network of `config` with the parameters of a file
  (or a workdir's latest checkpoint), bound as its method's prediction
  climbs it (with the hybrid's FCN start and prior when `config.eval.fcn`
  asks for them); ConfigError for methods that predict without a value."""
  builders.check_config(config)
  method = methods.get(config)
  if not hasattr(method, 'bind'):
    raise ConfigError(f"method {config.method!r} predicts without a value "
                      'or score; calibration needs a value network (dvn, '
                      'spen)')
  from dvn_jax import train   # pylint: disable=import-outside-toplevel
  # (train imports this module: the loop logs calibration)
  model = builders.create_model(config)
  workdir = params_path if os.path.isdir(params_path) else None
  params = train.load_trained_params(model, config, workdir,
                                     None if workdir else params_path)
  task = tasks.get(config)
  value_fn = method.bind(model, params)
  wrap = hybrid.from_config(task, config)
  return task, (value_fn if wrap is None else wrap(value_fn))


def measure(config: ml_collections.ConfigDict, params_path: str, split: str,
            seed: int) -> Points:
  """Points of one trained network on a split (module docstring)."""
  from dvn_jax import train   # pylint: disable=import-outside-toplevel
  task, value_fn = bound_network(config, params_path)
  data = train.get_split(train.load_data(config), split, '--split')
  x, y_star = held_out_examples(task, data, seed)
  spec = builders.ascent_spec(config.eval.inference, task)
  return calibration_points(task, value_fn, x, y_star, spec,
                            config.eval.threshold, jax.random.key(seed),
                            config.eval.batch_size)


def table(names: Sequence[str], rows: Sequence[dict[str, float | None]]
          ) -> str:
  """A markdown table, one row per network; '-' where a number has no
  meaning."""
  columns = ('examples', 'oracle', 'spearman', 'truth_above', 'value_mae',
             'overvalued')
  formats = {'examples': '{:.0f}', 'spearman': '{:.3f}'}

  def cell(column, value):
    return '-' if value is None else formats.get(column, '{:.1f}').format(value)

  lines = ['| network | ' + ' | '.join(columns) + ' |',
           '|---' * (len(columns) + 1) + '|']
  lines += ['| ' + name + ' | ' + ' | '.join(cell(c, row[c]) for c in columns)
            + ' |' for name, row in zip(names, rows)]
  return '\n'.join(lines)


def plot(names: Sequence[str], points: Sequence[Points], path: str) -> None:
  """One scatter panel per network: v* (x) against sigmoid(s) with the
  diagonal (value-climbing networks) or against s (score-climbing)."""
  panels = []
  for name, p in zip(names, points):
    if p.squash:
      panels.append(plots.Panel(name, p.oracle, p.value,
                                'network value sigmoid(s)', diagonal=True))
    else:
      panels.append(plots.Panel(name, p.oracle, p.score, 'network score s'))
  image = plots.scatter(panels, 'oracle value v*(y_hat, y*)')
  with files.atomic_write(path, 'wb') as f:
    image.save(f, format='PNG')


def define_flags() -> None:
  """The command's flags, defined only when it runs (so the module imports
  beside other commands that define --config)."""
  flags.DEFINE_multi_string('name', None, 'A network\'s label, once per '
                            'network (with --config, --params).')
  flags.DEFINE_multi_string('config', None, 'Its config file[:options].')
  flags.DEFINE_multi_string('params', None, 'Its parameter file (.npz) or '
                            'trained workdir.')
  flags.DEFINE_string('split', 'test', 'Held-out split.')
  flags.DEFINE_integer('seed', 0, 'Key of the crops (segmentation).')
  flags.DEFINE_string('output', None, 'Scatter plot (.png) to write.')


def main(argv):
  if len(argv) > 1:
    cli.fail(f'unexpected arguments: {" ".join(argv[1:])}')
  cli.quiet_library_logs()
  args = flags.FLAGS
  names, configs, params = (args.name or [], args.config or [],
                            args.params or [])
  if not names or not len(names) == len(configs) == len(params):
    cli.fail('give each network as --name=LABEL --config=FILE[:options] '
             f'--params=FILE_OR_WORKDIR (got {len(names)} --name, '
             f'{len(configs)} --config, {len(params)} --params)')
  if args.split == 'test':
    logging.warning('measuring on the TEST split; pass --split=val while '
                    'choosing anything')
  with cli.reporting_errors():
    if args.output:
      files.check_output_file(args.output, '--output')
    points = [measure(sweeps.load_config(spec), path, args.split,
                      args.seed) for spec, path in zip(configs, params)]
    print(table(names, [calibration_metrics(p) for p in points]))
    if args.output:
      plot(names, points, args.output)
      print(f'wrote {args.output}')


if __name__ == '__main__':
  define_flags()
  app.run(main)
