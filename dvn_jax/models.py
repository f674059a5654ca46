"""Value networks v(x, y; theta) and the FCN baseline (Flax linen).

Every network is used as a pure function: `model.apply({'params': params},
x, y, train=...)`. Images enter as float32 in [0, 1] (see
`input_pipeline.images_to_float`), masks as float32 in [0, 1] with one channel
per class (one channel for binary segmentation).

The value network returns the *logit* of the value; v = sigmoid(logit) lies in
(0, 1) like the IoU it regresses (paper Sec. 3.2, Eq. 11).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

from dvn_jax.errors import ConfigError

Array = jax.Array

# Non-linearities of the segmentation value net (`config.model.activation`).
# The paper's multi-label networks use softplus; its segmentation network's
# is not stated, and ReLU is the default here.
ACTIVATIONS = {'relu': nn.relu, 'softplus': nn.softplus, 'elu': nn.elu,
               'swish': nn.swish}


def get_activation(name: str):
  """The non-linearity called `name` (a key of ACTIVATIONS)."""
  if name not in ACTIVATIONS:
    raise ConfigError(f'unknown activation {name!r}; choose one of '
                      f'{sorted(ACTIVATIONS)}')
  return ACTIVATIONS[name]


class ConvTower(nn.Module):
  """The convolutional layers of the paper's Fig. 2 (an activation, ReLU by
  default, after each)."""

  features: Sequence[int] = (64, 128, 128)
  strides: Sequence[int] = (1, 2, 2)
  kernel_size: int = 5
  activation: Callable[[Array], Array] = nn.relu

  @nn.compact
  def __call__(self, inputs: Array, return_all: bool = False
               ) -> Array | list[Array]:
    """The last layer's activations, or every layer's with return_all."""
    h, outputs = inputs, []
    for i, (feat, stride) in enumerate(zip(self.features, self.strides)):
      h = nn.Conv(feat, (self.kernel_size, self.kernel_size),
                  strides=(stride, stride), padding='SAME', name=f'conv{i}')(h)
      h = self.activation(h)
      outputs.append(h)
    return outputs if return_all else h


def conv_chunk_size(chunk: int | None) -> int:
  """The slice size for `apply_in_chunks`; None picks one for the backend."""
  if chunk is None:
    return 8 if jax.default_backend() == 'cpu' else 0
  return chunk


def apply_in_chunks(fn, inputs, chunk: int):
  """fn on consecutive slices of `chunk` examples, concatenated.

  `inputs` and fn's result are arrays or pytrees of arrays, batch-major.

  The slices are separate ops in the compiled program, each small enough to
  stay in the CPU's cache; 0 (or a batch no larger than chunk) calls fn once.
  """
  batch = jax.tree.leaves(inputs)[0].shape[0]
  if not chunk or batch <= chunk:
    return fn(inputs)
  outputs = [fn(jax.tree.map(lambda a, i=i: a[i:i + chunk], inputs))
             for i in range(0, batch, chunk)]
  return jax.tree.map(lambda *parts: jnp.concatenate(parts, axis=0), *outputs)


def value_head(h: Array, hidden: Sequence[nn.Module], dropout: nn.Dropout,
               out: nn.Module, train: bool, activation=nn.relu) -> Array:
  """The FC head of the segmentation value nets: flatten, layers with the
  `activation` (dropout after the first), a linear logit (B,)."""
  h = h.reshape(h.shape[0], -1)
  for i, dense in enumerate(hidden):
    h = activation(dense(h))
    if i == 0:
      h = dropout(h, deterministic=not train)
  return out(h)[:, 0]


class TwoStageValueNet(nn.Module):
  """A value network in two stages (paper Sec. 6, future work).

  `encode(x)` computes the features of the input alone, once per inference
  run; `value_logits(features, y)` the value logits (B,), at every step
  (see `inference.ValueFn`). `__call__(x, y)` is the composition.
  """

  def encode(self, x: Array, *, train: bool = False):
    raise NotImplementedError

  def value_logits(self, features, y: Array, *, train: bool = False) -> Array:
    raise NotImplementedError

  def __call__(self, x: Array, y: Array, *, train: bool = False) -> Array:
    """Returns value logits of shape (B,) for inputs x and outputs y."""
    return self.value_logits(self.encode(x, train=train), y, train=train)


class SplitInputConv(nn.Module):
  """A 'SAME' convolution of concat(x, y) computed as conv(x) + conv(y).

  One kernel over all input channels (the parameters of an nn.Conv on the
  concatenation); `image_part(x)` convolves the first x-channels (with the
  bias) and `mask_part(y)` the rest, so the input's part is computed once
  per inference run and only the mask's part at every step. The sum equals
  the convolution of the concatenation.
  """

  features: int
  kernel_size: int
  in_channels: int      # x-channels + y-channels

  def setup(self):
    shape = (self.kernel_size, self.kernel_size, self.in_channels,
             self.features)
    self.kernel = self.param('kernel', nn.initializers.lecun_normal(), shape)
    self.bias = self.param('bias', nn.initializers.zeros_init(),
                           (self.features,))

  def _conv(self, inputs: Array, kernel: Array) -> Array:
    return jax.lax.conv_general_dilated(
        inputs, kernel, window_strides=(1, 1), padding='SAME',
        dimension_numbers=('NHWC', 'HWIO', 'NHWC'))

  def image_part(self, x: Array) -> Array:
    return self._conv(x, self.kernel[:, :, :x.shape[-1]]) + self.bias

  def mask_part(self, y: Array) -> Array:
    return self._conv(y, self.kernel[:, :, self.in_channels - y.shape[-1]:])


class SegmentationValueNet(TwoStageValueNet):
  """Value network for segmentation (paper Fig. 2).

  concat(image, mask) -> conv64 5x5/1 -> conv128 5x5/2 -> conv128 5x5/2
  -> FC384 (dropout) -> FC192 -> FC1 (logit). With 24x24 crops and a 1-channel
  mask this has 2.46M parameters (the paper: "2.5 million").

  The first convolution is linear in its input, so its image part is the
  encoding of x (computed once per inference run, `SplitInputConv`); the
  rest runs at every step. The function is the paper's network exactly.
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
  image_channels: int = 3
  mask_channels: int = 1
  activation: str = 'relu'  # a key of ACTIVATIONS, after every hidden layer

  def setup(self):
    if self.conv_strides[0] != 1:
      raise ConfigError('the value net\'s first convolution must have stride '
                        f'1, got {self.conv_strides[0]}')
    self.tower = _SplitInputTower(
        self.conv_features, self.conv_strides, self.kernel_size,
        self.image_channels + self.mask_channels,
        get_activation(self.activation))
    for i, width in enumerate(self.hidden):
      setattr(self, f'fc{i}', nn.Dense(width))
    self.dropout = nn.Dropout(self.dropout_rate)
    self.out = nn.Dense(1)

  def encode(self, x: Array, *, train: bool = False) -> Array:
    """The image's part of the first convolution (pre-activation)."""
    del train
    return apply_in_chunks(
        lambda images: self.tower.conv0.image_part(2.0 * images - 1.0), x,
        conv_chunk_size(self.conv_chunk))

  def value_logits(self, features: Array, y: Array, *,
                   train: bool = False) -> Array:
    h = apply_in_chunks(lambda inputs: self.tower(*inputs), (features, y),
                        conv_chunk_size(self.conv_chunk))
    hidden = [getattr(self, f'fc{i}') for i in range(len(self.hidden))]
    return value_head(h, hidden, self.dropout, self.out, train,
                      get_activation(self.activation))


class _SplitInputTower(nn.Module):
  """ConvTower whose first layer is a SplitInputConv (same parameter names:
  conv0, conv1, ...); called on (image part of conv0, mask)."""

  features: Sequence[int]
  strides: Sequence[int]
  kernel_size: int
  in_channels: int
  activation: Callable[[Array], Array] = nn.relu

  def setup(self):
    self.conv0 = SplitInputConv(self.features[0], self.kernel_size,
                                self.in_channels)
    for i in range(1, len(self.features)):
      stride = self.strides[i]
      setattr(self, f'conv{i}', nn.Conv(
          self.features[i], (self.kernel_size, self.kernel_size),
          strides=(stride, stride), padding='SAME'))

  def __call__(self, image_part: Array, y: Array) -> Array:
    h = self.activation(image_part + self.conv0.mask_part(2.0 * y - 1.0))
    for i in range(1, len(self.features)):
      h = self.activation(getattr(self, f'conv{i}')(h))
    return h


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
  activation: str = 'relu'   # a key of ACTIVATIONS

  @nn.compact
  def __call__(self, x: Array, y: Array | None = None, *,
               train: bool = False) -> Array:
    """Returns per-pixel logits of shape (B, H, W, num_classes)."""
    del y, train
    layers = ConvTower(self.conv_features, self.conv_strides, self.kernel_size,
                       get_activation(self.activation),
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


class TwoStreamValueNet(TwoStageValueNet):
  """Segmentation value net whose image features are computed once.

  The image stream is the paper's conv tower (Fig. 2) on x alone; a 1x1
  convolution of each of its layers gives a per-pixel scale and shift
  (gamma, beta). The mask stream, run at every inference step, is a
  narrower tower on y with the same kernels and strides:
      h_i = act(conv_i(h_{i-1}) * (1 + gamma_i) + beta_i),   h_0 = 2y - 1,
  then the value net's FC head. Per inference step it costs about a quarter
  of the multiply-adds of SegmentationValueNet with the default widths.
  """

  conv_features: Sequence[int] = (64, 128, 128)
  mask_features: Sequence[int] = (32, 64, 64)
  conv_strides: Sequence[int] = (1, 2, 2)
  kernel_size: int = 5
  hidden: Sequence[int] = (384, 192)
  dropout_rate: float = 0.25
  conv_chunk: int | None = None   # as SegmentationValueNet's
  activation: str = 'relu'        # a key of ACTIVATIONS

  def setup(self):
    if len(self.mask_features) != len(self.conv_features):
      raise ConfigError(
          f'mask_features {tuple(self.mask_features)} needs one width per '
          f'conv layer ({len(self.conv_features)})')
    k = (self.kernel_size, self.kernel_size)
    self.image_tower = ConvTower(self.conv_features, self.conv_strides,
                                 self.kernel_size,
                                 get_activation(self.activation))
    self.modulation = [nn.Conv(2 * width, (1, 1))
                       for width in self.mask_features]
    self.mask_convs = [nn.Conv(width, k, strides=(stride, stride),
                               padding='SAME')
                       for width, stride in zip(self.mask_features,
                                                self.conv_strides)]
    self.fc = [nn.Dense(width) for width in self.hidden]
    self.dropout = nn.Dropout(self.dropout_rate)
    self.out = nn.Dense(1)

  def encode(self, x: Array, *, train: bool = False) -> tuple[Array, ...]:
    """(gamma_i, beta_i) of each layer, stacked on the channel axis."""
    del train

    def image_stream(images):
      layers = self.image_tower(2.0 * images - 1.0, return_all=True)
      return tuple(m(h) for m, h in zip(self.modulation, layers))

    return apply_in_chunks(image_stream, x, conv_chunk_size(self.conv_chunk))

  def value_logits(self, features: tuple[Array, ...], y: Array, *,
                   train: bool = False) -> Array:
    activation = get_activation(self.activation)

    def mask_stream(inputs):
      scale_shift, masks = inputs
      h = 2.0 * masks - 1.0
      for conv, f in zip(self.mask_convs, scale_shift):
        gamma, beta = jnp.split(f, 2, axis=-1)
        h = activation(conv(h) * (1.0 + gamma) + beta)
      return h

    h = apply_in_chunks(mask_stream, (features, y),
                        conv_chunk_size(self.conv_chunk))
    return value_head(h, self.fc, self.dropout, self.out, train, activation)


class MultiLabelValueNet(TwoStageValueNet):
  """SPEN-style value network for multi-label outputs (paper Sec. 5.1).

  logit(x, y) = sum_i y_i b_i(x)  +  softplus(y W1) W2:
  a local energy linear in y, whose per-label weights b(x) come from the
  feature network on x, plus a global energy of y alone with
  `global_hidden` softplus units. v = sigmoid(logit). b(x) is the encoding
  of x: inference computes it once.
  """

  num_labels: int
  feature_sizes: Sequence[int] = (150,)
  global_hidden: int = 16
  dropout_rate: float = 0.0

  def setup(self):
    self.features = FeatureNet(self.feature_sizes, self.dropout_rate)
    self.local = nn.Dense(self.num_labels)
    self.global1 = nn.Dense(self.global_hidden, use_bias=False)
    self.global2 = nn.Dense(1, use_bias=False)

  def encode(self, x: Array, *, train: bool = False) -> Array:
    """The per-label weights b(x), (B, L)."""
    return self.local(self.features(x, train=train))

  def value_logits(self, features: Array, y: Array, *,
                   train: bool = False) -> Array:
    del train
    local = jnp.sum(y * features, axis=-1)
    return local + self.global2(nn.softplus(self.global1(y)))[:, 0]


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
