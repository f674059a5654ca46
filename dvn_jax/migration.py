"""Configs written for earlier versions of the library, read as today's.

Defaults live in the config files (configs/); the code reads every field
directly. A config written before a field existed, or holding one that has
since been removed, goes through `migrate` once (builders.check_config
calls it): an added field takes the value that reproduces the old
behaviour; a removed field is dropped when it holds its "off" value, and
refused in one line otherwise (its variant lost or tied on val and left the
code: docs/<task>.md, "Findings").
"""

from __future__ import annotations

from typing import Any

import ml_collections

from dvn_jax import tasks
from dvn_jax.errors import ConfigError

# Fields added since the first configs, with the value that keeps what an
# older config meant (dotted paths; '*' stands for each ascent settings
# block: tuples.inference, tuples.adversarial, eval.inference).
ADDED: dict[str, Any] = {
    'task': 'segmentation',
    'num_devices': 0,
    'ema_decay': 0.0,
    'init_from': '',
    'steps_per_call': 1,
    'data.cv_folds': 0,
    'data.cv_fold': 0,
    'tuples.adversarial_objective': 'loss',
    'tuples.inference_chains': False,
    'tuples.chain_steps': 1,
    'tuples.replay_size': 0,
    'tuples.replay_share': 0.0,
    'optimizer.decay_steps': (),
    'optimizer.decay_factor': 0.1,
    'optimizer.grad_clip_norm': 0.0,
    'optimizer.weight_decay': 0.0,
    'eval.score_live_params': True,
    'eval.calibration': False,
    'eval.threshold': 0.5,
    '*.noise_std': 0.0,
    '*.unroll': 0,
}
# Removed fields and the value that meant "off": dropped when they hold it.
REMOVED_OFF: dict[str, Any] = {
    'tuples.start_noise': 0.0,
    'tuples.echo': 1,
    'tuples.mix.extrapolated': 0.0,
    'eval.ensemble': 'outputs',
    'eval.fcn.weight': 0.0,
    'iou_loss_weight': 0.0,
    'gradient_loss_weight': 0.0,
    'gradient_loss_stride': 1,
    'tuples.chains_params': 'live',
    'mask_loss_weight': 0.0,
    'start.params': '',
    'start.folds': 0,
    'data.num_folds': 0,
    'data.held_out_fold': -1,
    'augment.scale': 0.0,
    'augment.brightness': 0.0,
    'augment.contrast': 0.0,
    'augment.saturation': 0.0,
    'optimizer.warmup_steps': 0,
    '*.ascend': 'value',
}
# Removed fields whose value no longer matters once the above are off.
REMOVED_ANY = ('start.scale', 'init_layers')
# Removed values of fields that stay: refused in one line.
REMOVED_VALUES: dict[str, tuple[Any, ...]] = {
    'tuples.adversarial_start': ('zeros', 'inference',
                                 'ground_truth_or_inference', 'stratified'),
    'optimizer.schedule': ('cosine',),
    'optimizer.name': ('adamw',),
}
BASELINE_MODELS = ('fcn', 'mlc_classifier')   # how older configs said it


def _blocks(config: ml_collections.ConfigDict) -> list[str]:
  """The ascent settings blocks a config has."""
  return [path for path in ('tuples.inference', 'tuples.adversarial',
                            'eval.inference') if _has(config, path)]


def _expand(config: ml_collections.ConfigDict, path: str) -> list[str]:
  if path.startswith('*.'):
    return [f'{block}.{path[2:]}' for block in _blocks(config)]
  return [path]


def _has(config: ml_collections.ConfigDict, path: str) -> bool:
  node = config
  for key in path.split('.'):
    if not isinstance(node, ml_collections.ConfigDict) or key not in node:
      return False
    node = node[key]
  return True


def _get(config: ml_collections.ConfigDict, path: str) -> Any:
  node = config
  for key in path.split('.'):
    node = node[key]
  return node


def _parent(config: ml_collections.ConfigDict, path: str
            ) -> tuple[ml_collections.ConfigDict | None, str]:
  *head, key = path.split('.')
  node = config
  for part in head:
    if part not in node:
      return None, key
    node = node[part]
  return node, key


def _set(config: ml_collections.ConfigDict, path: str, value: Any) -> None:
  parent, key = _parent(config, path)
  if parent is not None:
    parent[key] = value


def _drop(config: ml_collections.ConfigDict, path: str) -> None:
  parent, key = _parent(config, path)
  if parent is not None and key in parent:
    del parent[key]
    if not parent.keys() and path.count('.'):
      _drop(config, path.rsplit('.', 1)[0])   # an emptied block goes too


def _removed(path: str, value: Any, field_left: bool = False) -> ConfigError:
  """The one-line refusal of a removed field (or, `field_left`, a removed
  value of a field that stays)."""
  fix = ('set it to a value the config files use' if field_left else
         'delete the field from your config')
  return ConfigError(
      f'bad config: {path}={value!r} was removed from the library (it lost '
      'or tied on val; the Findings of docs/horses.md and docs/multilabel.md '
      f'name the commit where it last existed); {fix}')


def _migrate_eval_fcn(config: ml_collections.ConfigDict) -> None:
  """eval.fcn (the hybrid's baseline) with its network's config; older
  configs kept that network in start.model."""
  if not _has(config, 'eval'):
    return
  model = (config.start.model if _has(config, 'start.model') else
           ml_collections.ConfigDict(dict(name='fcn', skips=True)))
  if not _has(config, 'eval.fcn'):
    config.eval.fcn = ml_collections.ConfigDict(dict(
        params='', model=model, start_scale=0.0, prior_weight=0.0))
  for field, value in (('model', model), ('start_scale', 0.0),
                       ('prior_weight', 0.0)):
    if field not in config.eval.fcn:
      config.eval.fcn[field] = value


def migrate(config: ml_collections.ConfigDict) -> None:
  """`config` as today's library reads it (module docstring), in place;
  ConfigError naming a removed field set to a removed variant."""
  with config.unlocked():
    if 'task' not in config:
      config.task = ADDED['task']
    added = {**ADDED, **vars(tasks.module(config.task)).get(
        'MIGRATION_DEFAULTS', {})}
    for pattern, value in added.items():
      for path in _expand(config, pattern):
        if not _has(config, path):
          _set(config, path, value)
    if 'method' not in config:
      config.method = ('baseline' if config.model.name in BASELINE_MODELS
                       else 'dvn')
    _migrate_eval_fcn(config)
    for pattern, off in REMOVED_OFF.items():
      for path in _expand(config, pattern):
        if _has(config, path):
          if _get(config, path) != off:
            raise _removed(path, _get(config, path))
          _drop(config, path)
    if _has(config, 'init_layers') and config.init_from and (
        config.init_layers != 'all'):
      raise _removed('init_layers', config.init_layers)   # ('all' stays)
    for path in REMOVED_ANY + ('start.model', 'start'):
      _drop(config, path)
    for path, values in REMOVED_VALUES.items():
      if _has(config, path) and _get(config, path) in values:
        raise _removed(path, _get(config, path), field_left=True)
    _drop_task_owned(config)


def _drop_task_owned(config: ml_collections.ConfigDict) -> None:
  """Fields older configs set that the task now fixes (the oracle, the
  ascents' projection, an FCN's class count): dropped when they agree with
  it, refused in one line when not."""
  task = tasks.get(config)
  owned = [('oracle', task.oracle),
           ('model.num_classes', config.get('num_classes'))]
  owned += [(path, task.output_set)
            for path in _expand(config, '*.projection')]
  for path, value in owned:
    if _has(config, path):
      if _get(config, path) != value:
        raise ConfigError(
            f'bad config: {path}={_get(config, path)!r}, but the task fixes '
            f'it as {value!r}; delete the field from your config')
      _drop(config, path)
