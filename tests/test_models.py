"""Value network (paper Fig. 2) and FCN baseline."""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import networks
from dvn_jax import models
from dvn_jax.errors import ConfigError


def _count(params):
  return sum(p.size for p in jax.tree.leaves(params))


def test_value_net_shapes_and_parameter_count():
  model = networks.create('value_net')
  params = networks.init(model, jax.random.key(0), 24)
  x = jnp.zeros((5, 24, 24, 3))
  y = jnp.zeros((5, 24, 24, 1))
  assert model.apply({'params': params}, x, y).shape == (5,)
  # conv 5x5: 4->64, 64->128, 128->128; fc 4608->384->192->1
  expected = (5 * 5 * 4 * 64 + 64 + 5 * 5 * 64 * 128 + 128 + 5 * 5 * 128 * 128
              + 128 + 4608 * 384 + 384 + 384 * 192 + 192 + 192 + 1)
  assert _count(params) == expected == 2_465_089
  assert params['tower']['conv1']['kernel'].shape == (5, 5, 64, 128)


def test_value_net_dropout_only_in_training():
  model = networks.create('value_net', dropout_rate=0.25)
  params = networks.init(model, jax.random.key(0), 24)
  x = jax.random.uniform(jax.random.key(1), (4, 24, 24, 3))
  y = jax.random.uniform(jax.random.key(2), (4, 24, 24, 1))
  apply = lambda **kw: model.apply({'params': params}, x, y, **kw)
  np.testing.assert_array_equal(apply(train=False), apply(train=False))
  a = apply(train=True, rngs={'dropout': jax.random.key(3)})
  b = apply(train=True, rngs={'dropout': jax.random.key(4)})
  assert not np.allclose(a, b)


def test_value_net_activation_is_used_everywhere_and_checked():
  """Same parameters, another non-linearity: another value, equal to the
  network written out by hand with softplus after every hidden layer."""
  relu = networks.create('value_net')
  soft = networks.create('value_net', activation='softplus')
  params = networks.init(relu, jax.random.key(0), 24)
  assert jax.tree.structure(params) == jax.tree.structure(
      networks.init(soft, jax.random.key(0), 24))
  x = jax.random.uniform(jax.random.key(1), (3, 24, 24, 3))
  y = jax.random.uniform(jax.random.key(2), (3, 24, 24, 1))
  v_relu = relu.apply({'params': params}, x, y)
  v_soft = soft.apply({'params': params}, x, y)
  assert not np.allclose(v_relu, v_soft)
  # Softplus on every layer, written out: conv0..2, fc0, fc1, out.
  t, f = params['tower'], params
  h = jnp.concatenate([2 * x - 1, 2 * y - 1], axis=-1)
  kernel0 = t['conv0']['kernel']
  for i, stride in enumerate((1, 2, 2)):
    k = kernel0 if i == 0 else t[f'conv{i}']['kernel']
    h = jax.lax.conv_general_dilated(
        h, k, (stride, stride), 'SAME',
        dimension_numbers=('NHWC', 'HWIO', 'NHWC')) + t[f'conv{i}']['bias']
    h = nn.softplus(h)
  h = h.reshape(3, -1)
  for i in range(2):
    h = nn.softplus(h @ f[f'fc{i}']['kernel'] + f[f'fc{i}']['bias'])
  logit = (h @ f['out']['kernel'] + f['out']['bias'])[:, 0]
  np.testing.assert_allclose(v_soft, logit, rtol=1e-4, atol=1e-4)
  with pytest.raises(ConfigError, match="unknown activation 'tanh'"):
    networks.init(networks.create('value_net', activation='tanh'),
                       jax.random.key(0), 24)


def test_value_depends_on_the_mask():
  model = networks.create('value_net')
  params = networks.init(model, jax.random.key(0), 24)
  x = jax.random.uniform(jax.random.key(1), (1, 24, 24, 3))
  zeros = model.apply({'params': params}, x, jnp.zeros((1, 24, 24, 1)))
  ones = model.apply({'params': params}, x, jnp.ones((1, 24, 24, 1)))
  assert not np.allclose(zeros, ones)


def test_fcn_shapes_share_the_conv_tower():
  fcn = networks.create('fcn', num_classes=3)
  params = networks.init(fcn, jax.random.key(0), 24, num_classes=3)
  logits = fcn.apply({'params': params}, jnp.zeros((2, 24, 24, 3)))
  assert logits.shape == (2, 24, 24, 3)
  assert params['tower']['conv0']['kernel'].shape == (5, 5, 3, 64)
  assert params['tower']['conv2']['kernel'].shape == (5, 5, 128, 128)


def test_fcn_skips_add_logits_from_every_conv_layer():
  fcn = networks.create('fcn', skips=True)
  params = networks.init(fcn, jax.random.key(0), 24)
  assert params['classifier0']['kernel'].shape == (1, 1, 64, 1)
  assert params['classifier1']['kernel'].shape == (1, 1, 128, 1)
  x = jax.random.uniform(jax.random.key(1), (2, 24, 24, 3))
  assert fcn.apply({'params': params}, x).shape == (2, 24, 24, 1)
  # The full-resolution skip lets a single pixel change its own logit
  # through a 1x1 path: zeroing classifier0 changes the output.
  zeroed = jax.tree.map(lambda p: p, params)
  zeroed['classifier0'] = jax.tree.map(jnp.zeros_like, params['classifier0'])
  assert not jnp.allclose(fcn.apply({'params': params}, x),
                          fcn.apply({'params': zeroed}, x))


def test_conv_chunks_change_nothing_but_speed():
  x = jax.random.uniform(jax.random.key(1), (20, 24, 24, 3))
  y = jax.random.uniform(jax.random.key(2), (20, 24, 24, 1))
  whole = models.SegmentationValueNet(conv_chunk=0)
  chunked = models.SegmentationValueNet(conv_chunk=8)   # 8 + 8 + 4
  params = networks.init(whole, jax.random.key(0), 24)
  grad = lambda m: jax.jit(jax.grad(
      lambda y: m.apply({'params': params}, x, y).sum()))
  value = lambda m: jax.jit(lambda y: m.apply({'params': params}, x, y))
  np.testing.assert_allclose(value(chunked)(y), value(whole)(y), rtol=1e-5,
                             atol=1e-6)
  np.testing.assert_allclose(grad(chunked)(y), grad(whole)(y), rtol=1e-4,
                             atol=1e-7)
  assert models.conv_chunk_size(None) == 8       # the tests run on a CPU


def test_two_stream_value_net_stages_compose_to_the_call():
  model = networks.create('two_stream_value_net', conv_chunk=0)
  params = networks.init(model, jax.random.key(0), 24)
  # image tower 3->64->128->128; mask tower 1->32->64->64; (gamma, beta) 1x1
  # convs 64->64, 128->128, 128->128; fc (6*6*64)->384->192->1.
  expected = (5 * 5 * 3 * 64 + 64 + 5 * 5 * 64 * 128 + 128
              + 5 * 5 * 128 * 128 + 128
              + 5 * 5 * 1 * 32 + 32 + 5 * 5 * 32 * 64 + 64 + 5 * 5 * 64 * 64
              + 64 + 64 * 64 + 64 + 2 * (128 * 128 + 128)
              + 2304 * 384 + 384 + 384 * 192 + 192 + 192 + 1)
  assert _count(params) == expected
  x = jax.random.uniform(jax.random.key(1), (20, 24, 24, 3))
  y = jax.random.uniform(jax.random.key(2), (20, 24, 24, 1))
  variables = {'params': params}
  whole = model.apply(variables, x, y)
  features = model.apply(variables, x, method='encode')
  assert [f.shape for f in features] == [(20, 24, 24, 64), (20, 12, 12, 128),
                                         (20, 6, 6, 128)]
  staged = model.apply(variables, features, y, method='value_logits')
  np.testing.assert_allclose(staged, whole, rtol=1e-6)
  # Slices of 8 (8 + 8 + 4) give the same values.
  chunked = networks.create('two_stream_value_net', conv_chunk=8)
  np.testing.assert_allclose(chunked.apply(variables, x, y), whole,
                             rtol=1e-5, atol=1e-6)
  # The value depends on both the image and the mask.
  assert not np.allclose(model.apply(variables, x, 1 - y), whole)
  assert not np.allclose(model.apply(variables, 1 - x, y), whole)


def test_two_stream_needs_one_mask_width_per_conv_layer():
  model = networks.create('two_stream_value_net', mask_features=(8, 8))
  with pytest.raises(ConfigError, match='one width per conv layer'):
    networks.init(model, jax.random.key(0), 24)


class _ConcatValueNet(nn.Module):
  """Paper Fig. 2 written plainly: one conv tower on concat(x, y)."""

  @nn.compact
  def __call__(self, x, y, train=False):
    del train
    h = models.ConvTower(name='tower')(
        jnp.concatenate([2 * x - 1, 2 * y - 1], axis=-1))
    h = h.reshape(h.shape[0], -1)
    h = nn.relu(nn.Dense(384, name='fc0')(h))
    h = nn.relu(nn.Dense(192, name='fc1')(h))
    return nn.Dense(1, name='out')(h)[:, 0]


@pytest.mark.parametrize('classes', [1, 3])
def test_split_first_convolution_is_the_concatenated_network(classes):
  """encode(x) (the image's part of conv0) then value_logits(., y) is the
  network on concat(x, y), with the same parameter tree and initial values."""
  model = networks.create('value_net', mask_channels=classes,
                              conv_chunk=0)
  params = networks.init(model, jax.random.key(0), 24, classes)
  reference = _ConcatValueNet()
  ref_params = networks.init(reference, jax.random.key(0), 24, classes)
  assert jax.tree.all(jax.tree.map(np.array_equal, params, ref_params))
  x = jax.random.uniform(jax.random.key(1), (6, 24, 24, 3))
  y = jax.random.uniform(jax.random.key(2), (6, 24, 24, classes))
  variables = {'params': params}
  features = model.apply(variables, x, method='encode')
  assert features.shape == (6, 24, 24, 64)
  expected = reference.apply(variables, x, y)
  np.testing.assert_allclose(
      model.apply(variables, features, y, method='value_logits'), expected,
      rtol=1e-5, atol=1e-6)
  np.testing.assert_allclose(model.apply(variables, x, y), expected,
                             rtol=1e-5, atol=1e-6)
  grad = lambda f: jax.grad(lambda y: f(y).sum())(y)
  np.testing.assert_allclose(
      grad(lambda y: model.apply(variables, features, y,
                                 method='value_logits')),
      grad(lambda y: reference.apply(variables, x, y)), rtol=1e-4, atol=1e-7)
