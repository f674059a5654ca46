"""Segmentation: a mask per image, binary (Weizmann horses: foreground IoU)
or K-class (LFW Part Labels: face / hair / background, pixel accuracy).

- Data: small images whole on the device; each training example is a random
  crop (`crop_size`, paper Sec. 5.2) with an optional horizontal flip.
- Output set: the box [0, 1]^(H x W) for binary masks, the per-pixel
  simplex for K classes (`num_classes`).
- Networks: the paper's value net (Fig. 2), the two-stream value net
  (Sec. 6) and the FCN baseline.
- Test time: `eval.num_crops` crops on a grid, combined by mask averaging or
  joint inference (Sec. 5.4); the FCN's crop probabilities are averaged.
- Metrics: mean and global IoU (binary), superpixel and pixel accuracy at
  full size (K classes).
"""

from __future__ import annotations

from typing import Any

import flax.linen as nn
import jax
import ml_collections
import numpy as np

from dvn_jax import evaluate
from dvn_jax import inference
from dvn_jax import input_pipeline
from dvn_jax import models
from dvn_jax.datasets import horses
from dvn_jax.datasets import part_labels
from dvn_jax.errors import ConfigError
from dvn_jax.tasks import base

Array = jax.Array

# config.data.name -> (loader of all splits from config.data.path, the
# number of mask channels its masks have).
DATA = {
    'weizmann_horses': (lambda path: horses.load_weizmann_horses(path or None),
                        1),
    'lfw_part_labels': (part_labels.load_part_labels, part_labels.NUM_CLASSES),
}
# Sliced convolutions (models.apply_in_chunks) times unrolled ascent steps
# of one network beyond which XLA's CPU compile time explodes (measured: a
# pair of value nets, 30 steps, 4 crops: batch 8 scored val in 31 s, 16 in
# 86 s, 40 not in 30 min; docs/throughput.md).
SLOW_CPU_COMPILE_OPS = 300
# Fields that segmentation configs written before them lack (migration.py).
MIGRATION_DEFAULTS = {'num_classes': 1, 'data.name': 'weizmann_horses',
                      'flip': False}
VALUE_NETS = {'value_net': models.SegmentationValueNet,
              'two_stream_value_net': models.TwoStreamValueNet}
BASELINES = {'fcn': models.FCN}


class Segmentation(base.Task):
  """Masks of square images, from crops (module docstring)."""

  def __init__(self, config: ml_collections.ConfigDict):
    super().__init__(config)
    self.num_classes = config.num_classes
    self.output_set = 'box' if self.num_classes == 1 else 'simplex'
    self.oracle = 'iou' if self.num_classes == 1 else 'pixel_accuracy'
    self.headline = ('mean_iou' if self.num_classes == 1 else
                     'superpixel_accuracy')

  # ------------------------------------------------------------ data ----

  def check(self) -> None:
    c = self.config
    base.check_fields([
        (c.data.name in DATA, f'unknown data.name {c.data.name!r} for '
         f'segmentation; choose one of {sorted(DATA)}'),
        (c.crop_size >= 1, f'crop_size must be >= 1, got {c.crop_size}'),
        (c.crop_size <= c.image_size,
         f'crop_size {c.crop_size} > image_size {c.image_size}'),
    ])
    expected = DATA[c.data.name][1]
    if self.num_classes != expected:
      raise ConfigError(f'bad config: num_classes is {self.num_classes} but '
                        f'{c.data.name} masks have {expected} channel(s); '
                        f'set --config.num_classes={expected}')
    inference.crop_coverage(self.crop_offsets(), c.crop_size, c.image_size)

  def load(self) -> dict[str, Any]:
    loader, _ = DATA[self.config.data.name]
    return loader(self.config.data.path)

  def train_arrays(self, split: Any) -> tuple[Array, Array]:
    return (input_pipeline.images_to_float(split.images),
            input_pipeline.masks_to_float(split.masks, self.num_classes))

  def batch(self, rng: Array, inputs: Array, targets: Array
            ) -> tuple[Array, Array]:
    return input_pipeline.random_crops(rng, inputs, targets,
                                       self.config.crop_size, self.config.flip)

  @property
  def example_shapes(self) -> tuple[tuple[int, ...], tuple[int, ...]]:
    crop = self.config.crop_size
    return (crop, crop, 3), (crop, crop, self.num_classes)

  # -------------------------------------------------------- networks ----

  def create_model(self, model_config: ml_collections.ConfigDict
                   ) -> nn.Module:
    kwargs = dict(model_config)
    name = kwargs.pop('name')
    if name in VALUE_NETS:
      if name == 'value_net':
        kwargs['mask_channels'] = self.num_classes
      return _construct(VALUE_NETS[name], name, kwargs)
    if name in BASELINES:
      kwargs['num_classes'] = self.num_classes
      return _construct(BASELINES[name], name, kwargs)
    raise ConfigError(f'unknown model {name!r} for segmentation; choose one '
                      f'of {sorted(VALUE_NETS) + sorted(BASELINES)}')

  def is_baseline(self, model: nn.Module) -> bool:
    return isinstance(model, tuple(BASELINES.values()))

  # ------------------------------------------------------ prediction ----

  def compile_warning(self, model: nn.Module) -> str | None:
    """Why the test-time ascent would compile for minutes to hours on a
    CPU (eval.batch_size too large for the sliced, unrolled convolutions of
    `models.apply_in_chunks`), or None."""
    if self.is_baseline(model):
      return None
    chunk = models.conv_chunk_size(model.conv_chunk)
    crops = self.config.eval.batch_size * self.config.eval.num_crops
    if not chunk or crops <= chunk:
      return None
    steps = self.config.eval.inference.num_steps
    if -(-crops // chunk) * steps <= SLOW_CPU_COMPILE_OPS:
      return None
    return (f'eval.batch_size={self.config.eval.batch_size} x '
            f'{self.config.eval.num_crops} crops x {steps} ascent steps on a '
            f'CPU: the value net runs in slices of {chunk} crops, unrolled, '
            'and the program may take minutes to hours to compile; '
            '--config.eval.batch_size=1 is the fastest here')

  def crop_offsets(self) -> np.ndarray:
    return inference.crop_offsets(self.config.image_size,
                                  self.config.crop_size,
                                  self.config.eval.num_crops)

  def infer(self, value_fn: inference.ValueFn, inputs: Array,
            spec: inference.AscentSpec, rng: Array,
            return_trajectory: bool = False
            ) -> tuple[Array, Array | None]:
    """Soft masks (B, H, W, K) of uint8 images: each crop's ascent,
    combined by `eval.combine`."""
    return inference.infer_full_image(
        value_fn, input_pipeline.images_to_float(inputs),
        crop_size=self.config.crop_size, num_crops=self.config.eval.num_crops,
        combine=self.config.eval.combine, num_classes=self.num_classes,
        spec=spec, return_trajectory=return_trajectory, rng=rng)

  def apply_baseline(self, probabilities: base.Probabilities, inputs: Array
                     ) -> Array:
    """The FCN's class probabilities (B, H, W, K) of uint8 images, averaged
    over the crops (the baseline's test protocol, Sec. 5.2)."""
    return crop_averaged(probabilities, input_pipeline.images_to_float(inputs),
                         self.crop_offsets(), self.config.crop_size)

  # --------------------------------------------------------- metrics ----

  def evaluate(self, predict: base.HostPredict, split: Any
               ) -> dict[str, float]:
    batch_size = self.config.eval.batch_size
    if self.num_classes > 1:
      return evaluate.evaluate_multiclass(predict, split, batch_size)
    return evaluate.evaluate_segmentation(predict, split.images, split.masks,
                                          batch_size,
                                          self.config.eval.threshold)

  def summary(self, metrics: dict[str, float]) -> str:
    if self.num_classes > 1:
      return (f'superpixel accuracy {metrics["superpixel_accuracy"]:.2f}%, '
              f'pixel accuracy {metrics["pixel_accuracy"]:.2f}%')
    return (f'mean IoU {metrics["mean_iou"]:.2f}%, '
            f'global IoU {metrics["global_iou"]:.2f}%')


def crop_averaged(probabilities: base.Probabilities, images: Array,
                  offsets: np.ndarray, crop_size: int) -> Array:
  """Per-pixel probabilities (B, H, W, K) of float images, averaged over
  the crops at `offsets`; `probabilities` maps crops to per-pixel
  probabilities."""
  crops = inference.extract_crops(images, offsets, crop_size)
  flat = crops.reshape((-1,) + crops.shape[2:])
  probs = probabilities(flat)
  probs = probs.reshape(crops.shape[:2] + probs.shape[1:])
  return inference.average_crops(probs, offsets, images.shape[1])


def _construct(cls: type[nn.Module], name: str, kwargs: dict) -> nn.Module:
  try:
    return cls(**kwargs)
  except TypeError as e:
    raise ConfigError(f'bad config.model for {name!r}: {e}') from None


def build(config: ml_collections.ConfigDict) -> Segmentation:
  return Segmentation(config)
