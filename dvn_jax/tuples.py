"""Training tuples (x, y, v*) for the value network (paper Sec. 3.3).

The generators, each mapping a batch of inputs x and ground truths y* to
outputs y and their oracle values v* = oracle(y, y*):
- ground truth: y = y*, v* = 1;
- inference: points on the gradient-ascent trajectory of the current network
  (Eq. 8), the outputs inference will visit at test time;
- stratified sampling from p(y) ∝ exp(v*(y, y*) / tau) (see
  `stratified_outputs` for the sampler);
- adversarial: gradient ascent on the regression loss (Eq. 11) w.r.t. y, the
  outputs whose value the network gets most wrong;
- interpolated (ours, not the paper's): a random point of the segment from
  an inference output y-hat to y*, y = y-hat + a (y* - y-hat), a ~ U(0, 1):
  the outputs between where inference ends and the truth, whose values
  decide whether the ascent moves on towards y*;
- mixup (ours): a random point of the segment from another example's
  ground truth to y*, y = y*_j + a (y* - y*_j), a ~ U(0, 1): outputs
  shaped like true ones but (partly) of another input, which a value net
  must not rate as highly as they look.

`generate_tuples` splits a batch between the generators in fixed, static
proportions (the "mix"), so a train step compiles once.

Inference tuples come from fresh trajectories (each train step runs T ascent
steps from y(0) and keeps some of their points), or from persistent chains
(`inference_chains`): trajectories kept in the train state, each advanced
`chain_steps` ascent steps per train step with the current network and
restarted on a new example after T steps. Every point of a chain becomes a
tuple, so a train step costs `chain_steps` ascent steps instead of T.

An experience replay buffer (Sec. 3.2: the tuples' training set "evolves
over time, and one can make use of an experience replay buffer"; the
authors trained on a queue of tuples inferred with "slightly older
weights"): `replay_size` > 0 keeps the last tuples of every generator in
the train state (`ReplayBuffer`), and each update trains on a batch of the
same size, `replay_share` of it drawn from the buffer and the rest fresh
(`replay_batch`).
"""

from __future__ import annotations

import dataclasses

import chex
import flax
import jax
import jax.numpy as jnp
import numpy as np

from dvn_jax import inference
from dvn_jax import losses
from dvn_jax import oracles
from dvn_jax.errors import ConfigError

Array = jax.Array
GENERATORS = ('ground_truth', 'inference', 'stratified', 'adversarial',
              'interpolated', 'mixup')
# 'ground_truth' (the paper's) or 'ground_truth_or_zeros' (a fair coin per
# example; the authors' multi-label code).
ADVERSARIAL_STARTS = ('ground_truth', 'ground_truth_or_zeros')


@dataclasses.dataclass(frozen=True)
class TupleSpec:
  """Static settings of tuple generation (hashable).

  Attributes:
    mix: (generator, weight) pairs; the batch is split in these proportions.
    oracle: the task's oracle ('iou', 'f1' or 'pixel_accuracy').
    loss: regression loss that adversarial tuples maximise.
    inference_ascent: ascent settings of inference tuples.
    inference_pick: 'random' takes y(t) at a uniformly drawn t in 1..T per
      example; 'final' takes y(T).
    inference_points: tuples taken from each inference trajectory (distinct
      steps; 'random' only). k > 1 runs k times fewer trajectories for the
      same number of inference tuples.
    temperature: tau of stratified sampling (paper: 0.05).
    adversarial_ascent: ascent settings of adversarial tuples.
    adversarial_start: where the adversarial ascent starts
      (ADVERSARIAL_STARTS).
    adversarial_objective: 'loss' ascends the regression loss (the paper's
      Sec. 3.3); 'value' ascends the predicted value, as the authors'
      released multi-label code does.
    inference_chains: take inference tuples from persistent chains
      (`advance_chains`) instead of fresh trajectories.
    chain_steps: ascent steps each chain takes per train step (divides T).
    replay_size: tuples the replay buffer holds (0: no buffer).
    replay_share: share of each update's batch drawn from the buffer.
  """
  mix: tuple[tuple[str, float], ...] = (('inference', 0.5),
                                        ('adversarial', 0.5))
  oracle: str = 'iou'
  loss: str = 'cross_entropy'
  inference_ascent: inference.AscentSpec = inference.AscentSpec(num_steps=20)
  inference_pick: str = 'random'
  inference_points: int = 1
  temperature: float = 0.05
  adversarial_ascent: inference.AscentSpec = inference.AscentSpec(num_steps=3)
  adversarial_start: str = 'ground_truth'
  adversarial_objective: str = 'loss'
  inference_chains: bool = False
  chain_steps: int = 1
  replay_size: int = 0
  replay_share: float = 0.0

  def __post_init__(self):
    names = [name for name, _ in self.mix]
    unknown = sorted(set(names) - set(GENERATORS))
    if unknown:
      raise ConfigError(f'unknown tuple generator(s) {unknown}; choose from '
                        f'{list(GENERATORS)}')
    if len(set(names)) != len(names):
      raise ConfigError(f'tuple mix names a generator twice: {names}')
    weights = [w for _, w in self.mix]
    if not weights or any(w < 0 for w in weights) or sum(weights) <= 0:
      raise ConfigError(f'tuple mix weights must be >= 0 with a positive sum, '
                        f'got {dict(self.mix)}')
    if self.temperature <= 0:
      raise ConfigError(f'stratified temperature tau must be > 0, '
                        f'got {self.temperature}')
    if self.inference_pick not in ('random', 'final'):
      raise ConfigError(f"inference_pick must be 'random' or 'final', "
                        f'got {self.inference_pick!r}')
    if not 1 <= self.inference_points <= self.inference_ascent.num_steps:
      raise ConfigError(f'inference_points must be in 1..inference num_steps '
                        f'({self.inference_ascent.num_steps}), got '
                        f'{self.inference_points}')
    if self.inference_points > 1 and self.inference_pick != 'random':
      raise ConfigError("inference_points > 1 needs inference_pick='random'")
    if self.adversarial_start not in ADVERSARIAL_STARTS:
      raise ConfigError(f'adversarial_start must be one of '
                        f'{list(ADVERSARIAL_STARTS)}, got '
                        f'{self.adversarial_start!r}')
    if self.adversarial_objective not in ('loss', 'value'):
      raise ConfigError("adversarial_objective must be 'loss' or 'value', "
                        f'got {self.adversarial_objective!r}')
    if self.inference_chains:
      num_steps = self.inference_ascent.num_steps
      if not (1 <= self.chain_steps <= num_steps and
              num_steps % self.chain_steps == 0):
        raise ConfigError(f'chain_steps must divide the inference num_steps '
                          f'({num_steps}), got {self.chain_steps}')
      if self.inference_pick != 'random' or self.inference_points != 1:
        raise ConfigError("inference_chains make a tuple of every chain's "
                          "point: set inference_pick='random' and "
                          'inference_points=1')
    if self.replay_size < 0 or not 0.0 <= self.replay_share <= 1.0 or (
        (self.replay_size > 0) != (self.replay_share > 0)):
      raise ConfigError('replay_size (tuples held, >= 0) and replay_share '
                        '(in [0, 1]) must both be 0 (no buffer) or both > 0, '
                        f'got {self.replay_size} and {self.replay_share}')
    oracles.get_oracle(self.oracle)
    losses.get_loss(self.loss)


def split_sizes(batch_size: int, mix: tuple[tuple[str, float], ...]
                ) -> list[tuple[str, int]]:
  """Splits `batch_size` examples by the mix weights (largest remainder)."""
  weights = np.array([w for _, w in mix], np.float64)
  exact = batch_size * weights / weights.sum()
  sizes = np.floor(exact).astype(int)
  for i in np.argsort(-(exact - sizes))[:batch_size - sizes.sum()]:
    sizes[i] += 1
  return [(name, int(n)) for (name, _), n in zip(mix, sizes) if n > 0]


# ------------------------------------------------------------ generators ----


def ground_truth_outputs(y_star: Array) -> Array:
  """The ground truth itself (its value is 1)."""
  return y_star


def inference_outputs(rng: Array, logit_fn: inference.LogitFn, x: Array,
                      y_star: Array, spec: TupleSpec) -> Array:
  """Points on the inference trajectory from y(0) = P(0) (Sec. 3.3, Inference).

  Returns (B * inference_points, ...) outputs, trajectory-major: with
  'random' picking, each trajectory gives `inference_points` distinct steps
  drawn uniformly from 1..T; with 'final', y(T). `y_star` gives the shape
  of the outputs (its values are not used).
  """
  y0 = inference.initial_point(logit_fn, x, y_star.shape,
                               spec.inference_ascent)
  y_final, trajectory = inference.infer(
      logit_fn, x, y0, spec.inference_ascent,
      return_trajectory=spec.inference_pick == 'random',
      rng=jax.random.fold_in(rng, 1))
  if spec.inference_pick == 'final':
    return y_final
  batch, num_steps = x.shape[0], spec.inference_ascent.num_steps
  keys = jax.random.uniform(rng, (batch, num_steps))
  steps = jnp.argsort(keys, axis=1)[:, :spec.inference_points] + 1
  examples = jnp.repeat(jnp.arange(batch), spec.inference_points)
  return trajectory[steps.reshape(-1), examples]


def sample_stratified_values(rng: Array, shape: tuple[int, ...],
                             temperature: float) -> Array:
  """Draws values v in [0, 1] with density ∝ exp(v / tau) (inverse CDF).

  v = 1 + tau log(u + (1 - u) exp(-1/tau)), stable for small tau.
  """
  u = jax.random.uniform(rng, shape)
  return 1.0 + temperature * jnp.log(u + (1.0 - u) * jnp.exp(-1.0 / temperature))


def _flip_random_subset(rng: Array, members: Array, counts: Array) -> Array:
  """Boolean mask choosing `counts[b]` random pixels among `members[b]`.

  members: (B, M) bool; counts: (B,) int. Uniform over subsets of that size:
  rank the members by i.i.d. uniform keys and keep the `counts` smallest.
  """
  keys = jnp.where(members, jax.random.uniform(rng, members.shape), jnp.inf)
  ranks = jnp.argsort(jnp.argsort(keys, axis=1), axis=1)
  return members & (ranks < counts[:, None])


def stratified_outputs(rng: Array, y_star: Array, spec: TupleSpec) -> Array:
  """Binary outputs y sampled from p(y) ∝ exp(v*(y, y*) / tau) by strata.

  Following Norouzi et al. (2016) we sample in two stages, grouping outputs
  by their value: (1) draw a target value v from the density ∝ exp(v / tau)
  on [0, 1] (each value stratum weighted by exp(v / tau), not by how many
  outputs it holds: by count nearly every binary mask is noise with IoU ~ 0,
  and tau would then not concentrate anything); (2) draw uniformly among the
  binary masks with (about) that value. A mask at the ground truth y*, with
  P foreground and N background pixels, that drops `a` foreground and adds
  `b` background pixels has IoU = (P - a) / (P + b) and
  F1 = 2 (P - a) / (2 P - a + b). We draw b uniformly among the values for
  which some a in [0, P] reaches v, solve for a (rounded), and flip a random
  a foreground and b background pixels. tau -> 0 gives y*; the returned
  tuples carry the exact oracle value of the mask drawn, not the target.

  K-class masks (one-hot y*, K > 1, pixel-accuracy oracle): a mask with
  value v differs from y* in round((1 - v) M) of its M pixels; we draw that
  many pixels uniformly and give each a uniformly drawn wrong class.
  """
  if y_star.shape[-1] > 1:
    return _stratified_multiclass(rng, y_star, spec)
  rng_v, rng_b, rng_fg, rng_bg = jax.random.split(rng, 4)
  batch = y_star.shape[0]
  fg = (y_star > 0.5).reshape(batch, -1)
  p = fg.sum(axis=1).astype(jnp.float32)
  n = fg.shape[1] - p
  v = sample_stratified_values(rng_v, (batch,), spec.temperature)
  v = jnp.clip(v, 1e-3, 1.0)
  if spec.oracle == 'iou':   # a = P - v (P + b) >= 0  <=>  b <= P (1 - v) / v
    b_max = p * (1.0 - v) / v
  else:                      # a = (2P - v (2P + b)) / (2 - v) >= 0
    b_max = 2.0 * p * (1.0 - v) / v
  b_max = jnp.minimum(b_max, n)
  b = jnp.floor(jax.random.uniform(rng_b, (batch,)) * (jnp.floor(b_max) + 1))
  if spec.oracle == 'iou':
    a = p - v * (p + b)
  else:
    a = (2.0 * p - v * (2.0 * p + b)) / (2.0 - v)
  a = jnp.clip(jnp.round(a), 0, p)
  drop = _flip_random_subset(rng_fg, fg, a.astype(jnp.int32))
  add = _flip_random_subset(rng_bg, ~fg, b.astype(jnp.int32))
  y = (fg & ~drop) | add
  return y.reshape(y_star.shape).astype(jnp.float32)


def _stratified_multiclass(rng: Array, y_star: Array, spec: TupleSpec
                           ) -> Array:
  """`stratified_outputs` for one-hot K-class masks (B, ..., K)."""
  if spec.oracle != 'pixel_accuracy':
    raise ConfigError('stratified tuples of K-class masks need '
                      f"oracle='pixel_accuracy', got {spec.oracle!r}")
  rng_v, rng_pixels, rng_class = jax.random.split(rng, 3)
  batch, num_classes = y_star.shape[0], y_star.shape[-1]
  truth = jnp.argmax(y_star, axis=-1).reshape(batch, -1)
  num_pixels = truth.shape[1]
  v = sample_stratified_values(rng_v, (batch,), spec.temperature)
  wrong = jnp.round((1.0 - v) * num_pixels).astype(jnp.int32)
  change = _flip_random_subset(rng_pixels, jnp.ones_like(truth, bool), wrong)
  shift = jax.random.randint(rng_class, truth.shape, 1, num_classes)
  labels = jnp.where(change, (truth + shift) % num_classes, truth)
  return jax.nn.one_hot(labels, num_classes).reshape(y_star.shape)


def _per_example(mask: Array, like: Array) -> Array:
  """A (B,) mask shaped to broadcast against `like` (B, ...)."""
  return mask.reshape((-1,) + (1,) * (like.ndim - 1))


def adversarial_start_points(rng: Array, y_star: Array, spec: TupleSpec
                             ) -> Array:
  """Where the adversarial ascents start (`spec.adversarial_start`): y*,
  or for 'ground_truth_or_zeros' y* or P(0), by a fair coin per example."""
  if spec.adversarial_start == 'ground_truth':
    return y_star
  zeros = inference.start_point(y_star.shape, spec.adversarial_ascent)
  coin = jax.random.bernoulli(rng, 0.5, (y_star.shape[0],))
  return jnp.where(_per_example(coin, y_star), y_star, zeros)


def adversarial_outputs(rng: Array, logit_fn: inference.LogitFn, x: Array,
                        y_star: Array, spec: TupleSpec) -> Array:
  """Gradient ascent on the regression loss w.r.t. y (Sec. 3.3, Adversarial).

  Finds outputs where v(x, y) over- or underestimates v*(y, y*) the most;
  the oracle term is differentiated too (the relaxed IoU/F1 are). It starts
  at `adversarial_start_points`. With adversarial_objective 'value' it
  ascends the value instead (the authors' multi-label code).
  """
  oracle = oracles.get_oracle(spec.oracle)
  loss_fn = losses.get_loss(spec.loss)
  y0 = adversarial_start_points(rng, y_star, spec)
  value_fn = inference.as_value_fn(logit_fn)
  features = value_fn.encode(x)
  if spec.adversarial_objective == 'value':
    objective = lambda y: jax.nn.sigmoid(value_fn.logits(features, y))
  else:
    objective = lambda y: loss_fn(value_fn.logits(features, y),
                                  oracle(y, y_star))
  y, _ = inference.gradient_ascent(objective, y0, spec.adversarial_ascent,
                                   rng=jax.random.fold_in(rng, 2))
  return y


# ------------------------------------------------- persistent chains ----


class InferenceChains(flax.struct.PyTreeNode):
  """Persistent inference trajectories, one per inference tuple of a batch.

  x, y_star: (N, ...) the input and ground truth each chain works on;
  y: (N, ...) its current point; age: (N,) int32 ascent steps taken from
  y(0) (chains with age >= T restart).
  """
  x: Array
  y_star: Array
  y: Array
  age: Array


def num_chains(batch_size: int, spec: TupleSpec) -> int:
  """Chains of a train step: its inference tuples (0 without chains)."""
  if not spec.inference_chains:
    return 0
  return dict(split_sizes(batch_size, spec.mix)).get('inference', 0)


def init_chains(x_shape: tuple[int, ...], y_shape: tuple[int, ...],
                spec: TupleSpec) -> InferenceChains:
  """Chains all due to restart at the first train step, staggered.

  Chain i starts with age T + d_i, d_i = (i T / N) rounded down to a multiple
  of chain_steps; its first restart keeps d_i (ages carry over T), so its
  first trajectory is cut short and the N chains restart at evenly spread
  steps ever after: each batch holds points from the whole trajectory, as
  fresh trajectories with a random pick give, not all at one step.
  """
  count, num_steps = x_shape[0], spec.inference_ascent.num_steps
  periods = num_steps // spec.chain_steps
  stagger = (np.arange(count) * periods // max(count, 1)) * spec.chain_steps
  return InferenceChains(
      x=jnp.zeros(x_shape, jnp.float32), y_star=jnp.zeros(y_shape, jnp.float32),
      y=inference.start_point(y_shape, spec.inference_ascent),
      age=jnp.asarray(num_steps + stagger, jnp.int32))


def advance_chains(rng: Array, logit_fn: inference.LogitFn,
                   chains: InferenceChains, x: Array, y_star: Array,
                   spec: TupleSpec) -> InferenceChains:
  """Restarts finished chains on (x, y*), then ascends every chain.

  Chain i, if its age is >= T, restarts from y(0) on the new example
  (x[i], y*[i]); then every chain takes `chain_steps` steps of Eq. 8 with
  the current network. The chains' new points are the inference tuples of
  this train step: over a trajectory's life they are its points 1..T, each
  made by the network of the train step that took it.
  """
  num_steps = spec.inference_ascent.num_steps
  restart = chains.age >= num_steps
  x = jnp.where(_per_example(restart, x), x, chains.x)
  y_star = jnp.where(_per_example(restart, y_star), y_star, chains.y_star)
  y0 = inference.initial_point(logit_fn, x, chains.y.shape,
                               spec.inference_ascent)
  y = jnp.where(_per_example(restart, y0), y0, chains.y)
  age = jnp.where(restart, chains.age - num_steps, chains.age)
  step_spec = dataclasses.replace(spec.inference_ascent,
                                  num_steps=spec.chain_steps)
  y, _ = inference.infer(logit_fn, x, y, step_spec, rng=rng)
  return InferenceChains(x=x, y_star=y_star, y=y,
                         age=age + spec.chain_steps)


# ------------------------------------------------------- replay buffer ----


class ReplayBuffer(flax.struct.PyTreeNode):
  """The last C training tuples (a ring: the oldest is overwritten).

  x, y: (C, ...) inputs and outputs; v_star: (C,) their oracle values;
  count: () int32 tuples pushed so far (the next goes to slot count mod C).
  """
  x: Array
  y: Array
  v_star: Array
  count: Array


def init_replay(x_shape: tuple[int, ...], y_shape: tuple[int, ...]
                ) -> ReplayBuffer:
  """An empty buffer of x_shape[0] tuples."""
  return ReplayBuffer(x=jnp.zeros(x_shape, jnp.float32),
                      y=jnp.zeros(y_shape, jnp.float32),
                      v_star=jnp.zeros(x_shape[:1], jnp.float32),
                      count=jnp.zeros((), jnp.int32))


def push(buffer: ReplayBuffer, x: Array, y: Array, v_star: Array
         ) -> ReplayBuffer:
  """`buffer` with the tuples (x, y, v*) written over its oldest."""
  slots = (buffer.count + jnp.arange(x.shape[0])) % buffer.x.shape[0]
  return ReplayBuffer(x=buffer.x.at[slots].set(x.astype(jnp.float32)),
                      y=buffer.y.at[slots].set(y.astype(jnp.float32)),
                      v_star=buffer.v_star.at[slots].set(v_star),
                      count=buffer.count + x.shape[0])


def replay_key(rng: Array) -> Array:
  """The replay's key from a train step's tuple key `rng`: the generators
  take fold_in(rng, i) for i < len(GENERATORS) (`generate_tuples`), so it
  is the next, len(GENERATORS)."""
  return jax.random.fold_in(rng, len(GENERATORS))


def replayed_count(batch_size: int, share: float) -> int:
  """Tuples of a batch drawn from the buffer: round(share B)."""
  return int(round(share * batch_size))


def replay_batch(rng: Array, buffer: ReplayBuffer, x: Array, y: Array,
                 v_star: Array, share: float
                 ) -> tuple[Array, Array, Array, ReplayBuffer]:
  """An update's batch: a random (1 - share) of the step's fresh tuples,
  then round(share B) tuples drawn uniformly (with replacement) from the
  buffer after the fresh ones are pushed (so they may be drawn too).

  Every fresh tuple enters the buffer, so on average each tuple is trained
  on once, as without a buffer: (1 - share) now, share later, made by the
  weights of up to C / B steps before. Returns (x, y, v*, buffer): the
  last `replayed_count(B, share)` tuples of the batch are the replayed ones.
  """
  batch = x.shape[0]
  old = replayed_count(batch, share)
  buffer = push(buffer, x, y, v_star)
  rng_fresh, rng_old = jax.random.split(rng)
  fresh = jax.random.permutation(rng_fresh, batch)[:batch - old]
  held = jnp.minimum(buffer.count, buffer.x.shape[0])
  drawn = jax.random.randint(rng_old, (old,), 0, held)
  return (jnp.concatenate([x[fresh], buffer.x[drawn].astype(x.dtype)]),
          jnp.concatenate([y[fresh], buffer.y[drawn].astype(y.dtype)]),
          jnp.concatenate([v_star[fresh], buffer.v_star[drawn]]), buffer)


def interpolate_to_truth(rng: Array, y_hat: Array, y_star: Array) -> Array:
  """y-hat + a (y* - y-hat), one a ~ U(0, 1) per example (in [0, 1]^M)."""
  a = jax.random.uniform(rng, (y_hat.shape[0],) + (1,) * (y_hat.ndim - 1))
  return y_hat + a * (y_star - y_hat)


def interpolated_outputs(rng: Array, logit_fn: inference.LogitFn, x: Array,
                         y_star: Array, spec: TupleSpec) -> Array:
  """Points between inference outputs of fresh trajectories and y*.

  y-hat is a point of each example's trajectory, picked as inference tuples
  pick theirs (one point per example).
  """
  one_point = dataclasses.replace(spec, inference_points=1)
  y_hat = inference_outputs(jax.random.fold_in(rng, 1), logit_fn, x, y_star,
                            one_point)
  return interpolate_to_truth(rng, y_hat, y_star)


def mixup_outputs(rng: Array, y_star: Array) -> Array:
  """Points between each example's ground truth and the previous example's
  (cyclically in the slice): y*_j + a (y* - y*_j), a ~ U(0, 1)."""
  return interpolate_to_truth(rng, jnp.roll(y_star, 1, axis=0), y_star)


def generate_outputs(name: str, rng: Array, logit_fn: inference.LogitFn,
                     x: Array, y_star: Array, spec: TupleSpec) -> Array:
  """Outputs y of generator `name` for inputs x and ground truths y*."""
  if name == 'ground_truth':
    return ground_truth_outputs(y_star)
  if name == 'inference':
    return inference_outputs(rng, logit_fn, x, y_star, spec)
  if name == 'stratified':
    return stratified_outputs(rng, y_star, spec)
  if name == 'adversarial':
    return adversarial_outputs(rng, logit_fn, x, y_star, spec)
  if name == 'interpolated':
    return interpolated_outputs(rng, logit_fn, x, y_star, spec)
  if name == 'mixup':
    return mixup_outputs(rng, y_star)
  raise ConfigError(f'unknown tuple generator {name!r}')


def generate_tuples(rng: Array, logit_fn: inference.LogitFn, x: Array,
                    y_star: Array, spec: TupleSpec
                    ) -> tuple[Array, Array, Array]:
  """A batch of training tuples (x, y, v*) split between generators by mix.

  The network is held fixed while generating (outputs carry no gradient).
  Inference tuples come from fresh trajectories here, whatever
  `spec.inference_chains` says: chains live in the train state, which
  passes them to `generate_tuples_with_chains`.
  """
  x, y, v_star, _ = generate_tuples_with_chains(rng, logit_fn, x, y_star,
                                                spec, None)
  return x, y, v_star


def generate_tuples_with_chains(
    rng: Array, logit_fn: inference.LogitFn, x: Array, y_star: Array,
    spec: TupleSpec, chains: InferenceChains | None
    ) -> tuple[Array, Array, Array, InferenceChains | None]:
  """`generate_tuples`, the inference slice from `chains` when given.

  The inference slice's examples restart the chains that are due
  (`advance_chains`); its tuples are the chains' new points. With chains,
  the interpolated slice interpolates between the chains' new points and
  their ground truths (chain i for its i-th tuple, cycling if the slice is
  larger), so it costs no ascent of its own; its examples then are the
  chains'. Returns (x, y, v*, the advanced chains), x and y of the batch's
  shapes and v* of shape (B,).
  """
  chex.assert_equal_shape_prefix([x, y_star], 1)
  if chains is not None:
    chex.assert_equal_shape_suffix([chains.x, x], x.ndim - 1)
    chex.assert_equal_shape_suffix([chains.y, y_star], y_star.ndim - 1)
  oracle = oracles.get_oracle(spec.oracle)
  xs, ys, y_stars, start = [], [], [], 0
  for i, (name, size) in enumerate(split_sizes(x.shape[0], spec.mix)):
    if name == 'inference' and chains is not None:
      chains = advance_chains(jax.random.fold_in(rng, i), logit_fn, chains,
                              x[start:start + size],
                              y_star[start:start + size], spec)
      xs.append(chains.x)
      ys.append(chains.y)
      y_stars.append(chains.y_star)
      start += size
      continue
    if name == 'interpolated' and chains is not None and chains.y.shape[0]:
      picks = jnp.arange(size) % chains.y.shape[0]
      y_star_i = chains.y_star[picks]
      xs.append(chains.x[picks])
      y_stars.append(y_star_i)
      ys.append(interpolate_to_truth(jax.random.fold_in(rng, i),
                                     chains.y[picks], y_star_i))
      start += size
      continue
    # Inference tuples may take several points of each trajectory: then
    # fewer inputs of the slice are used, each repeated once per point.
    repeats = spec.inference_points if name == 'inference' else 1
    sources = slice(start, start + -(-size // repeats))
    outputs = generate_outputs(name, jax.random.fold_in(rng, i), logit_fn,
                               x[sources], y_star[sources], spec)
    ys.append(outputs[:size])
    xs.append(jnp.repeat(x[sources], repeats, axis=0)[:size])
    y_stars.append(jnp.repeat(y_star[sources], repeats, axis=0)[:size])
    start += size
  y = jax.lax.stop_gradient(jnp.concatenate(ys, axis=0))
  y_star = jnp.concatenate(y_stars, axis=0)
  x = jnp.concatenate(xs, axis=0)
  chex.assert_equal_shape([y, y_star])
  chex.assert_equal_shape_prefix([x, y], 1)
  return x, y, oracle(y, y_star), chains
