"""Gradient-based inference (Eq. 8), crops, joint inference."""

import dataclasses

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import networks
from dvn_jax import inference
from dvn_jax.errors import ConfigError


def test_climbs_a_concave_function_to_its_projected_optimum():
  target = jnp.array([[-0.5, 0.3, 0.9, 1.7]])   # optimum outside the box
  objective = lambda y: -jnp.sum((y - target) ** 2, axis=1)
  spec = inference.AscentSpec(num_steps=60, step_size=0.2)
  y, trajectory = inference.gradient_ascent(
      objective, jnp.zeros_like(target), spec, return_trajectory=True)
  np.testing.assert_allclose(y, [[0.0, 0.3, 0.9, 1.0]], atol=1e-5)
  assert trajectory.shape == (61, 1, 4)
  np.testing.assert_array_equal(trajectory[0], 0.0)
  np.testing.assert_array_equal(trajectory[-1], y)
  values = np.asarray(jax.vmap(objective)(trajectory))[:, 0]
  assert np.all(np.diff(values) >= -1e-6)  # ascent never goes down here
  assert np.all((trajectory >= 0) & (trajectory <= 1))


@pytest.mark.parametrize('unroll', [1, 4, True])
def test_unroll_does_not_change_the_result(unroll):
  target = jnp.array([[0.2, 0.8]])
  objective = lambda y: -jnp.sum((y - target) ** 2, axis=1)
  y, _ = inference.gradient_ascent(
      objective, jnp.zeros_like(target),
      inference.AscentSpec(num_steps=7, step_size=0.1, unroll=unroll))
  reference = jnp.zeros_like(target)
  for _ in range(7):
    reference = jnp.clip(reference + 0.1 * 2 * (target - reference), 0, 1)
  np.testing.assert_allclose(y, reference, rtol=1e-6)


def test_bad_ascent_settings_are_config_errors():
  with pytest.raises(ConfigError, match='num_steps'):
    inference.AscentSpec(num_steps=0)
  with pytest.raises(ConfigError, match='projection'):
    inference.AscentSpec(projection='sphere')
  with pytest.raises(ConfigError, match='noise_std'):
    inference.AscentSpec(noise_std=-1.0)


@pytest.mark.parametrize('num_crops,starts', [
    (1, [4]), (9, [0, 4, 8]), (25, [0, 2, 4, 6, 8]), (36, [0, 2, 3, 5, 6, 8])])
def test_crop_grid_covers_every_pixel(num_crops, starts):
  offsets = inference.crop_offsets(32, 24, num_crops)
  assert offsets.shape == (num_crops, 2)
  assert sorted(set(offsets[:, 0])) == starts
  if num_crops > 1:
    assert inference.crop_coverage(offsets, 24, 32).min() >= 1


def test_bad_crop_grids_are_config_errors():
  with pytest.raises(ConfigError, match='square'):
    inference.crop_offsets(32, 24, 10)
  with pytest.raises(ConfigError, match='larger'):
    inference.crop_offsets(32, 40, 9)
  with pytest.raises(ConfigError, match='cover'):
    inference.crop_coverage(np.array([[0, 0]]), 24, 32)


def test_extract_and_paste_are_transposes():
  offsets = inference.crop_offsets(32, 24, 9)
  a = jax.random.normal(jax.random.key(0), (2, 32, 32, 1))
  b = jax.random.normal(jax.random.key(1), (2, 9, 24, 24, 1))
  crops = inference.extract_crops(a, offsets, 24)
  np.testing.assert_array_equal(crops[1, 4], a[1, 4:28, 4:28])
  lhs = jnp.vdot(crops, b)
  rhs = jnp.vdot(a, inference.paste_crops(b, offsets, 32))
  np.testing.assert_allclose(lhs, rhs, rtol=1e-5)


def _random_value_net():
  model = networks.create('value_net')
  params = networks.init(model, jax.random.key(0), 24)
  # Scale up the output layer so that gradients are not tiny.
  params['out']['kernel'] = params['out']['kernel'] * 30.0
  return lambda x, y: model.apply({'params': params}, x, y)


def test_joint_inference_matches_a_plain_loop_over_36_crops():
  logit_fn = _random_value_net()
  images = jax.random.uniform(jax.random.key(1), (2, 32, 32, 3))
  # A step size small enough that the map is not chaotic (at 50, float
  # rounding differences grow 1000x a step), large enough to move the masks.
  spec = inference.AscentSpec(num_steps=3, step_size=20.0)
  offsets = inference.crop_offsets(32, 24, 36)
  y, _ = inference.infer_joint(logit_fn, images, offsets, 24, 1, spec)

  # Reference: Python loops over steps and crops, static slices.
  grad_one = jax.jit(jax.grad(
      lambda y, x: jnp.sum(jax.nn.sigmoid(logit_fn(x, y)))))
  coverage = np.zeros((32, 32, 1))
  for r, c in offsets:
    coverage[r:r + 24, c:c + 24] += 1
  masks = np.zeros((2, 32, 32, 1), np.float32)
  for _ in range(3):
    grads = np.zeros_like(masks)
    for r, c in offsets:
      grads[:, r:r + 24, c:c + 24] += np.asarray(grad_one(
          masks[:, r:r + 24, c:c + 24], images[:, r:r + 24, c:c + 24]))
    masks = np.clip(masks + 20.0 * grads / coverage, 0.0, 1.0)
  assert masks.mean() > 0.02 and (masks > 0).mean() > 0.3  # masks moved
  np.testing.assert_allclose(y, masks, atol=1e-5)


def test_mask_averaging_matches_a_plain_loop_over_crops():
  logit_fn = _random_value_net()
  images = jax.random.uniform(jax.random.key(2), (1, 32, 32, 3))
  spec = inference.AscentSpec(num_steps=2, step_size=50.0)
  offsets = inference.crop_offsets(32, 24, 9)
  y, trajectory = inference.infer_averaged(logit_fn, images, offsets, 24, 1,
                                           spec, return_trajectory=True)
  total = np.zeros((1, 32, 32, 1))
  count = np.zeros((1, 32, 32, 1))
  for r, c in offsets:
    crop_y, _ = inference.infer(logit_fn, images[:, r:r + 24, c:c + 24],
                                jnp.zeros((1, 24, 24, 1)), spec)
    total[:, r:r + 24, c:c + 24] += np.asarray(crop_y)
    count[:, r:r + 24, c:c + 24] += 1
  np.testing.assert_allclose(y, total / count, atol=1e-5)
  assert trajectory.shape == (3, 1, 32, 32, 1)
  np.testing.assert_allclose(trajectory[-1], y, atol=1e-6)


def _red_channel(x):
  """A stand-in start network (config.start): y(0) = the red channel."""
  return x[..., :1]


def _nine_crops(value_fn, images, combine, spec):
  """Masks of 32 x 32 images from nine 24 x 24 crops."""
  return inference.infer_full_image(value_fn, images, crop_size=24,
                                    num_crops=9, combine=combine,
                                    num_classes=1, spec=spec)[0]


@pytest.mark.parametrize('combine', ['average', 'joint'])
def test_a_flat_value_net_leaves_each_mask_at_its_start(combine):
  """No ascent step moves y when v is flat: the masks are y(0), which is
  the start network's output on the crops, put together as the crops are."""
  flat = inference.ValueFn(logits=lambda f, y: jnp.zeros(y.shape[0]),
                           start=_red_channel)
  images = jax.random.uniform(jax.random.key(3), (2, 32, 32, 3))
  spec = inference.AscentSpec(num_steps=2, step_size=50.0)
  np.testing.assert_allclose(_nine_crops(flat, images, combine, spec),
                             images[..., :1], atol=1e-6)
  no_start = dataclasses.replace(flat, start=None)
  np.testing.assert_array_equal(
      _nine_crops(no_start, images, combine, spec), 0.0)


@pytest.mark.parametrize('combine', ['average', 'joint'])
def test_a_prior_moves_a_flat_value_nets_masks_by_its_coefficients(combine):
  """With v flat, each step adds step_size * c(x) (the prior's gradient):
  after T steps from y = 0 the masks are clip(T * step * c, 0, 1), the
  crops put together; no prior leaves them at 0."""
  coefficients = lambda x: 0.01 * (x[..., :1] - 0.5)
  flat = inference.ValueFn(logits=lambda f, y: jnp.zeros(y.shape[0]),
                           prior=coefficients)
  images = jax.random.uniform(jax.random.key(5), (2, 32, 32, 3))
  spec = inference.AscentSpec(num_steps=3, step_size=50.0)
  expected = np.clip(3 * 50.0 * coefficients(images), 0.0, 1.0)
  assert 0.1 < float((expected > 0).mean()) < 0.9   # both signs present
  np.testing.assert_allclose(_nine_crops(flat, images, combine, spec),
                             expected, atol=1e-5)
  without = _nine_crops(dataclasses.replace(flat, prior=None), images,
                        combine, spec)
  np.testing.assert_array_equal(without, 0.0)


def test_mask_averaging_ascends_each_crop_from_its_start():
  net = _random_value_net()
  started = inference.ValueFn(logits=net, start=lambda x: 2.0 * x[..., :1])
  images = jax.random.uniform(jax.random.key(4), (1, 32, 32, 3))
  spec = inference.AscentSpec(num_steps=2, step_size=20.0)
  offsets = inference.crop_offsets(32, 24, 4)
  y, _ = inference.infer_averaged(started, images, offsets, 24, 1, spec)
  total = np.zeros((1, 32, 32, 1))
  count = np.zeros((1, 32, 32, 1))
  for r, c in offsets:
    crop = images[:, r:r + 24, c:c + 24]
    y0 = jnp.clip(2.0 * crop[..., :1], 0.0, 1.0)   # projected onto the box
    crop_y, _ = inference.infer(net, crop, y0, spec)
    assert not np.allclose(crop_y, y0, atol=1e-3)   # the ascent moved
    total[:, r:r + 24, c:c + 24] += np.asarray(crop_y)
    count[:, r:r + 24, c:c + 24] += 1
  np.testing.assert_allclose(y, total / count, atol=1e-5)


def test_a_start_of_the_wrong_shape_is_a_config_error():
  bad = inference.ValueFn(logits=lambda f, y: jnp.zeros(y.shape[0]),
                          start=lambda x: x)   # 3 channels, not 1
  with pytest.raises(ConfigError, match='start network gives outputs'):
    inference.initial_point(bad, jnp.zeros((2, 24, 24, 3)), (2, 24, 24, 1),
                            inference.AscentSpec())


def test_full_image_inference_compiles_once_per_shape():
  logit_fn = _random_value_net()
  spec = inference.AscentSpec(num_steps=2, step_size=1.0)
  predict = jax.jit(lambda images: inference.infer_full_image(
      logit_fn, images, crop_size=24, num_crops=9, combine='joint',
      num_classes=1, spec=spec)[0])
  for seed in range(3):
    predict(jax.random.uniform(jax.random.key(seed), (2, 32, 32, 3)))
  assert predict._cache_size() == 1
  predict(jnp.zeros((3, 32, 32, 3)))
  assert predict._cache_size() == 2


def test_langevin_noise_is_keyed_and_off_by_default():
  w = jnp.linspace(-1.0, 1.0, 12).reshape(1, 12)
  objective = lambda y: jnp.sum(y * w, axis=1)
  y0 = jnp.full((3, 12), 0.5)
  plain = inference.AscentSpec(num_steps=4, step_size=0.1)
  noisy = inference.AscentSpec(num_steps=4, step_size=0.1, noise_std=0.2)
  without, _ = inference.gradient_ascent(objective, y0, plain)
  key = jax.random.key(3)
  a, _ = inference.gradient_ascent(objective, y0, noisy, rng=key)
  b, _ = inference.gradient_ascent(objective, y0, noisy, rng=key)
  c, _ = inference.gradient_ascent(objective, y0, noisy,
                                   rng=jax.random.key(4))
  np.testing.assert_array_equal(a, b)                 # same key, same path
  assert float(jnp.abs(a - c).max()) > 0.01           # another key differs
  assert float(jnp.abs(a - without).max()) > 0.01
  assert float(a.min()) >= 0 and float(a.max()) <= 1  # still projected
  with pytest.raises(ConfigError, match='needs a random key'):
    inference.gradient_ascent(objective, y0, noisy)
  with pytest.raises(ConfigError, match='noise_std must be >= 0'):
    inference.AscentSpec(noise_std=-1.0)


def _scan_bodies(jaxpr) -> list:
  return [str(e.params['jaxpr']) for e in jaxpr.jaxpr.eqns
          if e.primitive.name == 'scan']


@pytest.mark.parametrize('combine', ['joint', 'average'])
def test_two_stage_value_fn_encodes_the_input_once_outside_the_steps(
    combine):
  """ValueFn.encode runs before the ascent loop, not at every step, and
  gives the same masks as the same network called whole."""
  weights = jax.random.normal(jax.random.key(0), (8, 8, 1))
  encode = lambda x: jnp.cos(x[..., :1])      # cos marks the encoder
  logits = lambda f, y: jnp.sum(f * y * weights[:f.shape[1], :f.shape[2]]
                                - y ** 2, axis=(1, 2, 3))
  staged = inference.ValueFn(logits=logits, encode=encode)
  whole = lambda x, y: logits(encode(x), y)
  images = jax.random.uniform(jax.random.key(1), (2, 10, 10, 3))
  spec = inference.AscentSpec(num_steps=4, step_size=0.5, unroll=1)
  run = lambda fn: inference.infer_full_image(
      fn, images, crop_size=8, num_crops=4, combine=combine, num_classes=1,
      spec=spec)[0]
  np.testing.assert_allclose(run(staged), run(whole), rtol=1e-6)
  staged_bodies = _scan_bodies(jax.make_jaxpr(lambda: run(staged))())
  whole_bodies = _scan_bodies(jax.make_jaxpr(lambda: run(whole))())
  assert len(staged_bodies) == len(whole_bodies) == 1
  assert 'cos' in whole_bodies[0] and 'cos' not in staged_bodies[0]


class AscentVariantsTest(chex.TestCase):
  """Projections and the ascent give the same results jitted and not; an
  objective that is not one value per example is refused at its boundary."""

  @chex.variants(with_jit=True, without_jit=True)
  def test_projections_with_and_without_jit(self):
    y = jnp.array([[-0.5, 0.3, 1.7], [0.2, 0.2, 0.2]])
    np.testing.assert_allclose(self.variant(inference.project_box)(y),
                               [[0.0, 0.3, 1.0], [0.2, 0.2, 0.2]])
    simplex = self.variant(inference.project_simplex)(y)
    np.testing.assert_allclose(simplex.sum(axis=-1), [1.0, 1.0], rtol=1e-6)
    np.testing.assert_allclose(simplex[1], [1 / 3] * 3, rtol=1e-6)

  @chex.variants(with_jit=True, without_jit=True)
  def test_ascent_with_and_without_jit(self):
    target = jnp.array([[0.2, 0.9], [0.6, 0.1]])
    objective = lambda y: -jnp.sum((y - target) ** 2, axis=1)
    spec = inference.AscentSpec(num_steps=50, step_size=0.2)
    ascend = self.variant(
        lambda y0: inference.gradient_ascent(objective, y0, spec)[0])
    np.testing.assert_allclose(ascend(jnp.zeros_like(target)), target,
                               atol=1e-4)
    total = lambda y: -jnp.sum((y - target) ** 2)   # one number, not (B,)
    with self.assertRaises(AssertionError):
      self.variant(lambda y0: inference.gradient_ascent(total, y0, spec)[0])(
          jnp.zeros_like(target))
