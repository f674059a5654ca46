"""Test-time settings of a trained horse value net, scored on val.

  python benchmarks/horses_test_time.py --workdir=/tmp/horses \
      [--config=configs/horses.py] [--variants=default,crops81,steps50] \
      [--thresholds=0.4,0.5,0.6] [--output=test_time.md]
  python benchmarks/horses_test_time.py --params=pair.npz [...]
      [--decoders=expected_iou,critic]

Scores the workdir's latest checkpoint (trained on train: val must be held
out), or an exported file (`--params`: one network, or an ensemble stacked
by `python -m dvn_jax.ensemble`, also trained on train only), on val with
the config's test-time inference ('default') and with each variant, one
test-time field changed at a time: number of crops, ascent steps, ascent
step size, joint inference. One inference per variant gives the soft
masks; every threshold is scored from them, and with --decoders per-image
decoders too: 'expected_iou' (the top k pixels by soft value, k maximising
the ratio of expected intersection and expected union) and 'critic' (of
the --thresholds, the binary mask the value net itself rates highest: its
predicted IoU averaged over the members and the crops). With --fcn_weights
(and eval.fcn.params set) each variant's value-net masks are also averaged
with the FCNs' at each weight w, (1 - w) DVN + w FCN, from the same
inference (eval.fcn.start_scale still sets where it starts). Test-time settings,
like the others, are chosen on val (paper Sec. 5.2): this script refuses
the test split. Score the chosen setting on test with
`python -m dvn_jax.main --mode=evaluate --config.eval.<field>=<value>`.
"""

from __future__ import annotations

import functools
import json
import os
import time
from collections.abc import Callable

import jax
import jax.numpy as jnp
import machine
import numpy as np
from absl import app
from absl import flags
from ml_collections import config_flags

from dvn_jax import builders
from dvn_jax import cli
from dvn_jax import evaluate
from dvn_jax import fcn_starts
from dvn_jax import inference
from dvn_jax import input_pipeline
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
_FCN_WEIGHTS = flags.DEFINE_list(
    'fcn_weights', [], 'Weights w of the FCN masks (eval.fcn.params) in '
    '(1 - w) DVN + w FCN, each scored from one inference per variant '
    '(default: the config\'s eval.fcn.weight alone).')
DECODERS = ('expected_iou', 'critic')
_DECODERS = flags.DEFINE_list(
    'decoders', [], f'Per-image decoders scored beside the thresholds, of '
    f'{list(DECODERS)} (module docstring).')
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


def expected_iou_masks(soft: np.ndarray) -> np.ndarray:
  """Per image, the k pixels of highest soft value m, k (0..P) maximising
  sum_top m / (k + sum_rest m): expected intersection over expected union
  with pixels independent Bernoulli(m). An all-zero m gives the empty mask."""
  flat = soft.reshape(len(soft), -1).astype(np.float64)
  order = np.argsort(-flat, axis=1, kind='stable')
  cumulative = np.cumsum(np.take_along_axis(flat, order, axis=1), axis=1)
  total = cumulative[:, -1:]
  k = np.arange(1, flat.shape[1] + 1)
  ratio = cumulative / (k + total - cumulative)
  empty = np.where(total > 0, 0.0, 1.0)
  best_k = np.concatenate([empty, ratio], axis=1).argmax(axis=1)
  ranks = np.argsort(order, axis=1)
  return (ranks < best_k[:, None]).reshape(soft.shape)


def make_critic(model, params, config) -> Callable:
  """(uint8 image (H, W, 3), candidate masks (T, H, W)) -> (T,) the value
  net's predicted IoU of each candidate, averaged over the members of
  `params` and over the config's test crops."""
  # One value function of the ensemble: sigmoid of it is the members' mean
  # predicted IoU (inference.mean_value_fn).
  value_fn = predictors.bind_members(model, params)
  offsets = inference.crop_offsets(config.image_size, config.crop_size,
                                   config.eval.num_crops)

  @jax.jit
  def rate(image, candidates):
    x = inference.extract_crops(input_pipeline.images_to_float(image[None]),
                                offsets, config.crop_size)[0]
    y = inference.extract_crops(candidates[..., None].astype(jnp.float32),
                                offsets, config.crop_size)
    x = jnp.broadcast_to(x, y.shape[:2] + x.shape[1:])
    flat = lambda a: a.reshape((-1,) + a.shape[2:])
    values = jax.nn.sigmoid(value_fn(flat(x), flat(y))).reshape(y.shape[:2])
    return values.mean(axis=1)
  return rate


def critic_masks(rate: Callable, images: np.ndarray, soft: np.ndarray,
                 thresholds: list[float], preferred: float) -> np.ndarray:
  """Per image, the soft mask binarised at the threshold whose mask `rate`
  (make_critic) rates highest; ties go to the threshold nearest `preferred`."""
  thresholds = np.asarray(thresholds)
  picked = []
  for image, mask in zip(images, soft):
    candidates = mask[None] >= thresholds[:, None, None]
    values = np.asarray(rate(image, candidates))
    best = np.flatnonzero(values == values.max())
    picked.append(candidates[best[np.argmin(
        np.abs(thresholds[best] - preferred))]])
  return np.stack(picked)


def fcn_masks_fn(config, images) -> Callable[[int], np.ndarray]:
  """num_crops -> the FCNs' (eval.fcn.params) soft foreground masks of
  `images`, averaged over that many crops (computed once per count)."""
  if not config.eval.fcn.params:
    raise ConfigError('--fcn_weights needs --config.eval.fcn.params (an '
                      'FCN file or a stacked ensemble of FCNs)')
  probabilities = fcn_starts.load_fcn(config, config.eval.fcn.params,
                                      'eval.fcn.params')
  floats = input_pipeline.images_to_float(images)

  @functools.cache
  def masks(num_crops: int) -> np.ndarray:
    offsets = inference.crop_offsets(config.image_size, config.crop_size,
                                     num_crops)
    return np.asarray(fcn_starts.fcn_soft_masks(
        probabilities, floats, offsets, config.crop_size))[..., 0]
  return masks


def run(base, workdir: str | None, names: list[str], thresholds: list[float],
        split_name: str, num_images: int = 0,
        params_path: str | None = None,
        fcn_weights: list[float] | None = None,
        decoders: list[str] | None = None) -> list[dict]:
  """One record per variant (and FCN weight): its overrides, seconds, IoU
  per threshold and per decoder (`decoders`, of DECODERS).

  The network is the workdir's latest checkpoint or, with `params_path`, an
  exported file (a stacked ensemble averages its members' masks). With
  `fcn_weights`, the value net's masks are inferred once per variant and
  averaged with the FCNs' at each weight.
  """
  if bool(workdir) == bool(params_path):
    raise ConfigError('pass either --workdir (a run trained on train) or '
                      '--params (a file exported from one), not both')
  unknown = [n for n in names if n not in VARIANTS]
  if unknown:
    raise ConfigError(f'unknown variant(s) {unknown}; choose from '
                      f'{list(VARIANTS)}')
  decoders = decoders or []
  if unknown := [d for d in decoders if d not in DECODERS]:
    raise ConfigError(f'unknown decoder(s) {unknown}; choose from '
                      f'{list(DECODERS)}')
  if workdir:
    check_held_out(workdir, split_name)
  split = train.get_split(train.load_data(base), split_name, '--split')
  images, masks = split.images, split.masks
  if num_images:
    images, masks = images[:num_images], masks[:num_images]
  fcn_masks = fcn_masks_fn(base, images) if fcn_weights else None
  model = builders.create_model(base)
  params = train.load_trained_params(model, base, workdir, params_path)
  records = []
  for name in names:
    overrides = dict(VARIANTS[name])
    if fcn_weights:
      overrides['eval.fcn.weight'] = 0.0   # the DVN's masks alone; mixed below
    config = variant_config(base, overrides)
    predict = functools.partial(predictors.make_predict_fn(model, config),
                                params)
    start = time.perf_counter()
    soft = evaluate.predict_in_batches(predict, images,
                                       config.eval.batch_size)[..., 0]
    seconds = time.perf_counter() - start
    rate = make_critic(model, params, config) if 'critic' in decoders else None
    mixes = {None: soft} if not fcn_weights else {
        w: (1.0 - w) * soft + w * fcn_masks(config.eval.num_crops)
        for w in fcn_weights}
    for weight, mixed in mixes.items():
      label = name if weight is None else f'{name}, FCN w {weight:g}'
      record = {'variant': label, 'overrides': VARIANTS[name],
                'seconds': seconds,
                'scores': score_thresholds(mixed, masks, thresholds)}
      for decoder in decoders:
        decoded = (expected_iou_masks(mixed) if decoder == 'expected_iou'
                   else critic_masks(rate, images, mixed, thresholds,
                                     config.eval.threshold))
        record['scores'][decoder] = evaluate.segmentation_metrics(decoded,
                                                                  masks)
      records.append(record)
      at = {t: f'{s["mean_iou"]:.2f}/{s["global_iou"]:.2f}'
            for t, s in record['scores'].items()}
      print(f'{label}: {at} ({seconds:.0f} s)', flush=True)
  return records


def table(records: list[dict]) -> str:
  """Markdown: a row per record, a column per threshold and decoder."""
  columns = list(records[0]['scores'])
  head = ('| variant | test-time change | '
          + ' | '.join(f'threshold {c:g}' if isinstance(c, float) else c
                       for c in columns) + ' | seconds |')
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
    try:
      fcn_weights = [float(w) for w in _FCN_WEIGHTS.value]
    except ValueError:
      raise ConfigError(f'--fcn_weights must be numbers, got '
                        f'{",".join(_FCN_WEIGHTS.value)}') from None
    records = run(_CONFIG.value, _WORKDIR.value, _VARIANTS.value, thresholds,
                  _SPLIT.value, _NUM_IMAGES.value, _PARAMS.value, fcn_weights,
                  _DECODERS.value)
  machine.print_and_save(
      table(records), _OUTPUT.value,
      f'{machine.describe()}; {_SPLIT.value} split; cells: mean IoU / global '
      'IoU (%).')


if __name__ == '__main__':
  app.run(main, flags_parser=cli.make_flags_parser(_CONFIG))
