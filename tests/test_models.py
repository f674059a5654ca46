"""Value network (paper Fig. 2) and FCN baseline."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from dvn_jax import models
from dvn_jax.errors import ConfigError


def _count(params):
  return sum(p.size for p in jax.tree.leaves(params))


def test_value_net_shapes_and_parameter_count():
  model = models.create_model('value_net')
  params = models.init_params(model, jax.random.key(0), 24)
  x = jnp.zeros((5, 24, 24, 3))
  y = jnp.zeros((5, 24, 24, 1))
  assert model.apply({'params': params}, x, y).shape == (5,)
  # conv 5x5: 4->64, 64->128, 128->128; fc 4608->384->192->1
  expected = (5 * 5 * 4 * 64 + 64 + 5 * 5 * 64 * 128 + 128 + 5 * 5 * 128 * 128
              + 128 + 4608 * 384 + 384 + 384 * 192 + 192 + 192 + 1)
  assert _count(params) == expected == 2_465_089
  assert params['tower']['conv1']['kernel'].shape == (5, 5, 64, 128)


def test_value_net_dropout_only_in_training():
  model = models.create_model('value_net', dropout_rate=0.25)
  params = models.init_params(model, jax.random.key(0), 24)
  x = jax.random.uniform(jax.random.key(1), (4, 24, 24, 3))
  y = jax.random.uniform(jax.random.key(2), (4, 24, 24, 1))
  apply = lambda **kw: model.apply({'params': params}, x, y, **kw)
  np.testing.assert_array_equal(apply(train=False), apply(train=False))
  a = apply(train=True, rngs={'dropout': jax.random.key(3)})
  b = apply(train=True, rngs={'dropout': jax.random.key(4)})
  assert not np.allclose(a, b)


def test_value_depends_on_the_mask():
  model = models.create_model('value_net')
  params = models.init_params(model, jax.random.key(0), 24)
  x = jax.random.uniform(jax.random.key(1), (1, 24, 24, 3))
  zeros = model.apply({'params': params}, x, jnp.zeros((1, 24, 24, 1)))
  ones = model.apply({'params': params}, x, jnp.ones((1, 24, 24, 1)))
  assert not np.allclose(zeros, ones)


def test_fcn_shapes_share_the_conv_tower():
  fcn = models.create_model('fcn', num_classes=3)
  params = models.init_params(fcn, jax.random.key(0), 24, num_classes=3)
  logits = fcn.apply({'params': params}, jnp.zeros((2, 24, 24, 3)))
  assert logits.shape == (2, 24, 24, 3)
  assert params['tower']['conv0']['kernel'].shape == (5, 5, 3, 64)
  assert params['tower']['conv2']['kernel'].shape == (5, 5, 128, 128)


def test_fcn_skips_add_logits_from_every_conv_layer():
  fcn = models.create_model('fcn', skips=True)
  params = models.init_params(fcn, jax.random.key(0), 24)
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


def test_unknown_model_is_a_config_error():
  with pytest.raises(ConfigError, match='unknown model'):
    models.create_model('resnet')


def test_conv_chunks_change_nothing_but_speed():
  x = jax.random.uniform(jax.random.key(1), (20, 24, 24, 3))
  y = jax.random.uniform(jax.random.key(2), (20, 24, 24, 1))
  whole = models.SegmentationValueNet(conv_chunk=0)
  chunked = models.SegmentationValueNet(conv_chunk=8)   # 8 + 8 + 4
  params = models.init_params(whole, jax.random.key(0), 24)
  grad = lambda m: jax.jit(jax.grad(
      lambda y: m.apply({'params': params}, x, y).sum()))
  value = lambda m: jax.jit(lambda y: m.apply({'params': params}, x, y))
  np.testing.assert_allclose(value(chunked)(y), value(whole)(y), rtol=1e-5,
                             atol=1e-6)
  np.testing.assert_allclose(grad(chunked)(y), grad(whole)(y), rtol=1e-4,
                             atol=1e-7)
  assert models.conv_chunk_size(None) == 8       # the tests run on a CPU
