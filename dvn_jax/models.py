"""Value networks v(x, y; theta) and the FCN baseline (Flax linen).

Every network is used as a pure function: `model.apply({'params': params},
x, y, train=...)`. Images enter as float32 in [0, 1] (see
`input_pipeline.images_to_float`), masks as float32 in [0, 1] with one channel
per class (one channel for binary segmentation).

The value network returns the *logit* of the value; v = sigmoid(logit) lies in
(0, 1) like the IoU it regresses (paper Sec. 3.2, Eq. 11).
"""

from __future__ import annotations

from collections.abc import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

from dvn_jax.errors import ConfigError

Array = jax.Array


class ConvTower(nn.Module):
  """The convolutional layers of the paper's Fig. 2 (ReLU after each)."""

  features: Sequence[int] = (64, 128, 128)
  strides: Sequence[int] = (1, 2, 2)
  kernel_size: int = 5

  @nn.compact
  def __call__(self, inputs: Array) -> Array:
    h = inputs
    for i, (feat, stride) in enumerate(zip(self.features, self.strides)):
      h = nn.Conv(feat, (self.kernel_size, self.kernel_size),
                  strides=(stride, stride), padding='SAME', name=f'conv{i}')(h)
      h = nn.relu(h)
    return h


class SegmentationValueNet(nn.Module):
  """Value network for segmentation (paper Fig. 2).

  concat(image, mask) -> conv64 5x5/1 -> conv128 5x5/2 -> conv128 5x5/2
  -> FC384 (dropout) -> FC192 -> FC1 (logit). With 24x24 crops and a 1-channel
  mask this has 2.46M parameters (the paper: "2.5 million").
  """

  conv_features: Sequence[int] = (64, 128, 128)
  conv_strides: Sequence[int] = (1, 2, 2)
  kernel_size: int = 5
  hidden: Sequence[int] = (384, 192)
  dropout_rate: float = 0.25  # keep probability 0.75

  @nn.compact
  def __call__(self, x: Array, y: Array, *, train: bool = False) -> Array:
    """Returns value logits of shape (B,) for images x and masks y."""
    inputs = jnp.concatenate([2.0 * x - 1.0, 2.0 * y - 1.0], axis=-1)
    h = ConvTower(self.conv_features, self.conv_strides, self.kernel_size,
                  name='tower')(inputs)
    h = h.reshape(h.shape[0], -1)
    for i, width in enumerate(self.hidden):
      h = nn.relu(nn.Dense(width, name=f'fc{i}')(h))
      if i == 0:
        h = nn.Dropout(self.dropout_rate, deterministic=not train)(h)
    return nn.Dense(1, name='out')(h)[:, 0]


class FCN(nn.Module):
  """Fully convolutional baseline with the value net's convolutional layers.

  Per-pixel class logits from a 1x1 convolution on the last conv layer,
  bilinearly upsampled to the input size (FCN-32s style; Long et al. 2015).
  Takes `y` only to share the call signature; it is ignored.
  """

  conv_features: Sequence[int] = (64, 128, 128)
  conv_strides: Sequence[int] = (1, 2, 2)
  kernel_size: int = 5
  num_classes: int = 1

  @nn.compact
  def __call__(self, x: Array, y: Array | None = None, *,
               train: bool = False) -> Array:
    """Returns per-pixel logits of shape (B, H, W, num_classes)."""
    del y, train
    h = ConvTower(self.conv_features, self.conv_strides, self.kernel_size,
                  name='tower')(2.0 * x - 1.0)
    logits = nn.Conv(self.num_classes, (1, 1), name='classifier')(h)
    batch, height, width, _ = x.shape
    return jax.image.resize(logits, (batch, height, width, self.num_classes),
                            method='bilinear')


def create_model(name: str, **kwargs) -> nn.Module:
  """Builds the model called `name` ('value_net' or 'fcn')."""
  models = {'value_net': SegmentationValueNet, 'fcn': FCN}
  if name not in models:
    raise ConfigError(f'unknown model {name!r}; choose one of {sorted(models)}')
  return models[name](**kwargs)


def init_params(model: nn.Module, rng: Array, crop_size: int,
                num_classes: int = 1) -> dict:
  """Initial parameters for square crops of `crop_size` pixels."""
  x = jnp.zeros((1, crop_size, crop_size, 3), jnp.float32)
  y = jnp.zeros((1, crop_size, crop_size, num_classes), jnp.float32)
  return model.init({'params': rng}, x, y, train=False)['params']
