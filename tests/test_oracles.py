"""Relaxed IoU and F1 (paper Eq. 6, 7, 9, 10)."""

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from dvn_jax import evaluate
from dvn_jax import oracles
from dvn_jax.errors import ConfigError


def test_hand_computed_binary():
  y = jnp.array([[1., 0., 1., 0.]])
  y_star = jnp.array([[1., 1., 0., 0.]])
  np.testing.assert_allclose(oracles.iou(y, y_star), [1 / 3], rtol=1e-6)
  np.testing.assert_allclose(oracles.f1(y, y_star), [0.5], rtol=1e-6)


def test_hand_computed_relaxed():
  y = jnp.array([[0.5, 0.2]])
  y_star = jnp.array([[1.0, 0.0]])
  # I = min(.5,1) + min(.2,0) = 0.5; U = max(.5,1) + max(.2,0) = 1.2
  np.testing.assert_allclose(oracles.iou(y, y_star), [0.5 / 1.2], rtol=1e-6)
  np.testing.assert_allclose(oracles.f1(y, y_star), [1.0 / 1.7], rtol=1e-6)


def test_equal_discrete_scores_on_binary_batches():
  rng = np.random.default_rng(0)
  y = rng.random((16, 8, 8, 1)) > 0.6
  y_star = rng.random((16, 8, 8, 1)) > 0.5
  expected_iou = evaluate.per_image_iou(y, y_star)
  tp = (y & y_star).sum(axis=(1, 2, 3))
  expected_f1 = 2 * tp / (y.sum(axis=(1, 2, 3)) + y_star.sum(axis=(1, 2, 3)))
  np.testing.assert_allclose(oracles.iou(y, y_star), expected_iou, rtol=1e-6)
  np.testing.assert_allclose(oracles.f1(y, y_star), expected_f1, rtol=1e-6)
  assert oracles.iou(y, y_star).shape == (16,)


@pytest.mark.parametrize('oracle', [oracles.iou, oracles.f1])
def test_empty_vs_empty_is_one_and_empty_vs_nonempty_is_zero(oracle):
  empty = jnp.zeros((1, 5))
  full = jnp.ones((1, 5))
  assert float(oracle(empty, empty)[0]) == 1.0
  assert float(oracle(empty, full)[0]) == 0.0
  assert float(oracle(full, empty)[0]) == 0.0


@pytest.mark.parametrize('oracle', [oracles.iou, oracles.f1])
@pytest.mark.parametrize('y,y_star', [
    (np.zeros((2, 6)), np.zeros((2, 6))),        # empty vs empty
    (np.full((2, 6), 0.5), np.full((2, 6), 0.5)),  # ties min/max
    (np.linspace(0, 1, 12).reshape(2, 6), np.eye(2, 6)),
])
def test_gradients_are_finite(oracle, y, y_star):
  grad = jax.grad(lambda y: oracle(y, jnp.asarray(y_star)).sum())(
      jnp.asarray(y, jnp.float32))
  assert np.all(np.isfinite(grad))


def test_relaxed_iou_is_maximal_at_the_ground_truth():
  rng = np.random.default_rng(1)
  y_star = (rng.random((1, 50)) > 0.5).astype(np.float32)
  perturbed = np.clip(y_star + 0.3 * rng.standard_normal((20, 50)), 0, 1)
  assert float(oracles.iou(y_star, y_star)[0]) == 1.0
  assert np.all(np.asarray(oracles.iou(perturbed, np.repeat(y_star, 20, 0))) < 1)


def test_unknown_oracle_is_a_config_error():
  with pytest.raises(ConfigError, match='unknown oracle'):
    oracles.get_oracle('dice')


class OracleVariantsTest(chex.TestCase):
  """The oracles give the same values jitted and not, and refuse outputs
  and truths of different shapes (a chex assertion at the boundary)."""

  @chex.variants(with_jit=True, without_jit=True)
  def test_values_with_and_without_jit(self):
    y = jnp.array([[0.5, 0.2], [1.0, 0.0]])
    y_star = jnp.array([[1.0, 0.0], [1.0, 0.0]])
    np.testing.assert_allclose(self.variant(oracles.iou)(y, y_star),
                               [0.5 / 1.2, 1.0], rtol=1e-6)
    np.testing.assert_allclose(self.variant(oracles.f1)(y, y_star),
                               [1.0 / 1.7, 1.0], rtol=1e-6)
    classes = jnp.array([[[[0.7, 0.3]]]])
    truth = jnp.array([[[[1.0, 0.0]]]])
    np.testing.assert_allclose(
        self.variant(oracles.pixel_accuracy)(classes, truth), [0.7],
        rtol=1e-6)

  @chex.variants(with_jit=True, without_jit=True)
  def test_shapes_that_differ_are_refused(self):
    with self.assertRaises(AssertionError):
      self.variant(oracles.iou)(jnp.zeros((2, 4)), jnp.zeros((2, 5)))
    with self.assertRaises(AssertionError):   # no batch axis
      self.variant(oracles.f1)(jnp.zeros(4), jnp.zeros(4))
