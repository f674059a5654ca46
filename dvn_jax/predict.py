"""Segment your own images with a trained model.

  python -m dvn_jax.predict --config=configs/horses.py --workdir=/tmp/horses \
      --output_dir=/tmp/masks horse1.jpg horse2.png
  (or --params=<released .npz> instead of --workdir)

Each image (any size, any mode PIL reads: JPEG, PNG, TIFF, ...) is
converted to 8-bit RGB as `dvn_jax.datasets.images` says (16-bit and float
images scaled by their pixels' range, transparent pixels composited on
--background, white by default), resized to the model's 32x32, segmented with the config's test-time inference (crops,
joint inference or mask averaging) eval.batch_size images per compiled call
(the last batch padded, so one program serves every batch), and the soft
mask is resized back to the image's size and thresholded:
`<output_dir>/<name>_mask.png`, 0 or 255.
Every image is read and the output folder checked before the model loads;
a refused run writes nothing, and each mask is written whole or not at all.
Models with K = 3 classes (configs/lfw.py) write each pixel's argmax class as
an RGB PNG in the colours of the LFW Part Labels label images: red = hair,
green = face, blue = background.
"""

from __future__ import annotations

import os
import pathlib
from collections.abc import Iterator
from collections.abc import Sequence

import numpy as np
from absl import app
from absl import flags
from ml_collections import config_flags
from absl import logging
from PIL import Image

from dvn_jax import builders
from dvn_jax import cli
from dvn_jax import evaluate
from dvn_jax import files
from dvn_jax import predictors
from dvn_jax import tasks
from dvn_jax import train
from dvn_jax.datasets import images
from dvn_jax.tasks import segmentation
from dvn_jax.errors import ConfigError
from dvn_jax.errors import DataError

_CONFIG = config_flags.DEFINE_config_file(
    'config', None, 'Config the model was trained with.', lock_config=True)
_WORKDIR = flags.DEFINE_string('workdir', None,
                               'Training workdir whose latest checkpoint to use.')
_PARAMS = flags.DEFINE_string('params', None,
                              'Or a parameter file (.npz) to use instead '
                              '(several, a.npz,b.npz: one ensemble).')
_OUTPUT_DIR = flags.DEFINE_string('output_dir', '.', 'Where masks are written.')
_BACKGROUND = flags.DEFINE_string(
    'background', 'white', 'Colour that transparent pixels are composited '
    "on (a name or #rrggbb, as PIL's ImageColor reads it).")
flags.mark_flags_as_required(['config'])


def read_image(path: str | os.PathLike,
               background: images.RGB = images.WHITE) -> np.ndarray:
  """RGB uint8 (H, W, 3) of an image file (`images.read_rgb`), what the
  conversion did beyond decoding logged as a warning; DataError if it is
  not an image."""
  rgb, notes = images.read_rgb(path, background)
  for note in notes:
    logging.warning('%s: %s', path, note)
  return rgb


def resize(array: np.ndarray, size: tuple[int, int]) -> np.ndarray:
  """Bilinear resize of uint8 (H, W, C) or float (H, W) to (height, width)."""
  height, width = size
  if array.dtype == np.uint8:
    return np.asarray(Image.fromarray(array).resize((width, height),
                                                    Image.BILINEAR))
  image = Image.fromarray(array.astype(np.float32), mode='F')
  return np.asarray(image.resize((width, height), Image.BILINEAR))


def segment(predict_fn, params, rgbs: Sequence[np.ndarray], image_size: int,
            threshold: float, batch_size: int) -> Iterator[np.ndarray]:
  """Each image's mask at its own size: binary (H, W) uint8 {0, 255}, or
  for K = 3 classes (H, W, 3) uint8 with class k's channel at 255.

  The images are resized to image_size on the host and segmented
  batch_size at a time (`evaluate.predict_in_batches`: fixed batch shapes,
  the last one padded, one compilation; fewer images than batch_size are
  one batch of their own size; progress and ETA logged).
  """
  small = np.stack([resize(rgb, (image_size, image_size)) for rgb in rgbs])
  soft = evaluate.predict_in_batches(lambda images: predict_fn(params, images),
                                     small, batch_size)
  for rgb, one in zip(rgbs, soft):
    yield full_size_mask(one, rgb.shape[:2], threshold)


def full_size_mask(soft: np.ndarray, size: tuple[int, int],
                   threshold: float) -> np.ndarray:
  """A soft mask (h, w, K) resized to `size` and made binary (K = 1: 0 or
  255) or an RGB image of each pixel's class (K = 3)."""
  if soft.shape[-1] == 1:
    full = resize(soft[..., 0], size)
    return np.where(full >= threshold, 255, 0).astype(np.uint8)
  if soft.shape[-1] != 3:
    raise DataError(f'cannot draw {soft.shape[-1]} classes as a PNG; '
                    'only 1 (binary) or 3 (RGB)')
  full = np.stack([resize(soft[..., k], size) for k in range(3)], axis=-1)
  return (np.eye(3, dtype=np.uint8) * 255)[full.argmax(axis=-1)]


def mask_paths(paths: Sequence[str], output_dir: str) -> list[pathlib.Path]:
  """Where each image's mask goes (`<stem>_mask.png`); DataError if two
  images would write the same file or a folder is in the way."""
  targets = [pathlib.Path(output_dir) / f'{pathlib.Path(p).stem}_mask.png'
             for p in paths]
  seen = {}
  for path, target in zip(paths, targets):
    if target in seen:
      raise DataError(f'{seen[target]} and {path} would both write {target}; '
                      'segment them in separate runs or rename one')
    if target.is_dir():
      raise DataError(f'{target} is a folder, where the mask of {path} goes; '
                      'move it or pass another --output_dir')
    seen[target] = path
  return targets


def write_png(image: np.ndarray, path: str | os.PathLike) -> None:
  """Writes a uint8 array as a PNG file, whole or not at all."""
  with files.atomic_write(path) as f:
    Image.fromarray(image).save(f, format='PNG')


def predict_files(config, workdir: str | None, paths: Sequence[str],
                  output_dir: str, params_path: str | None = None,
                  background: images.RGB = images.WHITE
                  ) -> list[pathlib.Path]:
  """Segments each file; returns the mask paths written. Everything that
  can be refused is refused before the model loads; if the run fails after
  that, an output folder it created goes again."""
  builders.check_config(config)
  if not isinstance(tasks.get(config), segmentation.Segmentation):
    raise ConfigError(f'dvn_jax.predict segments images; this is a '
                      f'{config.task} config (score it with python -m '
                      'dvn_jax.main --mode=evaluate)')
  files.check_output_dir(output_dir, '--output_dir')
  targets = mask_paths(paths, output_dir)
  rgbs = [read_image(p, background) for p in paths]
  model = builders.create_model(config)
  params = train.load_trained_params(model, config, workdir, params_path)
  predict_fn = predictors.make_predict_fn(model, config)
  with files.created_for_run(output_dir) as keep:
    masks = segment(predict_fn, params, rgbs, config.image_size,
                    config.eval.threshold, config.eval.batch_size)
    for mask, target in zip(masks, targets):
      write_png(mask, target)
    keep()
  return targets


def main(argv):
  if len(argv) < 2:
    cli.fail('name at least one image file to segment')
  cli.quiet_library_logs()
  with cli.reporting_errors():
    background = images.parse_color(_BACKGROUND.value)
    for target in predict_files(_CONFIG.value, _WORKDIR.value, argv[1:],
                                _OUTPUT_DIR.value, _PARAMS.value, background):
      print(target)


if __name__ == '__main__':
  app.run(main, flags_parser=cli.make_flags_parser(_CONFIG))
