"""Small in-memory datasets -> batches; crops and flips on device.

The datasets of the paper are tiny (200 training images), so they live on
the device whole. The host only draws which examples form a batch, from a
permutation seeded by (seed, epoch): batch `step` is a pure function of the
step, so a resumed run sees exactly the batches it would have seen.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

Array = jax.Array


def images_to_float(images: np.ndarray | Array) -> Array:
  """uint8 images (..., H, W, 3) -> float32 in [0, 1]."""
  return jnp.asarray(images, jnp.float32) / 255.0


def masks_to_float(masks: np.ndarray | Array, num_classes: int = 1) -> Array:
  """Masks (N, H, W) -> float32 (N, H, W, K).

  Binary {0, 1} masks (num_classes=1) keep one foreground channel; class
  ids 0..K-1 (num_classes=K > 1) become one-hot vectors.
  """
  if num_classes == 1:
    return jnp.asarray(masks, jnp.float32)[..., None]
  return jax.nn.one_hot(jnp.asarray(masks), num_classes, dtype=jnp.float32)


def batch_indices(seed: int, step: int, num_examples: int,
                  batch_size: int) -> np.ndarray:
  """Example indices of batch `step`: epochs of seeded permutations."""
  return steps_batch_indices(seed, step, 1, num_examples, batch_size)[0]


def steps_batch_indices(seed: int, first_step: int, num_steps: int,
                        num_examples: int, batch_size: int) -> np.ndarray:
  """(num_steps, batch_size) example indices of batches first_step, ...,
  first_step + num_steps - 1 (`batch_indices` of each, each epoch's
  permutation drawn once)."""
  positions = (first_step * batch_size +
               np.arange(num_steps * batch_size)).reshape(num_steps,
                                                          batch_size)
  epochs, within = np.divmod(positions, num_examples)
  indices = np.empty(positions.shape, np.int32)
  for epoch in np.unique(epochs):
    permutation = np.random.default_rng([seed, int(epoch)]).permutation(
        num_examples)
    chosen = epochs == epoch
    indices[chosen] = permutation[within[chosen]]
  return indices


def random_crops(rng: Array, images: Array, masks: Array, crop_size: int,
                 flip: bool) -> tuple[Array, Array]:
  """One random crop (and optional horizontal flip) per example, on device.

  images (B, H, W, C), masks (B, H, W, K) -> (B, crop, crop, C), (B, crop,
  crop, K), the same crop (and flip) for an image and its mask.
  """
  batch, height, width, _ = images.shape
  rng_row, rng_col, rng_flip = jax.random.split(rng, 3)
  rows = jax.random.randint(rng_row, (batch,), 0, height - crop_size + 1)
  cols = jax.random.randint(rng_col, (batch,), 0, width - crop_size + 1)
  flips = jax.random.bernoulli(rng_flip, 0.5, (batch,)) & flip

  def cut(both, row, col):
    return jax.lax.dynamic_slice(both, (row, col, 0),
                                 (crop_size, crop_size, both.shape[-1]))

  return _crop_pairs(cut, images, masks, flips, rows, cols)


def _crop_pairs(cut, images: Array, masks: Array, flips: Array,
                *params: Array) -> tuple[Array, Array]:
  """`cut(concat(image, mask), *params_i)` for every example i, flipped
  horizontally where flips_i, split back into (image crops, mask crops)."""
  channels = images.shape[-1]

  def one(image, mask, do_flip, *example_params):
    crop = cut(jnp.concatenate([image, mask], axis=-1), *example_params)
    crop = jnp.where(do_flip, crop[:, ::-1], crop)
    return crop[..., :channels], crop[..., channels:]

  return jax.vmap(one)(images, masks, flips, *params)


def pad_to_multiple(array: np.ndarray, multiple: int) -> np.ndarray:
  """Pads the leading axis with copies of the last row to a multiple."""
  remainder = (-len(array)) % multiple
  if remainder == 0:
    return array
  return np.concatenate([array, np.repeat(array[-1:], remainder, axis=0)])
