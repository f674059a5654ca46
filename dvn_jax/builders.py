"""A config -> the things it describes: the task's network and its initial
parameters, the optimizer, the ascent specs; and `check_config`, which
reads an older config through `migration.migrate` and refuses a config
that cannot work in one line (`ConfigError`) before any work.

No ConfigDict enters a jitted function: the train loop closes over what
these build (hashable specs, Flax modules, Optax transformations).
"""

from __future__ import annotations

from typing import Any

import flax.linen as nn
import jax
import ml_collections
import optax

from dvn_jax import inference
from dvn_jax import methods
from dvn_jax import migration
from dvn_jax import param_files
from dvn_jax import tasks
from dvn_jax import train_state
from dvn_jax.errors import ConfigError
from dvn_jax.tasks import base


def create_model(config: ml_collections.ConfigDict) -> nn.Module:
  """The network of `config.model`, as its task builds it."""
  return tasks.get(config).create_model(config.model)


def init_model_params(model: nn.Module, config: ml_collections.ConfigDict,
                      rng: jax.Array) -> Any:
  """Initial parameters for one training example of the task."""
  return tasks.get(config).init_params(model, rng)


def param_shapes(model: nn.Module, config: ml_collections.ConfigDict) -> Any:
  """The shapes and dtypes of the network's parameters (a pytree of
  jax.ShapeDtypeStruct), traced without running the initialisers: the
  template a parameter file is read into."""
  return jax.eval_shape(lambda: init_model_params(model, config,
                                                  jax.random.key(0)))


def ascent_spec(cfg: ml_collections.ConfigDict, task: base.Task
                ) -> inference.AscentSpec:
  """The gradient-ascent settings `cfg` (configs/common.py's `ascent`) on
  the task's output set."""
  return inference.AscentSpec(num_steps=cfg.num_steps,
                              step_size=cfg.step_size,
                              projection=task.output_set,
                              unroll=cfg.unroll or True,  # 0: fully
                              noise_std=cfg.noise_std)


def make_optimizer(cfg: ml_collections.ConfigDict
                   ) -> optax.GradientTransformation:
  """SGD (with momentum) or Adam; a constant or piecewise-constant
  learning rate, weight decay on kernels only, and gradient clipping."""
  if cfg.schedule == 'constant':
    lr = cfg.learning_rate
  elif cfg.schedule == 'piecewise':
    # x decay_factor at each step of decay_steps (e.g. the authors' Bibtex
    # schedule: x0.1 after 150 and after 300 epochs).
    boundaries = list(cfg.decay_steps)
    if sorted(boundaries) != boundaries or any(b <= 0 for b in boundaries):
      raise ConfigError('optimizer.decay_steps must be increasing positive '
                        f'steps, got {boundaries}')
    lr = optax.piecewise_constant_schedule(
        cfg.learning_rate, {b: cfg.decay_factor for b in boundaries})
  else:
    raise ConfigError(f"optimizer.schedule must be 'constant' or "
                      f"'piecewise', got {cfg.schedule!r}")
  if cfg.name == 'sgd':
    opt = optax.sgd(lr, momentum=cfg.momentum or None)
  elif cfg.name == 'adam':
    opt = optax.adam(lr)
  else:
    raise ConfigError(f"optimizer.name must be 'sgd' or 'adam', got "
                      f"{cfg.name!r}")
  chain = []
  if cfg.grad_clip_norm > 0:
    chain.append(optax.clip_by_global_norm(cfg.grad_clip_norm))
  if cfg.weight_decay > 0:
    kernels_only = lambda params: jax.tree.map(lambda p: p.ndim > 1, params)
    chain.append(optax.add_decayed_weights(cfg.weight_decay, kernels_only))
  return optax.chain(*chain, opt)


def check_config(config: ml_collections.ConfigDict) -> None:
  """Reads a config written before some field existed through
  `migration.migrate` (in place), then raises ConfigError (one line) for
  values that cannot work: the loop's, the task's (`Task.check`) and the
  method's."""
  migration.migrate(config)
  base.check_fields([
      (config.batch_size >= 1,
       f'batch_size must be >= 1, got {config.batch_size}'),
      (config.steps_per_call >= 1,
       f'steps_per_call must be >= 1, got {config.steps_per_call}'),
      (config.num_train_steps >= 0,
       f'num_train_steps must be >= 0, got {config.num_train_steps}'),
      (config.optimizer.learning_rate > 0,
       f'optimizer.learning_rate must be > 0, got '
       f'{config.optimizer.learning_rate}'),
      (config.eval.batch_size >= 1,
       f'eval.batch_size must be >= 1, got {config.eval.batch_size}'),
      (config.seed >= 0, f'seed must be >= 0, got {config.seed}'),
      (0 <= config.eval.threshold <= 1,
       f'eval.threshold must be in [0, 1], got {config.eval.threshold}'),
      (not config.init_from or param_files.files_exist(config.init_from),
       f'init_from file not found: {config.init_from} (export one with '
       '--mode=export --params=FILE)'),
      (config.keep_best_checkpoints >= 0,
       'keep_best_checkpoints must be >= 0'),
      (config.data.cv_folds == 0 or config.data.cv_folds >= 2,
       f'data.cv_folds must be 0 (off) or >= 2, got {config.data.cv_folds}'),
      (config.data.cv_folds == 0 or 0 <= config.data.cv_fold
       < config.data.cv_folds, f'data.cv_fold must be in [0, '
       f'{config.data.cv_folds}), got {config.data.cv_fold}'),
  ] + [(config[every] >= 1, f'{every} must be >= 1')
       for every in ('log_every_steps', 'eval_every_steps',
                     'checkpoint_every_steps', 'max_checkpoints_to_keep')])
  train_state.ema_decay(config)
  make_optimizer(config.optimizer)
  task = tasks.get(config)
  task.check()
  method = methods.get(config)
  method.check(task, create_model(config), config)
  if 'eval' in config and config.eval.get('calibration') and not hasattr(
      method, 'bind'):
    raise ConfigError(f"bad config: eval.calibration needs a value network; "
                      f"method {config.method!r} predicts without one")
