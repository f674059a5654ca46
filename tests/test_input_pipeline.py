"""Batches of the training data: step-seeded indices, on-device crops
(dvn_jax/input_pipeline.py)."""

import jax
import jax.numpy as jnp
import numpy as np

from dvn_jax import input_pipeline


def test_batch_indices_are_epochs_of_permutations_and_repeatable():
  batches = [input_pipeline.batch_indices(0, s, 10, 4) for s in range(5)]
  flat = np.concatenate(batches)
  assert sorted(flat[:10]) == list(range(10))      # epoch 0
  assert sorted(flat[10:20]) == list(range(10))    # epoch 1
  np.testing.assert_array_equal(input_pipeline.batch_indices(0, 3, 10, 4),
                                batches[3])
  assert not np.array_equal(input_pipeline.batch_indices(1, 0, 10, 4),
                            batches[0])


def test_random_crops_cut_image_and_mask_alike():
  images = jnp.arange(2 * 8 * 8 * 3, dtype=jnp.float32).reshape(2, 8, 8, 3)
  masks = images[..., :1]  # the mask equals the image's first channel
  for flip in (False, True):
    x, y = input_pipeline.random_crops(jax.random.key(0), images, masks, 5,
                                       flip)
    assert x.shape == (2, 5, 5, 3) and y.shape == (2, 5, 5, 1)
    np.testing.assert_array_equal(x[..., :1], y)
