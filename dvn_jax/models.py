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
  def __call__(self, inputs: Array, return_all: bool = False
               ) -> Array | list[Array]:
    """The last layer's activations, or every layer's with return_all."""
    h, outputs = inputs, []
    for i, (feat, stride) in enumerate(zip(self.features, self.strides)):
      h = nn.Conv(feat, (self.kernel_size, self.kernel_size),
                  strides=(stride, stride), padding='SAME', name=f'conv{i}')(h)
      h = nn.relu(h)
      outputs.append(h)
    return outputs if return_all else h


def conv_chunk_size(chunk: int | None) -> int:
  """The slice size for `apply_in_chunks`; None picks one for the backend."""
  if chunk is None:
    return 8 if jax.default_backend() == 'cpu' else 0
  return chunk


def apply_in_chunks(fn, inputs: Array, chunk: int) -> Array:
  """fn on consecutive slices of `chunk` examples, concatenated.

  The slices are separate ops in the compiled program, each small enough to
  stay in the CPU's cache; 0 (or a batch no larger than chunk) calls fn once.
  """
  batch = inputs.shape[0]
  if not chunk or batch <= chunk:
    return fn(inputs)
  return jnp.concatenate([fn(inputs[i:i + chunk])
                          for i in range(0, batch, chunk)], axis=0)


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
  # Convolutions run on slices of this many examples (0: the whole batch at
  # once; None: 8 on a CPU, where larger slices fall out of the cache and
  # cost up to 2x more per example, and 0 elsewhere). The result is the same.
  conv_chunk: int | None = None

  @nn.compact
  def __call__(self, x: Array, y: Array, *, train: bool = False) -> Array:
    """Returns value logits of shape (B,) for images x and masks y."""
    inputs = jnp.concatenate([2.0 * x - 1.0, 2.0 * y - 1.0], axis=-1)
    tower = ConvTower(self.conv_features, self.conv_strides, self.kernel_size,
                      name='tower')
    h = apply_in_chunks(tower, inputs, conv_chunk_size(self.conv_chunk))
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
  With `skips`, each earlier layer adds its own 1x1-convolution logits at
  its resolution on the way up (FCN-8s style). Takes `y` only to share the
  call signature; it is ignored.
  """

  conv_features: Sequence[int] = (64, 128, 128)
  conv_strides: Sequence[int] = (1, 2, 2)
  kernel_size: int = 5
  num_classes: int = 1
  skips: bool = False

  @nn.compact
  def __call__(self, x: Array, y: Array | None = None, *,
               train: bool = False) -> Array:
    """Returns per-pixel logits of shape (B, H, W, num_classes)."""
    del y, train
    layers = ConvTower(self.conv_features, self.conv_strides, self.kernel_size,
                       name='tower')(2.0 * x - 1.0, return_all=True)
    logits = nn.Conv(self.num_classes, (1, 1), name='classifier')(layers[-1])
    if self.skips:
      for i in reversed(range(len(layers) - 1)):
        h = layers[i]
        logits = jax.image.resize(logits, h.shape[:3] + (self.num_classes,),
                                  method='bilinear')
        logits = logits + nn.Conv(self.num_classes, (1, 1),
                                  name=f'classifier{i}')(h)
    batch, height, width, _ = x.shape
    return jax.image.resize(logits, (batch, height, width, self.num_classes),
                            method='bilinear')


class FeatureNet(nn.Module):
  """Softplus layers on the input features (SPEN's feature network)."""

  sizes: Sequence[int] = (150,)
  dropout_rate: float = 0.0

  @nn.compact
  def __call__(self, x: Array, *, train: bool = False) -> Array:
    h = x
    for i, size in enumerate(self.sizes):
      h = nn.softplus(nn.Dense(size, name=f'dense{i}')(h))
      h = nn.Dropout(self.dropout_rate, deterministic=not train)(h)
    return h


class MultiLabelValueNet(nn.Module):
  """SPEN-style value network for multi-label outputs (paper Sec. 5.1).

  logit(x, y) = sum_i y_i b_i(x)  +  softplus(y W1) W2:
  a local energy linear in y, whose per-label weights b(x) come from the
  feature network on x, plus a global energy of y alone with
  `global_hidden` softplus units. v = sigmoid(logit).
  """

  num_labels: int
  feature_sizes: Sequence[int] = (150,)
  global_hidden: int = 16
  dropout_rate: float = 0.0

  @nn.compact
  def __call__(self, x: Array, y: Array, *, train: bool = False) -> Array:
    """Returns value logits of shape (B,) for features x and labels y."""
    h = FeatureNet(self.feature_sizes, self.dropout_rate,
                   name='features')(x, train=train)
    local = jnp.sum(y * nn.Dense(self.num_labels, name='local')(h), axis=-1)
    g = nn.softplus(nn.Dense(self.global_hidden, use_bias=False,
                             name='global1')(y))
    return local + nn.Dense(1, use_bias=False, name='global2')(g)[:, 0]


class MultiLabelClassifier(nn.Module):
  """Per-label logistic regression (no hidden layer) or an MLP baseline.

  Takes `y` only to share the call signature; it is ignored.
  """

  num_labels: int
  feature_sizes: Sequence[int] = ()
  dropout_rate: float = 0.0

  @nn.compact
  def __call__(self, x: Array, y: Array | None = None, *,
               train: bool = False) -> Array:
    """Returns per-label logits of shape (B, num_labels)."""
    del y
    h = FeatureNet(self.feature_sizes, self.dropout_rate,
                   name='features')(x, train=train)
    return nn.Dense(self.num_labels, name='out')(h)


MODELS = {'value_net': SegmentationValueNet, 'fcn': FCN,
          'mlc_value_net': MultiLabelValueNet,
          'mlc_classifier': MultiLabelClassifier}
# Models that predict per-output logits directly (trained with per-output
# cross-entropy, no inference): the baselines.
CLASSIFIERS = frozenset({'fcn', 'mlc_classifier'})


def create_model(name: str, **kwargs) -> nn.Module:
  """Builds the model called `name` (a key of MODELS)."""
  if name not in MODELS:
    raise ConfigError(f'unknown model {name!r}; choose one of {sorted(MODELS)}')
  try:
    return MODELS[name](**kwargs)
  except TypeError as e:
    raise ConfigError(f'bad config.model for {name!r}: {e}') from None


def init_params_for_shapes(model: nn.Module, rng: Array,
                           x_shape: tuple[int, ...],
                           y_shape: tuple[int, ...]) -> dict:
  """Initial parameters for one input of shape x_shape and output y_shape."""
  x = jnp.zeros((1,) + tuple(x_shape), jnp.float32)
  y = jnp.zeros((1,) + tuple(y_shape), jnp.float32)
  return model.init({'params': rng}, x, y, train=False)['params']


def init_params(model: nn.Module, rng: Array, crop_size: int,
                num_classes: int = 1) -> dict:
  """Initial parameters for square crops of `crop_size` pixels."""
  return init_params_for_shapes(model, rng, (crop_size, crop_size, 3),
                                (crop_size, crop_size, num_classes))
