"""Training-tuple generators (paper Sec. 3.3)."""

import dataclasses

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import networks
from dvn_jax import inference
from dvn_jax import losses
from dvn_jax import oracles
from dvn_jax import tuples
from dvn_jax.errors import ConfigError


def value_net_and_batch(count: int, crop: int, ink: float):
  """(logit_fn of a random value net, x (count, crop, crop, 3), binary y*
  with about 1 - ink of its pixels on)."""
  model = networks.create('value_net')
  params = networks.init(model, jax.random.key(0), crop)
  logit_fn = lambda x, y: model.apply({'params': params}, x, y)
  x = jax.random.uniform(jax.random.key(1), (count, crop, crop, 3))
  y_star = (jax.random.uniform(jax.random.key(2), (count, crop, crop, 1))
            > ink).astype(jnp.float32)
  return logit_fn, x, y_star


@pytest.fixture(scope='module')
def setup():
  return value_net_and_batch(6, 24, 0.6)


@pytest.mark.parametrize('generator', tuples.GENERATORS)
@pytest.mark.parametrize('oracle', ['iou', 'f1'])
def test_each_generator_returns_the_oracle_value(setup, generator, oracle):
  logit_fn, x, y_star = setup
  spec = tuples.TupleSpec(
      mix=((generator, 1.0),), oracle=oracle,
      inference_ascent=inference.AscentSpec(num_steps=3, step_size=100.0),
      adversarial_ascent=inference.AscentSpec(num_steps=2, step_size=100.0),
      temperature=0.5)
  x_out, y, v = tuples.generate_tuples(jax.random.key(3), logit_fn, x, y_star,
                                       spec)
  assert y.shape == y_star.shape and v.shape == (6,)
  np.testing.assert_array_equal(x_out, x)
  assert np.all((y >= 0) & (y <= 1))
  np.testing.assert_allclose(v, oracles.get_oracle(oracle)(y, y_star),
                             rtol=1e-6)
  if generator == 'ground_truth':
    np.testing.assert_array_equal(v, 1.0)
  if generator == 'stratified':
    np.testing.assert_array_equal(y, np.round(y))  # binary masks


def test_mixed_batch_is_split_in_order(setup):
  logit_fn, x, y_star = setup
  spec = tuples.TupleSpec(mix=(('ground_truth', 1.0), ('stratified', 2.0)))
  _, y, v = tuples.generate_tuples(jax.random.key(0), logit_fn, x, y_star, spec)
  np.testing.assert_array_equal(y[:2], y_star[:2])
  np.testing.assert_array_equal(v[:2], 1.0)
  assert tuples.split_sizes(6, spec.mix) == [('ground_truth', 2),
                                              ('stratified', 4)]
  assert sum(n for _, n in tuples.split_sizes(7, (('a', 1), ('b', 1), ('c', 1)))
             ) == 7


def test_stratified_values_follow_the_exponential_density():
  tau = 0.05
  v = np.asarray(tuples.sample_stratified_values(jax.random.key(0), (40000,),
                                                 tau))
  assert v.min() >= 0.0 and v.max() <= 1.0
  expected_mean = 1.0 - tau + 1.0 / np.expm1(1.0 / tau)
  assert abs(v.mean() - expected_mean) < 3e-3
  assert abs(np.median(v) - (1 + tau * np.log(0.5 + 0.5 * np.exp(-1 / tau)))
             ) < 3e-3


def test_stratified_samples_concentrate_at_the_ground_truth_as_tau_shrinks():
  y_star = (jax.random.uniform(jax.random.key(5), (64, 24, 24, 1)) > 0.7
            ).astype(jnp.float32)
  mean_value = {}
  for tau in (1e-4, 0.05, 1.0):
    spec = tuples.TupleSpec(mix=(('stratified', 1.0),), temperature=tau)
    y = tuples.stratified_outputs(jax.random.key(6), y_star, spec)
    mean_value[tau] = float(oracles.iou(y, y_star).mean())
  assert mean_value[1e-4] > 0.995
  assert 0.9 < mean_value[0.05] < 0.98   # the density's mean is 0.95
  assert mean_value[1.0] < 0.7           # the density's mean is 0.58


def test_adversarial_step_increases_the_regression_loss(setup):
  logit_fn, x, y_star = setup
  spec = tuples.TupleSpec(
      mix=(('adversarial', 1.0),), adversarial_start='ground_truth',
      adversarial_ascent=inference.AscentSpec(num_steps=1, step_size=1e-2))
  y = tuples.adversarial_outputs(jax.random.key(0), logit_fn, x, y_star, spec)
  loss = lambda y: losses.cross_entropy(logit_fn(x, y), oracles.iou(y, y_star))
  assert float(loss(y).sum()) > float(loss(y_star).sum())


def _red_channel(x):
  """A stand-in start network (config.start): y(0) = the red channel."""
  return x[..., :1]


def _with_start(logit_fn, started: bool):
  """logit_fn, or logit_fn whose ascents start at `_red_channel`."""
  if not started:
    return logit_fn
  return inference.ValueFn(logits=logit_fn, start=_red_channel)


@pytest.mark.parametrize('started', [False, True])
def test_inference_tuples_lie_on_the_trajectory(setup, started):
  plain_fn, x, _ = setup
  logit_fn = _with_start(plain_fn, started)
  ascent = inference.AscentSpec(num_steps=4, step_size=100.0)
  spec = tuples.TupleSpec(mix=(('inference', 1.0),), inference_ascent=ascent)
  y = tuples.inference_outputs(jax.random.key(1), logit_fn, x,
                                jnp.zeros(x.shape[:-1] + (1,)), spec)
  y0 = _red_channel(x) if started else jnp.zeros_like(y)
  _, trajectory = inference.infer(plain_fn, x, y0, ascent,
                                  return_trajectory=True)
  assert not np.allclose(trajectory[1], y0, atol=1e-3)   # the ascent moved
  for i in range(len(x)):
    distances = [float(jnp.abs(trajectory[t, i] - y[i]).max())
                 for t in range(1, 5)]
    assert min(distances) < 1e-6


def test_several_points_per_trajectory_reuse_inputs(setup):
  logit_fn, x, y_star = setup
  ascent = inference.AscentSpec(num_steps=4, step_size=100.0)
  spec = tuples.TupleSpec(mix=(('inference', 1.0),), inference_ascent=ascent,
                          inference_points=3)
  x_out, y, v = tuples.generate_tuples(jax.random.key(2), logit_fn, x, y_star,
                                       spec)
  assert y.shape == y_star.shape  # 6 tuples from 2 trajectories
  np.testing.assert_array_equal(x_out, jnp.repeat(x[:2], 3, axis=0))
  np.testing.assert_allclose(v, oracles.iou(y, jnp.repeat(y_star[:2], 3, 0)),
                             rtol=1e-6)
  _, trajectory = inference.infer(logit_fn, x[:2], jnp.zeros_like(y[:2]),
                                  ascent, return_trajectory=True)
  for i in range(6):
    steps = [t for t in range(1, 5)
             if float(jnp.abs(trajectory[t, i // 3] - y[i]).max()) < 1e-6]
    assert steps, f'tuple {i} is not on trajectory {i // 3}'
  distinct = {tuple(np.asarray(y[i]).ravel()[:50]) for i in range(3)}
  assert len(distinct) == 3  # distinct steps of one trajectory


@pytest.mark.parametrize('kwargs,match', [
    (dict(inference_points=0), 'inference_points'),
    (dict(inference_points=2, inference_pick='final'), 'inference_points'),
    (dict(mix=(('magic', 1.0),)), 'unknown tuple generator'),
    (dict(mix=(('inference', -1.0),)), 'weights'),
    (dict(temperature=0.0), 'tau'),
    (dict(adversarial_start='moon'), 'adversarial_start'),
    (dict(inference_pick='best'), 'inference_pick'),
    (dict(inference_chains=True, chain_steps=3), 'chain_steps must divide'),
    (dict(inference_chains=True, chain_steps=0), 'chain_steps must divide'),
    (dict(inference_chains=True, inference_points=2), 'inference_chains'),
    (dict(inference_chains=True, inference_pick='final'), 'inference_chains'),
])
def test_bad_tuple_settings_are_config_errors(kwargs, match):
  with pytest.raises(ConfigError, match=match):
    tuples.TupleSpec(**kwargs)


def test_two_stage_value_fn_gives_the_same_tuples_as_the_whole_network():
  from dvn_jax.methods import dvn  # pylint: disable=g-import-not-at-top
  model = networks.create('two_stream_value_net', conv_chunk=0)
  params = networks.init(model, jax.random.key(0), 24)
  staged = dvn.bind(model, params)
  assert isinstance(staged, inference.ValueFn)
  whole = lambda x, y: model.apply({'params': params}, x, y)
  x = jax.random.uniform(jax.random.key(1), (4, 24, 24, 3))
  y_star = (jax.random.uniform(jax.random.key(2), (4, 24, 24, 1)) > 0.6
            ).astype(jnp.float32)
  spec = tuples.TupleSpec(
      mix=(('inference', 0.5), ('adversarial', 0.5)),
      adversarial_start='ground_truth_or_zeros',
      inference_ascent=inference.AscentSpec(num_steps=3, step_size=10.0),
      adversarial_ascent=inference.AscentSpec(num_steps=2, step_size=10.0))
  for a, b in zip(tuples.generate_tuples(jax.random.key(3), staged, x,
                                         y_star, spec),
                  tuples.generate_tuples(jax.random.key(3), whole, x,
                                         y_star, spec)):
    np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


# ------------------------------------------------------------ chains ----


@pytest.mark.parametrize('chain_steps,started', [(1, False), (2, False),
                                                 (2, True)])
def test_chains_walk_fresh_trajectories_and_restart_on_new_examples(
    setup, chain_steps, started):
  """With the network held fixed, every chain's points are the points of a
  fresh inference trajectory on its example, each of 1..T once per life;
  the trajectory starts at the start network's output when there is one."""
  plain_fn, x, y_star = setup
  logit_fn = _with_start(plain_fn, started)
  num_steps = 4
  ascent = inference.AscentSpec(num_steps=num_steps, step_size=100.0)
  spec = tuples.TupleSpec(mix=(('inference', 1.0),), inference_ascent=ascent,
                          inference_chains=True, chain_steps=chain_steps)
  chains = tuples.init_chains(x.shape, y_star.shape, spec)
  # Restarts are staggered: ages T + d_i, d_i multiples of chain_steps.
  stagger = np.asarray(chains.age) - num_steps
  assert np.all(stagger % chain_steps == 0) and len(set(stagger)) > 1
  y0 = _red_channel(x) if started else jnp.zeros_like(y_star)
  _, fresh = inference.infer(plain_fn, x, y0, ascent, return_trajectory=True)
  # Batches cycle through two example orders, so a restart's example is
  # the one at the chain's position in the batch of that train step.
  orders = [np.arange(6), np.arange(6)[::-1]]
  life_step = {i: None for i in range(6)}   # steps into the current life
  example = {i: None for i in range(6)}
  lives = {i: [] for i in range(6)}         # ascent steps of ended lives
  for step in range(3 * num_steps // chain_steps):
    order = orders[step % 2]
    restarting = np.asarray(chains.age) >= num_steps
    x_in, y_star_in = x[order], y_star[order]
    x_out, y, v, chains = tuples.generate_tuples_with_chains(
        jax.random.key(step), logit_fn, x_in, y_star_in, spec, chains)
    for i in range(6):
      if restarting[i]:
        if step:
          lives[i].append(life_step[i])
        example[i] = order[i]
        life_step[i] = 0
      life_step[i] += chain_steps
      np.testing.assert_array_equal(x_out[i], x[example[i]])
      np.testing.assert_allclose(y[i], fresh[life_step[i], example[i]],
                                 atol=1e-5)
      np.testing.assert_allclose(v[i], oracles.iou(y[i:i + 1],
                                                   y_star[example[i]][None]
                                                   )[0], rtol=1e-6)
    assert np.all(np.asarray(chains.age) <= num_steps)
  for i in range(6):   # the first life is cut by the stagger, then T each
    assert lives[i][0] == num_steps - stagger[i]
    assert lives[i][1:] and set(lives[i][1:]) == {num_steps}


def test_chain_restarts_are_spread_over_train_steps(setup):
  _, x, y_star = setup
  spec = tuples.TupleSpec(
      mix=(('inference', 1.0),), inference_chains=True,
      inference_ascent=inference.AscentSpec(num_steps=3))
  chains = tuples.init_chains((6,) + x.shape[1:], y_star.shape, spec)
  # Each chain's first life is cut to T - d_i steps: 2 chains restart at
  # each of the first 3 train steps.
  first_life = 3 - (np.asarray(chains.age) - 3)
  assert sorted(first_life.tolist()) == [1, 1, 2, 2, 3, 3]
  assert tuples.num_chains(64, spec) == 64
  assert tuples.num_chains(64, tuples.TupleSpec()) == 0   # fresh: no chains
  mixed = tuples.TupleSpec(mix=(('inference', 0.5), ('adversarial', 0.5)),
                           inference_chains=True)
  assert tuples.num_chains(64, mixed) == 32


def test_interpolated_tuples_lie_between_the_chains_points_and_the_truth(
    setup):
  logit_fn, x, y_star = setup
  spec = tuples.TupleSpec(
      mix=(('inference', 1 / 3), ('interpolated', 2 / 3)),
      inference_ascent=inference.AscentSpec(num_steps=2, step_size=100.0),
      inference_chains=True)
  assert tuples.split_sizes(6, spec.mix) == [('inference', 2),
                                              ('interpolated', 4)]
  chains = tuples.init_chains((2,) + x.shape[1:], (2,) + y_star.shape[1:],
                              spec)
  x_out, y, v, chains = tuples.generate_tuples_with_chains(
      jax.random.key(0), logit_fn, x, y_star, spec, chains)
  # Tuples 2..5 interpolate chains 0, 1, 0, 1: their examples, and a point
  # y-hat + a (y* - y-hat) with one a in [0, 1] each.
  for i, chain in zip(range(2, 6), [0, 1, 0, 1]):
    np.testing.assert_array_equal(x_out[i], chains.x[chain])
    y_hat, truth = np.asarray(chains.y[chain]), np.asarray(chains.y_star[chain])
    differ = np.abs(truth - y_hat) > 1e-3
    assert differ.any()
    a = (np.asarray(y[i]) - y_hat)[differ] / (truth - y_hat)[differ]
    np.testing.assert_allclose(a, a[0], atol=1e-4)
    assert 0 <= a[0] <= 1
    np.testing.assert_allclose(v[i], oracles.iou(y[i:i + 1], truth[None])[0],
                               rtol=1e-6)
  # Two draws of the same chain get different a.
  assert not np.allclose(y[2], y[4])


def test_mixup_outputs_lie_between_another_examples_truth_and_the_own():
  """y = y*_j + a (y* - y*_j), j the previous example (cyclically): each
  pixel where the two truths agree keeps their value; elsewhere one a per
  example sets it (a toward own pixels that are on)."""
  y_star = jnp.asarray([[1.0, 1.0, 0.0, 0.0], [1.0, 0.0, 1.0, 0.0],
                        [0.0, 0.0, 0.0, 1.0]])
  y = np.asarray(tuples.mixup_outputs(jax.random.key(0), y_star))
  other = np.roll(np.asarray(y_star), 1, axis=0)
  agree = other == np.asarray(y_star)
  np.testing.assert_array_equal(y[agree], np.asarray(y_star)[agree])
  a = (y - other)[~agree] / (np.asarray(y_star) - other)[~agree]
  rows = np.nonzero(~agree)[0]
  for row in set(rows):
    assert np.allclose(a[rows == row], a[rows == row][0]) and 0 <= a[
        rows == row][0] <= 1


def test_adversarial_starts_are_the_truth_or_by_a_coin_zeros(setup):
  _, _, y_star = setup
  y_star = jnp.concatenate([y_star] * 4)   # 24 examples
  spec = tuples.TupleSpec(adversarial_start='ground_truth')
  np.testing.assert_array_equal(
      tuples.adversarial_start_points(jax.random.key(0), y_star, spec), y_star)
  coin = dataclasses.replace(spec, adversarial_start='ground_truth_or_zeros')
  starts = tuples.adversarial_start_points(jax.random.key(0), y_star, coin)
  truth = [bool(np.array_equal(s, t)) for s, t in zip(starts, y_star)]
  zeros = [not bool(np.any(s)) for s in starts]
  assert all(a or b for a, b in zip(truth, zeros))
  assert any(truth) and any(zeros)     # a fair coin per example
  np.testing.assert_array_equal(
      tuples.adversarial_start_points(jax.random.key(0), y_star, coin), starts)


class TupleVariantsTest(chex.TestCase):
  """A mixed batch of tuples is the same jitted and not, and inputs whose
  batch differs from the truths' are refused at the boundary."""

  @chex.variants(with_jit=True, without_jit=True)
  def test_generate_tuples_with_and_without_jit(self):
    logit_fn, x, y_star = value_net_and_batch(4, 12, 0.5)
    spec = tuples.TupleSpec(
        mix=(('inference', 0.5), ('adversarial', 0.25), ('stratified', 0.25)),
        inference_ascent=inference.AscentSpec(num_steps=2, step_size=10.0),
        adversarial_ascent=inference.AscentSpec(num_steps=1, step_size=10.0))
    generate = self.variant(lambda x, y_star: tuples.generate_tuples(
        jax.random.key(3), logit_fn, x, y_star, spec))
    x_out, y, v = generate(x, y_star)
    chex.assert_shape(v, (4,))
    chex.assert_equal_shape([y, y_star])
    reference = tuples.generate_tuples(jax.random.key(3), logit_fn, x, y_star,
                                       spec)
    for a, b in zip((x_out, y, v), reference):
      np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
    with self.assertRaises(AssertionError):
      generate(x[:3], y_star)


# ------------------------------------------------------- replay buffer ----


def _tuples_numbered(first: int, count: int):
  """count tuples whose x, y and v* all hold their number first, first+1..."""
  n = jnp.arange(first, first + count, dtype=jnp.float32)
  return n[:, None, None] * jnp.ones((count, 2, 3)), n[:, None] * jnp.ones(
      (count, 4)), n


def test_the_buffer_is_a_ring_of_the_last_tuples():
  buffer = tuples.init_replay((5, 2, 3), (5, 4))
  for first in (0, 3):
    buffer = tuples.push(buffer, *_tuples_numbered(first, 3))
  # Tuples 0..5 pushed into 5 slots: 5 overwrote 0 in slot 0.
  np.testing.assert_array_equal(buffer.v_star, [5, 1, 2, 3, 4])
  np.testing.assert_array_equal(buffer.x[:, 0, 0], buffer.v_star)
  np.testing.assert_array_equal(buffer.y[:, 0], buffer.v_star)
  assert int(buffer.count) == 6


@pytest.mark.parametrize('share,replayed', [(0.25, 2), (1.0, 8)])
def test_a_replayed_batch_is_fresh_tuples_then_tuples_of_the_buffer(
    share, replayed):
  """The batch keeps its size: distinct fresh tuples first, then tuples
  drawn from the buffer, which now holds the fresh ones too; every x, y and
  v* stay together."""
  buffer = tuples.push(tuples.init_replay((16, 2, 3), (16, 4)),
                       *_tuples_numbered(100, 8))
  fresh = _tuples_numbered(0, 8)
  x, y, v, buffer = tuples.replay_batch(jax.random.key(0), buffer, *fresh,
                                        share)
  chex.assert_shape([x, y, v], [(8, 2, 3), (8, 4), (8,)])
  assert tuples.replayed_count(8, share) == replayed
  np.testing.assert_array_equal(x[:, 0, 0], v)
  np.testing.assert_array_equal(y[:, 0], v)
  kept = np.asarray(v[:8 - replayed])
  assert len(set(kept)) == len(kept) and set(kept) <= set(range(8))
  assert set(np.asarray(v[8 - replayed:])) <= set(range(8)) | set(
      range(100, 108))
  assert int(buffer.count) == 16
  np.testing.assert_array_equal(np.sort(buffer.v_star),
                                np.r_[np.arange(8), np.arange(100, 108)])


def test_the_replay_key_is_none_of_the_generators_keys():
  rng = jax.random.key(0)
  taken = [jax.random.fold_in(rng, i) for i in range(len(tuples.GENERATORS))]
  taken += list(jax.random.split(rng, 2)) + [rng]
  replay = jax.random.key_data(tuples.replay_key(rng))
  for key in taken:
    assert not np.array_equal(replay, jax.random.key_data(key))


@pytest.mark.parametrize('size,share', [(8, 0.0), (0, 0.5), (8, 1.5),
                                        (-1, 0.5)])
def test_replay_settings_are_both_off_or_both_on(size, share):
  with pytest.raises(ConfigError, match='replay_size'):
    tuples.TupleSpec(replay_size=size, replay_share=share)
