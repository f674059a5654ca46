"""The paper's horse figures as PNG, from trained workdirs or parameter files.

  python -m dvn_jax.figures --config=configs/horses.py --workdir=/tmp/horses \
      [--fcn_config=configs/horses_fcn.py --fcn_workdir=/tmp/fcn] \
      --output_dir=docs/figures

(or --params=FILE.npz / --fcn_params=FILE.npz instead of the workdirs)

writes
- `inference_trajectory.png` (paper Fig. 1): test images, the mask after 0,
  5, 10 and 30 steps of inference, and the ground truth;
- `qualitative.png` (Fig. 3): input, FCN (when an FCN is given), DVN,
  ground truth for test images;
- `shape_prior.png` (Fig. 5): (a) the mean training mask, (b) inference on the
  mean training image, (c, d) on the mean image plus Gaussian noise of
  sigma = 10 grey levels.
"""

from __future__ import annotations

import pathlib

import numpy as np
from absl import app
from absl import flags
from ml_collections import config_flags
from PIL import Image
from PIL import ImageDraw

from dvn_jax import builders
from dvn_jax import cli
from dvn_jax import evaluate
from dvn_jax import files
from dvn_jax import predictors
from dvn_jax import tasks
from dvn_jax import train
from dvn_jax.datasets import horses
from dvn_jax.tasks import segmentation
from dvn_jax.errors import ConfigError

_CONFIG = config_flags.DEFINE_config_file('config', None, 'DVN config.',
                                          lock_config=True)
_WORKDIR = flags.DEFINE_string('workdir', None, 'Trained DVN workdir.')
_PARAMS = flags.DEFINE_string('params', None,
                              'Or a DVN parameter file (.npz) instead.')
_FCN_CONFIG = config_flags.DEFINE_config_file('fcn_config', None,
                                              'FCN config (optional).')
_FCN_WORKDIR = flags.DEFINE_string('fcn_workdir', None,
                                   'Trained FCN workdir (optional).')
_FCN_PARAMS = flags.DEFINE_string('fcn_params', None,
                                  'Or an FCN parameter file (optional).')
_OUTPUT_DIR = flags.DEFINE_string('output_dir', 'docs/figures',
                                  'Where the PNG files go.')
_NUM_IMAGES = flags.DEFINE_integer('num_images', 6, 'Test images per figure.')
flags.mark_flags_as_required(['config'])

SCALE = 4          # each 32x32 cell drawn at 128x128
LABEL_HEIGHT = 16
TRAJECTORY_STEPS = (0, 5, 10, 30)


def to_rgb(cell: np.ndarray) -> np.ndarray:
  """uint8 image (H, W, 3) or float mask (H, W[, 1]) in [0, 1] -> uint8 RGB."""
  if cell.dtype != np.uint8:
    cell = np.clip(np.squeeze(cell) * 255.0, 0, 255).astype(np.uint8)
  if cell.ndim == 2:
    cell = np.repeat(cell[..., None], 3, axis=-1)
  return cell


def grid(rows: list[list[np.ndarray]], header: list[str]) -> Image.Image:
  """A labelled grid of equally sized cells, upscaled by SCALE."""
  height, width = rows[0][0].shape[:2]
  cell_h, cell_w = height * SCALE, width * SCALE
  canvas = Image.new('RGB', (cell_w * len(header),
                             LABEL_HEIGHT + cell_h * len(rows)), 'white')
  draw = ImageDraw.Draw(canvas)
  for j, label in enumerate(header):
    draw.text((j * cell_w + 4, 2), label, fill='black')
  for i, row in enumerate(rows):
    for j, cell in enumerate(row):
      image = Image.fromarray(to_rgb(cell)).resize((cell_w, cell_h),
                                                   Image.NEAREST)
      canvas.paste(image, (j * cell_w, LABEL_HEIGHT + i * cell_h))
  return canvas


def load_model(config, workdir: str | None, params_path: str | None = None):
  model = builders.create_model(config)
  return model, train.load_trained_params(model, config, workdir, params_path)


def trajectory_figure(config, params, model, split) -> Image.Image:
  config = config.copy_and_resolve_references()
  with config.unlocked():
    config.eval.inference.num_steps = max(TRAJECTORY_STEPS)
  predict = predictors.make_predict_fn(model, config, return_trajectory=True)
  _, trajectory = predict(params, split.images)
  rows = [[split.images[i]] + [np.asarray(trajectory[t, i])
                               for t in TRAJECTORY_STEPS]
          + [split.masks[i].astype(np.float32)]
          for i in range(len(split.images))]
  return grid(rows, ['input'] + [f'step {t}' for t in TRAJECTORY_STEPS]
              + ['ground truth'])


def binary(soft: np.ndarray, threshold: float) -> np.ndarray:
  return (np.asarray(soft) >= threshold).astype(np.float32)


def predict_split(config, model, params, images: np.ndarray) -> np.ndarray:
  """Soft masks of `images`, eval.batch_size images per compiled call."""
  predict = predictors.make_predict_fn(model, config)
  return evaluate.predict_in_batches(lambda batch: predict(params, batch),
                                     images, config.eval.batch_size)


def qualitative_figure(config, params, model, split, fcn) -> Image.Image:
  dvn = binary(predict_split(config, model, params, split.images),
               config.eval.threshold)
  columns = [('input', list(split.images))]
  if fcn is not None:
    fcn_config, fcn_model, fcn_params = fcn
    fcn_masks = binary(predict_split(fcn_config, fcn_model, fcn_params,
                                     split.images), fcn_config.eval.threshold)
    columns.append(('FCN', list(fcn_masks)))
  columns += [('DVN', list(dvn)),
              ('ground truth', list(split.masks.astype(np.float32)))]
  rows = [list(cells) for cells in zip(*[c for _, c in columns])]
  return grid(rows, [name for name, _ in columns])


def shape_prior_figure(config, params, model, train_split) -> Image.Image:
  mean_image = train_split.images.astype(np.float32).mean(axis=0)
  noise = np.random.default_rng(0).normal(0.0, 10.0, (2,) + mean_image.shape)
  inputs = np.clip(np.concatenate([mean_image[None], mean_image + noise]),
                   0, 255).round().astype(np.uint8)
  masks = predictors.make_predict_fn(model, config)(params, inputs)
  cells = [train_split.masks.astype(np.float32).mean(axis=0)]
  cells += [np.asarray(m) for m in masks]
  input_row = [inputs[0], inputs[0], inputs[1], inputs[2]]
  return grid([cells, input_row],
              ['(a) mean mask', '(b) mean image', '(c) + noise', '(d) + noise'])


def main(argv):
  del argv
  cli.quiet_library_logs()
  with cli.reporting_errors():
    files.check_output_dir(_OUTPUT_DIR.value, '--output_dir')
    config = _CONFIG.value
    builders.check_config(config)
    task = tasks.get(config)
    if (not isinstance(task, segmentation.Segmentation) or
        task.num_classes != 1):
      raise ConfigError('dvn_jax.figures draws the horse figures: pass a '
                        'binary segmentation config (configs/horses.py)')
    data = horses.load_weizmann_horses(config.data.path or None)
    test = data['test']
    if not 1 <= _NUM_IMAGES.value <= len(test.images):
      raise ConfigError(f'--num_images must be 1..{len(test.images)} (the '
                        f'test images), got {_NUM_IMAGES.value}')
    subset = horses.SegmentationSplit(
        test.images[:_NUM_IMAGES.value], test.masks[:_NUM_IMAGES.value],
        test.names[:_NUM_IMAGES.value])
    model, params = load_model(config, _WORKDIR.value, _PARAMS.value)
    fcn = None
    if _FCN_WORKDIR.value or _FCN_PARAMS.value:
      fcn_config = _FCN_CONFIG.value
      if fcn_config is None:
        raise ConfigError('--fcn_workdir/--fcn_params need --fcn_config')
      builders.check_config(fcn_config)
      fcn = (fcn_config, *load_model(fcn_config, _FCN_WORKDIR.value,
                                     _FCN_PARAMS.value))
    figures = {
        'inference_trajectory.png': trajectory_figure(config, params, model,
                                                      subset),
        'qualitative.png': qualitative_figure(config, params, model, subset,
                                              fcn),
        'shape_prior.png': shape_prior_figure(
            config, params, model, data[config.data.train_split]),
    }
    out = pathlib.Path(_OUTPUT_DIR.value)
    with files.created_for_run(out) as keep:
      for name, image in figures.items():
        with files.atomic_write(out / name) as f:
          image.save(f, format='PNG')
      keep()
    for name in figures:
      print(out / name)


if __name__ == '__main__':
  app.run(main, flags_parser=cli.make_flags_parser(_CONFIG, _FCN_CONFIG))
