"""Test-time settings of a trained horse value net, scored on val.

  python benchmarks/horses_test_time.py --workdir=/tmp/horses \
      [--config=configs/horses.py] [--variants=default,crops81,steps50] \
      [--thresholds=0.4,0.5,0.6] [--output=test_time.md]
  python benchmarks/horses_test_time.py --params=pair.npz [...]

Scores the workdir's latest checkpoint (trained on train: val must be held
out), or an exported file (`--params`: one network, or an ensemble stacked
by `python -m dvn_jax.ensemble`, also trained on train only), on val with
the config's test-time inference ('default') and with each variant, one
test-time field changed at a time: number of crops, ascent steps, ascent
step size, joint inference. One inference per variant gives the soft
masks; every threshold is scored from them. The config's eval.fcn (the
hybrid's FCN start and prior) applies to every variant. Test-time settings,
like the others, are chosen on val (paper Sec. 5.2): this script refuses
the test split. Score the chosen setting on test with
`python -m dvn_jax.main --mode=evaluate --config.eval.<field>=<value>`.
"""

from __future__ import annotations

import functools
import json
import os
import time

import machine
from absl import app
from absl import flags
from ml_collections import config_flags

from dvn_jax import builders
from dvn_jax import cli
from dvn_jax import evaluate
from dvn_jax import predictors
from dvn_jax import sweeps
from dvn_jax import train
from dvn_jax.errors import ConfigError

# Variant name -> test-time overrides (dotted config fields).
VARIANTS = {
    'default': {},
    'crops9': {'eval.num_crops': 9},
    'crops49': {'eval.num_crops': 49},
    'crops81': {'eval.num_crops': 81},   # 24 in 32: every offset 0..8
    'joint36': {'eval.combine': 'joint'},
    'steps20': {'eval.inference.num_steps': 20},
    'steps50': {'eval.inference.num_steps': 50},
    'steps100': {'eval.inference.num_steps': 100},
    'size25': {'eval.inference.step_size': 25.0},
    'size100': {'eval.inference.step_size': 100.0},
}

_CONFIG = config_flags.DEFINE_config_file(
    'config', os.path.join(os.path.dirname(__file__), '..', 'configs',
                           'horses.py'), 'Config of the trained run.',
    lock_config=True)
_WORKDIR = flags.DEFINE_string('workdir', None, 'A run trained on train.')
_PARAMS = flags.DEFINE_string(
    'params', None, 'An exported parameter file (one network or a stacked '
    'ensemble) trained on train, instead of --workdir. A file does not record '
    'its training split: the caller vouches that val was held out.')
_VARIANTS = flags.DEFINE_list('variants', list(VARIANTS),
                              f'Variants to score, of {list(VARIANTS)}.')
_THRESHOLDS = flags.DEFINE_list('thresholds', ['0.3', '0.4', '0.5', '0.6',
                                               '0.7'], 'Mask thresholds.')
_SPLIT = flags.DEFINE_enum('split', 'val', ['val', 'train'],
                           'Split to score (never test; train only as an in-sample '
                           'diagnostic).')
_NUM_IMAGES = flags.DEFINE_integer(
    'num_images', 0, 'Score only the first N images (0: all); for quick '
    'checks of the script, not for results.', lower_bound=0)
_OUTPUT = flags.DEFINE_string('output', None, 'Markdown file to write.')


def variant_config(base, overrides: dict[str, object]):
  """The base config with test-time overrides (unknown fields: ConfigError)."""
  sweeps.check_overrides(base, overrides)
  config = base.copy_and_resolve_references()
  with config.unlocked():
    config.update_from_flattened_dict(overrides)
  return config


def check_held_out(workdir: str, split_name: str) -> None:
  """ConfigError if `split_name` is val and the run trained on trainval."""
  path = os.path.join(workdir, 'config.json')
  if not os.path.exists(path):
    return   # a bare checkpoint folder: the caller vouches for its split
  with open(path) as f:
    trained_on = json.load(f).get('data', {}).get('train_split')
  if split_name == 'val' and trained_on == 'trainval':
    raise ConfigError(f'{workdir} was trained on {trained_on!r}, which holds '
                      f'the {split_name!r} images: score a run trained on '
                      f"'train' (--config.data.train_split=train)")


def score_thresholds(soft, masks, thresholds: list[float]
                     ) -> dict[float, dict[str, float]]:
  """Mean and global IoU of the soft masks binarised at each threshold."""
  return {t: evaluate.segmentation_metrics(soft >= t, masks)
          for t in thresholds}


def run(base, workdir: str | None, names: list[str], thresholds: list[float],
        split_name: str, num_images: int = 0,
        params_path: str | None = None) -> list[dict]:
  """One record per variant: its overrides, seconds, IoU per threshold.

  The network is the workdir's latest checkpoint or, with `params_path`, an
  exported file (a stacked ensemble averages its members' masks).
  """
  if bool(workdir) == bool(params_path):
    raise ConfigError('pass either --workdir (a run trained on train) or '
                      '--params (a file exported from one), not both')
  unknown = [n for n in names if n not in VARIANTS]
  if unknown:
    raise ConfigError(f'unknown variant(s) {unknown}; choose from '
                      f'{list(VARIANTS)}')
  if workdir:
    check_held_out(workdir, split_name)
  builders.check_config(base)
  split = train.get_split(train.load_data(base), split_name, '--split')
  images, masks = split.images, split.masks
  if num_images:
    images, masks = images[:num_images], masks[:num_images]
  model = builders.create_model(base)
  params = train.load_trained_params(model, base, workdir, params_path)
  records = []
  for name in names:
    config = variant_config(base, VARIANTS[name])
    predict = functools.partial(predictors.make_predict_fn(model, config),
                                params)
    start = time.perf_counter()
    soft = evaluate.predict_in_batches(predict, images,
                                       config.eval.batch_size)[..., 0]
    seconds = time.perf_counter() - start
    record = {'variant': name, 'overrides': VARIANTS[name],
              'seconds': seconds,
              'scores': score_thresholds(soft, masks, thresholds)}
    records.append(record)
    at = {t: f'{s["mean_iou"]:.2f}/{s["global_iou"]:.2f}'
          for t, s in record['scores'].items()}
    print(f'{name}: {at} ({seconds:.0f} s)', flush=True)
  return records


def table(records: list[dict]) -> str:
  """Markdown: a row per record, a column per threshold."""
  columns = list(records[0]['scores'])
  head = ('| variant | test-time change | '
          + ' | '.join(f'threshold {c:g}' for c in columns) + ' | seconds |')
  lines = [head, '| --- ' * (len(columns) + 3) + '|']
  for r in records:
    change = ', '.join(f'`{k}={v}`' for k, v in r['overrides'].items()) or '–'
    cells = ' | '.join(f'{r["scores"][c]["mean_iou"]:.2f} / '
                       f'{r["scores"][c]["global_iou"]:.2f}'
                       for c in columns)
    lines.append(f'| {r["variant"]} | {change} | {cells} | '
                 f'{r["seconds"]:.0f} |')
  return '\n'.join(lines) + '\n'


def main(argv):
  del argv
  cli.quiet_library_logs()
  with cli.reporting_errors():
    machine.check_output(_OUTPUT.value)
    try:
      thresholds = [float(t) for t in _THRESHOLDS.value]
    except ValueError:
      raise ConfigError(f'--thresholds must be numbers, got '
                        f'{",".join(_THRESHOLDS.value)}') from None
    records = run(_CONFIG.value, _WORKDIR.value, _VARIANTS.value, thresholds,
                  _SPLIT.value, _NUM_IMAGES.value, _PARAMS.value)
  machine.print_and_save(
      table(records), _OUTPUT.value,
      f'{machine.describe()}; {_SPLIT.value} split; cells: mean IoU / global '
      'IoU (%).')


if __name__ == '__main__':
  app.run(main, flags_parser=cli.make_flags_parser(_CONFIG))
