"""Pieces the config files share."""

import ml_collections


def ascent(num_steps: int, step_size: float, unroll: int = 0
           ) -> ml_collections.ConfigDict:
  """Settings of gradient ascent in y (Eq. 8; builders.ascent_spec). The
  projection is the task's (its output set).

  unroll: the lax.scan unroll factor; 0 unrolls every step (the fastest on
  a CPU: docs/throughput.md). noise_std: Gaussian noise added to y at each
  step (Langevin-style inference, paper Sec. 6; 0 = none).
  """
  return ml_collections.ConfigDict(dict(
      num_steps=num_steps, step_size=step_size, unroll=unroll,
      noise_std=0.0))


def mix(**weights: float) -> ml_collections.ConfigDict:
  """The batch fractions of each tuple generator (dvn_jax/tuples.py), 0 for
  those not named."""
  names = ('ground_truth', 'inference', 'stratified', 'adversarial',
           'interpolated', 'mixup')
  unknown = sorted(set(weights) - set(names))
  if unknown:
    raise ValueError(f'unknown tuple generator(s) {unknown}')
  return ml_collections.ConfigDict({name: float(weights.get(name, 0.0))
                                    for name in names})


def optimizer(name: str, learning_rate: float, **fields
              ) -> ml_collections.ConfigDict:
  """Optimizer settings (builders.make_optimizer): `name` 'adam' or 'sgd',
  a constant rate unless `schedule='piecewise'` with `decay_steps`; every
  other field at its neutral value unless given."""
  settings = dict(name=name, learning_rate=learning_rate, momentum=0.9,
                  schedule='constant', decay_steps=(), decay_factor=0.1,
                  weight_decay=0.0, grad_clip_norm=0.0)
  unknown = sorted(set(fields) - set(settings))
  if unknown:
    raise ValueError(f'unknown optimizer field(s) {unknown}')
  return ml_collections.ConfigDict({**settings, **fields})


def hybrid_off(model: ml_collections.ConfigDict) -> ml_collections.ConfigDict:
  """`eval.fcn` with the hybrid off (dvn_jax/hybrid.py): `params`, a
  baseline's parameter file (`--mode=export`, or an ensemble file of
  several); `model`, its network; `start_scale` s > 0 starts each test-time
  ascent at s p(x) + (1 - s) P(0); `prior_weight` lam > 0 makes it climb
  v(x, y) + lam log p(y | x)."""
  return ml_collections.ConfigDict(dict(params='', model=model,
                                        start_scale=0.0, prior_weight=0.0))


def spen(num_steps: int, step_size: float, pretrain_steps: int = 0
         ) -> ml_collections.ConfigDict:
  """`config.spen` of method 'spen' (dvn_jax/methods/spen.py): the
  cost-augmented ascent that finds each example's most violating output,
  and the steps that first pre-train the feature network (0: none)."""
  return ml_collections.ConfigDict(dict(
      ascent=ascent(num_steps, step_size, unroll=1),
      pretrain_steps=pretrain_steps))


def config_options(arg: str | None, allowed: tuple[str, ...]) -> set[str]:
  """The comma-separated options of `--config=FILE:arg`; ValueError naming
  any not in `allowed`."""
  options = set(arg.split(',')) if arg else set()
  unknown = options - set(allowed)
  if unknown:
    names = ', '.join(repr(name) for name in allowed)
    raise ValueError(f'unknown config argument(s) {sorted(unknown)}; use '
                     f"{names} or several, comma-separated "
                     f"('{allowed[0]},{allowed[-1]}')")
  return options
