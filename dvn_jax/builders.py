"""A config -> the things it describes: the model, the optimizer, the tuple
and ascent specs, the data loader; and `check_config`, which refuses a
config that cannot work in one line (`ConfigError`) before any work.

No ConfigDict enters a jitted function: train.py closes over what these
build (hashable specs, Flax modules, Optax transformations).
"""

from __future__ import annotations

import os
from typing import Any

import flax.linen as nn
import jax
import ml_collections
import optax

from dvn_jax import param_files
from dvn_jax import fcn_starts
from dvn_jax import inference
from dvn_jax import models
from dvn_jax import tasks
from dvn_jax import tuples
from dvn_jax.datasets import horses
from dvn_jax.datasets import part_labels
from dvn_jax.errors import ConfigError

# config.data.name -> (loader of all splits from config.data.path, the
# number of mask channels it needs: 1 foreground channel for binary masks).
SEGMENTATION_DATA = {
    'weizmann_horses': (lambda path: horses.load_weizmann_horses(path or None),
                        1),
    'lfw_part_labels': (part_labels.load_part_labels, part_labels.NUM_CLASSES),
}

# config.init_layers -> the prefix of the parameter names warm_start copies.
INIT_PREFIXES = {'tower': 'tower/', 'all': ''}

# The values of config.eval.ensemble (`eval_ensemble`).
ENSEMBLES = ('outputs', 'values')


def ema_decay(config: ml_collections.ConfigDict) -> float:
  """config.ema_decay (0 = no moving average), checked to be in [0, 1)."""
  decay = config.get('ema_decay', 0.0)
  if not 0.0 <= decay < 1.0:
    raise ConfigError(f'bad config: ema_decay must be in [0, 1) (0 = off), '
                      f'got {decay}')
  return decay


def tuple_echo(config: ml_collections.ConfigDict) -> int:
  """config.tuples.echo: value-net updates on each generated batch of tuples
  (1 = one, the paper's; k > 1 reuses the tuples k times, "data echoing",
  Choi et al. 2019: the tuples' oracle values are exact, so reuse only ages
  them). Checked to be >= 1. Classifiers (no tuples) make one update."""
  if config.model.name in models.CLASSIFIERS:
    return 1
  echo = config.get('tuples', {}).get('echo', 1)
  if not isinstance(echo, int) or echo < 1:
    raise ConfigError(f'bad config: tuples.echo must be an integer >= 1 '
                      f'(1 = no reuse), got {echo!r}')
  return echo


def eval_ensemble(config: ml_collections.ConfigDict) -> str:
  """config.eval.ensemble: how an ensemble file's value networks combine
  at test time: 'outputs' (each its own ascent, outputs averaged) or
  'values' (one ascent on their mean value); 'outputs' where the config has
  none (one saved before the field existed)."""
  return config.get('eval', {}).get('ensemble', 'outputs')


def segmentation_data_name(config: ml_collections.ConfigDict) -> str:
  name = config.data.get('name', 'weizmann_horses')
  if name not in SEGMENTATION_DATA:
    raise ConfigError(f'unknown data.name {name!r} for segmentation; choose '
                      f'one of {sorted(SEGMENTATION_DATA)}')
  return name


def init_model_params(model: nn.Module, config: ml_collections.ConfigDict,
                      rng: jax.Array) -> Any:
  """Initial parameters for one training input and output of the task."""
  if tasks.task_name(config) == 'segmentation':
    return models.init_params(model, rng, config.crop_size,
                              tasks.num_classes(config))
  return models.init_params_for_shapes(model, rng, (config.data.num_features,),
                                       (config.model.num_labels,))


def ascent_spec_from_config(cfg: ml_collections.ConfigDict
                            ) -> inference.AscentSpec:
  return inference.AscentSpec(num_steps=cfg.num_steps,
                              step_size=cfg.step_size,
                              projection=cfg.projection, ascend=cfg.ascend,
                              unroll=cfg.unroll or True,  # 0: fully
                              noise_std=cfg.get('noise_std', 0.0))


def tuple_spec_from_config(config: ml_collections.ConfigDict
                           ) -> tuples.TupleSpec:
  t = config.tuples
  # Generators with weight 0 are left out; the batch is split in the fixed
  # order of tuples.GENERATORS (unknown names sort last; TupleSpec rejects
  # them, and negative or all-zero weights).
  order = {name: i for i, name in enumerate(tuples.GENERATORS)}
  mix = tuple(sorted(((name, float(w)) for name, w in t.mix.items() if w != 0),
                     key=lambda item: order.get(item[0], len(order))))
  return tuples.TupleSpec(
      mix=mix, oracle=config.oracle, loss=config.loss,
      inference_ascent=ascent_spec_from_config(t.inference),
      inference_pick=t.inference_pick, inference_points=t.inference_points,
      temperature=t.temperature,
      adversarial_ascent=ascent_spec_from_config(t.adversarial),
      adversarial_start=t.adversarial_start,
      adversarial_objective=t.get('adversarial_objective', 'loss'),
      inference_chains=t.get('inference_chains', False),
      chain_steps=t.get('chain_steps', 1))


def make_optimizer(cfg: ml_collections.ConfigDict, num_train_steps: int,
                   updates_per_step: int = 1) -> optax.GradientTransformation:
  """SGD (with momentum) or Adam; optional cosine schedule, weight decay on
  kernels only, and gradient clipping. Schedules count train steps, each of
  `updates_per_step` optimizer updates (tuples.echo)."""
  if cfg.schedule == 'constant':
    lr = cfg.learning_rate
  elif cfg.schedule == 'cosine':
    lr = optax.warmup_cosine_decay_schedule(
        0.0, cfg.learning_rate, cfg.warmup_steps,
        max(num_train_steps, cfg.warmup_steps + 1))
  elif cfg.schedule == 'piecewise':
    # × decay_factor at each step of decay_steps (e.g. the authors' Bibtex
    # schedule: ×0.1 after 150 and after 300 epochs).
    boundaries = list(cfg.get('decay_steps', ()))
    if sorted(boundaries) != boundaries or any(b <= 0 for b in boundaries):
      raise ConfigError('optimizer.decay_steps must be increasing positive '
                        f'steps, got {boundaries}')
    factor = cfg.get('decay_factor', 0.1)
    lr = optax.piecewise_constant_schedule(
        cfg.learning_rate, {b: factor for b in boundaries})
  else:
    raise ConfigError(f"optimizer.schedule must be 'constant', 'cosine' or "
                      f"'piecewise', got {cfg.schedule!r}")
  if callable(lr) and updates_per_step > 1:
    lr = lambda count, schedule=lr: schedule(count // updates_per_step)
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


def create_model(config: ml_collections.ConfigDict) -> nn.Module:
  """The model of config.model; a segmentation value net's mask channels
  are the task's number of classes."""
  kwargs = dict(config.model)
  name = kwargs.pop('name')
  if (tasks.task_name(config) == 'segmentation' and
      name in models.MODELS and 'mask_channels' in
      models.MODELS[name].__dataclass_fields__):
    kwargs.setdefault('mask_channels', tasks.num_classes(config))
  return models.create_model(name, **kwargs)


def _files_exist(paths: str) -> bool:
  """Whether each parameter file of `paths` (one, or a.npz,b.npz:
  `param_files.param_file_names`; 'c.npz:model' names c.npz) is there."""
  return all(os.path.isfile(param_files.split_section(path)[0])
             for path in param_files.param_file_names(paths))


def check_config(config: ml_collections.ConfigDict) -> None:
  """Raises ConfigError (one line) for values that cannot work."""
  segmentation = tasks.task_name(config) == 'segmentation'
  checks = [
      (not segmentation or config.crop_size <= config.image_size,
       f'crop_size {config.crop_size} > image_size {config.image_size}'
       if segmentation else ''),
      (not segmentation or config.crop_size >= 1,
       f'crop_size must be >= 1, got {config.get("crop_size")}'),
      (config.batch_size >= 1,
       f'batch_size must be >= 1, got {config.batch_size}'),
      (config.num_train_steps >= 0,
       f'num_train_steps must be >= 0, got {config.num_train_steps}'),
      (config.optimizer.learning_rate > 0,
       f'optimizer.learning_rate must be > 0, got '
       f'{config.optimizer.learning_rate}'),
      (config.eval.batch_size >= 1,
       f'eval.batch_size must be >= 1, got {config.eval.batch_size}'),
      (config.seed >= 0, f'seed must be >= 0, got {config.seed}'),
      (0 <= config.eval.get('threshold', 0.5) <= 1,
       f'eval.threshold must be in [0, 1], got '
       f'{config.eval.get("threshold")}'),
  ]
  init_layers = config.get('init_layers', 'tower')
  checks.append((init_layers in INIT_PREFIXES,
                 f'init_layers must be one of {sorted(INIT_PREFIXES)}, got '
                 f'{init_layers!r}'))
  if config.init_from:
    checks.append((_files_exist(config.init_from),
                   f'init_from file not found: {config.init_from} (export '
                   'one with --mode=export --params=FILE)'))
  start = config.get('start')
  if start is not None and start.params:
    checks.append((_files_exist(start.params),
                   f'start.params file not found: {start.params} (export a '
                   'trained configs/horses_fcn.py run with --mode=export '
                   '--params=FILE)'))
    checks.append((0 < start.scale <= 1,
                   f'start.scale must be in (0, 1], got {start.scale}'))
    folds = fcn_starts.start_folds(config)
    checks.append((folds >= 0, f'start.folds must be >= 0, got {folds}'))
    checks.append((not folds or
                   not config.get('augment', {}).get('scale', 0.0),
                   'start.folds > 0 (cross-fitted starts) cannot be combined '
                   'with augment.scale > 0 (the scale jitter would make the '
                   'start maps hard); set one of them to 0'))
  num_folds = config.data.get('num_folds', 0)
  held_out = config.data.get('held_out_fold', -1)
  checks.append((num_folds == 0 or 0 <= held_out < num_folds,
                 f'data.held_out_fold must be in [0, {num_folds}) with '
                 f'data.num_folds={num_folds}, got {held_out}'))
  checks.append((num_folds > 0 or held_out == -1,
                 f'data.held_out_fold={held_out} needs data.num_folds > 0'))
  fcn = config.get('eval', {}).get('fcn')
  start_scale = fcn_starts.eval_fcn_start_scale(config)
  prior_weight = fcn_starts.eval_fcn_prior_weight(config)
  if fcn is not None and (fcn.weight or start_scale or prior_weight):
    checks.append((0 <= fcn.weight <= 1,
                   f'eval.fcn.weight must be in [0, 1], got {fcn.weight}'))
    checks.append((0 <= start_scale <= 1,
                   f'eval.fcn.start_scale must be in [0, 1], got '
                   f'{start_scale}'))
    checks.append((prior_weight >= 0,
                   f'eval.fcn.prior_weight must be >= 0, got {prior_weight}'))
    checks.append((_files_exist(fcn.params),
                   f'eval.fcn.params file not found: {fcn.params!r} (needed '
                   'by eval.fcn.weight, start_scale or prior_weight > 0; '
                   'export a trained '
                   'configs/horses_fcn.py run with --mode=export '
                   '--params=FILE)'))
  ensemble = eval_ensemble(config)
  checks.append((ensemble in ENSEMBLES,
                 f'eval.ensemble must be one of {ENSEMBLES}, got '
                 f'{ensemble!r}'))
  for every in ('log_every_steps', 'eval_every_steps', 'checkpoint_every_steps',
                'max_checkpoints_to_keep'):
    checks.append((config[every] >= 1, f'{every} must be >= 1'))
  checks.append((config.keep_best_checkpoints >= 0,
                 'keep_best_checkpoints must be >= 0'))
  if segmentation:
    checks.append((not config.get('iou_loss_weight', 0.0) or
                   tasks.num_classes(config) == 1,
                   'iou_loss_weight is for binary masks (sigmoid outputs); '
                   f'this task has {tasks.num_classes(config)} classes'))
    augment = config.augment
    checks.append((0 <= augment.scale < 1,
                   f'augment.scale must be in [0, 1), got {augment.scale}'))
    for name in ('brightness', 'contrast', 'saturation'):
      checks.append((augment[name] >= 0,
                     f'augment.{name} must be >= 0, got {augment[name]}'))
  for ok, message in checks:
    if not ok:
      raise ConfigError(f'bad config: {message}')
  ema_decay(config)
  # Building the specs validates the rest.
  create_model(config)
  if config.model.name not in models.CLASSIFIERS:
    tuple_echo(config)
    tuple_spec_from_config(config)
    ascent_spec_from_config(config.eval.inference)
  if segmentation:
    inference.crop_offsets(config.image_size, config.crop_size,
                           config.eval.num_crops)
    data_name = segmentation_data_name(config)
    expected = SEGMENTATION_DATA[data_name][1]
    if tasks.num_classes(config) != expected:
      raise ConfigError('bad config: num_classes is '
                        f'{tasks.num_classes(config)} '
                        f'but {data_name} masks have {expected} channel(s); '
                        f'set --config.num_classes={expected}')
    if (config.model.name == 'fcn' and
        config.model.get('num_classes', 1) != expected):
      raise ConfigError(f'bad config: the FCN predicts '
                        f'{config.model.get("num_classes", 1)} channel(s) but '
                        f'{data_name} masks have {expected}; set '
                        f'--config.model.num_classes={expected}')
