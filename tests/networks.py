"""Networks of models.py built and initialised directly, for tests that
exercise a network alone (the tasks build them from configs)."""

import jax.numpy as jnp

from dvn_jax import models

CLASSES = {'value_net': models.SegmentationValueNet, 'fcn': models.FCN,
           'two_stream_value_net': models.TwoStreamValueNet,
           'mlc_value_net': models.MultiLabelValueNet,
           'mlc_classifier': models.MultiLabelClassifier}


def create(name: str, **kwargs):
  return CLASSES[name](**kwargs)


def init_for_shapes(model, rng, x_shape, y_shape) -> dict:
  """Parameters for one input of shape x_shape and output y_shape."""
  x = jnp.zeros((1, *x_shape), jnp.float32)
  y = jnp.zeros((1, *y_shape), jnp.float32)
  return model.init({'params': rng}, x, y, train=False)['params']


def init(model, rng, crop_size: int, num_classes: int = 1) -> dict:
  """Parameters for square crops of `crop_size` pixels."""
  return init_for_shapes(model, rng, (crop_size, crop_size, 3),
                         (crop_size, crop_size, num_classes))
