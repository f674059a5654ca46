"""Training and evaluation: `train_and_evaluate(config, workdir)`.

config -> dataset (in device memory) -> `train_step(state, inputs, targets,
indices)`, which takes a batch (random crops for segmentation), generates
tuples (tuples.py, which calls inference.py and oracles.py) and takes one
optimizer step -> metrics, checkpoints. `evaluate_checkpoint` restores a
workdir's latest checkpoint and scores a split with predictors.py's
`make_predict_fn`. No ConfigDict enters a jitted function: builders.py
turns configs into hashable specs, models and optimizers, which are
closed over.

Two tasks share the loop (`config.task`): 'segmentation' (images and
masks, crops; binary horses scored by IoU, 3-class faces by superpixel
accuracy) and 'multilabel' (Bibtex, Bookmarks: feature and label vectors,
F1).
"""

from __future__ import annotations

import functools
import json
import os
import time
from collections.abc import Callable
from collections.abc import Sequence
from typing import Any

import flax
import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
from absl import logging
from clu import parameter_overview

from dvn_jax import builders
from dvn_jax import checkpoints
from dvn_jax import evaluate
from dvn_jax import fcn_starts
from dvn_jax import files
from dvn_jax import input_pipeline
from dvn_jax import losses
from dvn_jax import models
from dvn_jax import parallel
from dvn_jax import param_files
from dvn_jax import predictors
from dvn_jax import preemption
from dvn_jax import stacked
from dvn_jax import tasks
from dvn_jax import tuples
from dvn_jax import writers
from dvn_jax.datasets import kfold
from dvn_jax.datasets import multilabel
from dvn_jax.datasets import part_labels
from dvn_jax.errors import ConfigError
from dvn_jax.errors import DvnError

Array = jax.Array


class TrainingDivergedError(DvnError):
  """The loss or the parameters became non-finite."""


class TrainState(flax.struct.PyTreeNode):
  step: Array
  params: Any
  opt_state: Any
  # Persistent inference chains (tuples.InferenceChains) or None.
  chains: Any = None
  # An exponential moving average of `params` (config.ema_decay > 0) or
  # None; when present it is what evaluation, export and prediction use.
  ema_params: Any = None


def update_ema(ema_params: Any, params: Any, decay: float, step: Array) -> Any:
  """One step of the parameters' exponential moving average.

  The decay is min(decay, (1 + step) / (10 + step)), so the average of a
  short run is not dominated by the initial parameters (as in
  tf.train.ExponentialMovingAverage with num_updates).
  """
  rate = jnp.minimum(decay, (1.0 + step) / (10.0 + step))
  return jax.tree.map(lambda e, p: rate * e + (1.0 - rate) * p, ema_params,
                      params)


def make_averager(config: ml_collections.ConfigDict) -> Callable[..., Any]:
  """averaged(ema_params, new_params, num_updates) -> the next moving average
  (None without one), for the train steps; num_updates counts the updates
  before this one (train steps times tuples.echo), for the warm-up."""
  decay = builders.ema_decay(config)

  def averaged(ema_params: Any, params: Any, num_updates: Array) -> Any:
    if ema_params is None:
      return None
    return update_ema(ema_params, params, decay, num_updates)

  return averaged


def fresh_copy(params: Any) -> Any:
  """A copy in new buffers (the moving average's start: the train step
  donates the state, and one buffer cannot be donated twice)."""
  return jax.tree.map(jnp.copy, params)


def eval_params(state: TrainState) -> Any:
  """The parameters to evaluate: the moving average if there is one."""
  return state.params if state.ema_params is None else state.ema_params


def init_chains(config: ml_collections.ConfigDict
                ) -> tuples.InferenceChains | None:
  """Persistent inference chains of a value-net config that asks for them
  (`tuples.inference_chains`), shaped like its training examples."""
  if config.model.name in models.CLASSIFIERS:
    return None
  spec = builders.tuple_spec_from_config(config)
  count = tuples.num_chains(config.batch_size, spec)
  if count == 0:
    return None
  if tasks.task_name(config) == 'segmentation':
    crop = (config.crop_size, config.crop_size)
    x_shape = (count, *crop, 3)
    y_shape = (count, *crop, tasks.num_classes(config))
  else:
    x_shape = (count, config.data.num_features)
    y_shape = (count, config.model.num_labels)
  return tuples.init_chains(x_shape, y_shape, spec)


def create_state(model: nn.Module, tx: optax.GradientTransformation,
                 config: ml_collections.ConfigDict) -> TrainState:
  params = builders.init_model_params(model, config,
                                      jax.random.key(config.seed))
  return TrainState(step=jnp.zeros((), jnp.int32), params=params,
                    opt_state=tx.init(params), chains=init_chains(config),
                    ema_params=(fresh_copy(params)
                                if builders.ema_decay(config) > 0 else None))


def state_shardings(mesh: jax.sharding.Mesh, chains: bool,
                    ema: bool) -> TrainState:
  """Shardings of a train state (a pytree prefix): everything replicated
  but the inference chains (if any), split over the devices like a batch."""
  rep = parallel.replicated(mesh)
  return TrainState(step=rep, params=rep, opt_state=rep,
                    chains=parallel.batch_sharded(mesh) if chains else None,
                    ema_params=rep if ema else None)


def place_state(state: TrainState, mesh: jax.sharding.Mesh) -> TrainState:
  """`state` as global arrays with `state_shardings`."""
  shardings = state_shardings(mesh, state.chains is not None,
                              state.ema_params is not None)
  return jax.tree.map(lambda sharding, part: parallel.put_tree(part, sharding),
                      shardings, state)


def restore_train_state(manager: Any, state: TrainState,
                        set_aside_damaged: bool = True) -> TrainState | None:
  """The latest checkpoint restored into `state`'s structure (None if there
  is none). A run that kept no moving average resumes with one (ema_decay
  raised mid-run): the average starts from the restored parameters (so
  evaluating such a run with ema_decay on scores its parameters)."""
  alternatives = ([state.replace(ema_params=None)]
                  if state.ema_params is not None else [])
  restored = checkpoints.restore_latest(manager, state, set_aside_damaged,
                                        alternatives)
  if restored is None or restored.ema_params is not None or not alternatives:
    return restored
  logging.info('The checkpoint has no moving average of the parameters; it '
               'starts from the restored parameters')
  return restored.replace(ema_params=fresh_copy(restored.params))


def warm_start_state(state: TrainState, tx: optax.GradientTransformation,
                     path: str, layers: str = 'tower') -> TrainState:
  """`state` with its conv tower (layers 'tower', e.g. from an FCN) or every
  layer (layers 'all', a value-net export) taken from a parameter file; a
  fresh optimizer state, and the moving average restarted from them."""
  params, copied = param_files.warm_start(state.params, path,
                                          builders.INIT_PREFIXES[layers])
  logging.info('Warm start from %s: %s', path, ', '.join(copied))
  params = jax.tree.map(jnp.asarray, params)
  return state.replace(params=params, opt_state=tx.init(params),
                       ema_params=(None if state.ema_params is None else
                                   fresh_copy(params)))


# ---------------------------------------------------------- train steps ----


def make_batch_fn(config: ml_collections.ConfigDict) -> Callable:
  """batch(rng, inputs, targets) -> (x, y*): random crops (and flips, and
  `config.augment`'s scale jitter and colour jitter of x) for segmentation,
  the examples as they are for multi-label."""
  if tasks.task_name(config) == 'multilabel':
    return lambda rng, inputs, targets: (inputs, targets)
  crop_size, flip = config.crop_size, config.flip
  jitter = dict(config.augment)
  scale = jitter.pop('scale')

  def batch(rng: Array, images: Array, masks: Array) -> tuple[Array, Array]:
    if scale:
      x, y_star = input_pipeline.random_scaled_crops(
          rng, images, masks, crop_size, flip, scale)
    else:
      x, y_star = input_pipeline.random_crops(rng, images, masks, crop_size,
                                              flip)
    # A key of its own (the crops keep `rng`: runs without jitter draw the
    # crops they always drew).
    x = input_pipeline.color_jitter(jax.random.fold_in(rng, 1), x, **jitter)
    return x, y_star

  return batch


def jit_train_step(train_step: Callable, mesh: jax.sharding.Mesh | None,
                   chains: bool = False, ema: bool = False) -> Callable:
  """jit with the state donated; on a mesh, everything replicated but the
  batch indices and the inference chains, which are split over the devices
  (parallel.py, `state_shardings`)."""
  if mesh is None:
    return jax.jit(train_step, donate_argnums=(0,))
  rep, batch = parallel.replicated(mesh), parallel.batch_sharded(mesh)
  state = state_shardings(mesh, chains, ema)
  return jax.jit(train_step, in_shardings=(state, rep, rep, batch),
                 out_shardings=(state, rep), donate_argnums=(0,))


def make_train_step(model: nn.Module, tx: optax.GradientTransformation,
                    config: ml_collections.ConfigDict,
                    mesh: jax.sharding.Mesh | None = None) -> Callable:
  """jit(train_step)(state, inputs, targets, indices) -> (state, metrics).

  inputs and targets are the whole training set as float32 on the device
  (images (N, H, W, 3) and masks (N, H, W, K), or features (N, D) and labels
  (N, L)); indices (B,) pick the batch. With start.folds > 0 the targets
  are (N, H, W, 2K): the masks, then `fcn_starts.crossfit_start_maps`.
  With a mesh, the step is data parallel over its devices (parallel.py).
  """
  if config.model.name in models.CLASSIFIERS:
    return make_classifier_train_step(model, tx, config, mesh)
  spec = builders.tuple_spec_from_config(config)
  batch_fn = make_batch_fn(config)
  loss_fn = losses.get_loss(config.loss)
  sizes = tuples.split_sizes(config.batch_size, spec.mix)
  base_key = jax.random.key(config.seed)
  averaged = make_averager(config)
  echo = builders.tuple_echo(config)
  start_fn = fcn_starts.make_start_fn(config)
  crossfit = fcn_starts.start_folds(config) > 0
  k = tasks.num_classes(config)

  def train_step(state, inputs, targets, indices):
    rng = jax.random.fold_in(base_key, state.step)
    rng_crop, rng_tuples, rng_dropout = jax.random.split(rng, 3)
    x, y_star = batch_fn(rng_crop, inputs[indices], targets[indices])
    starts = None
    if crossfit:   # targets carry crossfit_start_maps after the masks
      if targets.shape[-1] != 2 * k:
        raise ConfigError(
            f'start.folds > 0: the train step needs targets of {2 * k} '
            f'channels (the masks, then their start maps, as '
            f'train_and_evaluate builds them), got {targets.shape[-1]}')
      y_star, starts = y_star[..., :k], y_star[..., k:]
    x, y, v_star, chains = tuples.generate_tuples_with_chains(
        rng_tuples, predictors.bind_logit_fn(model, state.params, start_fn),
        x, y_star, spec, state.chains, starts)

    def loss(params, rng):
      logits = model.apply({'params': params}, x, y, train=True,
                           rngs={'dropout': rng})
      return jnp.mean(loss_fn(logits, v_star)), logits

    # `echo` updates on the same tuples, each with its own dropout key (a
    # Python loop: XLA's CPU convolutions are slow inside a while loop).
    # The metrics are the first update's: the value error on fresh tuples.
    params, opt_state, ema = state.params, state.opt_state, state.ema_params
    for i in range(echo):
      key = rng_dropout if i == 0 else jax.random.fold_in(rng_dropout, i)
      (loss_i, logits_i), grads_i = jax.value_and_grad(loss, has_aux=True)(
          params, key)
      updates, opt_state = tx.update(grads_i, opt_state, params)
      params = optax.apply_updates(params, updates)
      ema = averaged(ema, params, state.step * echo + i)
      if i == 0:
        loss_value, logits, grads = loss_i, logits_i, grads_i
    abs_error = jnp.abs(jax.nn.sigmoid(logits) - v_star)
    metrics = {'loss': loss_value, 'value_abs_error': abs_error.mean(),
               'grad_norm': optax.tree.norm(grads),
               'param_norm': optax.tree.norm(params)}
    start = 0
    for name, size in sizes:
      metrics[f'v_star/{name}'] = v_star[start:start + size].mean()
      metrics[f'abs_error/{name}'] = abs_error[start:start + size].mean()
      start += size
    return TrainState(state.step + 1, params, opt_state, chains, ema), metrics

  return jit_train_step(train_step, mesh,
                        chains=tuples.num_chains(config.batch_size, spec) > 0,
                        ema=builders.ema_decay(config) > 0)


def make_classifier_train_step(model: nn.Module,
                               tx: optax.GradientTransformation,
                               config: ml_collections.ConfigDict,
                               mesh: jax.sharding.Mesh | None = None
                               ) -> Callable:
  """Per-output cross-entropy: the FCN (per pixel, on random crops; sigmoid
  for binary masks, softmax over K classes) and the multi-label baselines
  (sigmoid per label)."""
  base_key = jax.random.key(config.seed)
  batch_fn = make_batch_fn(config)
  averaged = make_averager(config)
  multiclass = (tasks.task_name(config) == 'segmentation'
                and tasks.num_classes(config) > 1)
  # Ours (configs/horses_fcn.py): + iou_loss_weight x (1 - relaxed IoU of the
  # sigmoid mask), per crop; 0 = the paper's per-pixel cross-entropy alone.
  # (builders.check_config refuses it for multi-class masks.)
  iou_weight = float(config.get('iou_loss_weight', 0.0))

  def train_step(state, inputs, targets, indices):
    rng = jax.random.fold_in(base_key, state.step)
    # Crops use `rng` itself, as before dropout existed here, so the FCN
    # baseline still trains on the same crops.
    rng_dropout = jax.random.fold_in(rng, 1)
    x, y_star = batch_fn(rng, inputs[indices], targets[indices])

    def loss(params):
      logits = model.apply({'params': params}, x, train=True,
                           rngs={'dropout': rng_dropout})
      if multiclass:
        return optax.softmax_cross_entropy(logits, y_star).mean()
      value = optax.sigmoid_binary_cross_entropy(logits, y_star).mean()
      if iou_weight:
        value += iou_weight * losses.soft_iou_loss(logits, y_star)
      return value

    loss_value, grads = jax.value_and_grad(loss)(state.params)
    updates, opt_state = tx.update(grads, state.opt_state, state.params)
    params = optax.apply_updates(state.params, updates)
    metrics = {'loss': loss_value, 'grad_norm': optax.tree.norm(grads),
               'param_norm': optax.tree.norm(params)}
    ema = averaged(state.ema_params, params, state.step)
    return TrainState(state.step + 1, params, opt_state,
                      ema_params=ema), metrics

  return jit_train_step(train_step, mesh, ema=builders.ema_decay(config) > 0)


# ------------------------------------------------------------- evaluate ----


def evaluate_split(predict_fn: Callable, params: Any, split: Any,
                   config: ml_collections.ConfigDict) -> dict[str, float]:
  """Mean and global IoU (binary segmentation), superpixel and pixel
  accuracy (K classes) or example-averaged F1 (multi-label), in %."""
  if isinstance(split, part_labels.PartLabelsSplit):
    return evaluate.evaluate_multiclass(functools.partial(predict_fn, params),
                                        split, config.eval.batch_size)
  if isinstance(split, multilabel.MultiLabelSplit):
    return evaluate.evaluate_multilabel(
        functools.partial(predict_fn, params), split.features, split.labels,
        config.eval.batch_size, config.eval.threshold)
  return evaluate.evaluate_segmentation(
      functools.partial(predict_fn, params), split.images, split.masks,
      config.eval.batch_size, config.eval.threshold)


def format_metrics(metrics: dict[str, float]) -> str:
  """The headline numbers of an evaluation, for one printed line."""
  if 'superpixel_accuracy' in metrics:
    return (f'superpixel accuracy {metrics["superpixel_accuracy"]:.2f}, '
            f'pixel accuracy {metrics["pixel_accuracy"]:.2f}')
  if 'f1' in metrics:
    return (f'F1 {metrics["f1"]:.2f} (precision {metrics["precision"]:.2f}, '
            f'recall {metrics["recall"]:.2f})')
  return (f'mean IoU {metrics["mean_iou"]:.2f}, '
          f'global IoU {metrics["global_iou"]:.2f}')


# ----------------------------------------------------------------- loop ----


def load_data(config: ml_collections.ConfigDict) -> dict[str, Any]:
  """All splits of the config's dataset, keyed by name.

  Multi-label features are z-scored with the statistics of the whole
  training file ('trainval'; never test), so a model scores the same
  whichever split it was trained on.
  """
  if tasks.task_name(config) == 'segmentation':
    name = builders.segmentation_data_name(config)
    loader, _ = builders.SEGMENTATION_DATA[name]
    return loader(config.data.path)
  name = config.data.name
  if name not in multilabel.LOADERS:
    raise ConfigError(f'unknown data.name {name!r}; choose one of '
                      f'{sorted(multilabel.LOADERS)}')
  splits = multilabel.LOADERS[name](config.data.path)
  train = splits['trainval']
  for field, expected, got in (
      ('data.num_features', config.data.num_features, train.features.shape[1]),
      ('model.num_labels', config.model.num_labels, train.labels.shape[1])):
    if expected != got:
      raise ConfigError(f'{field} is {expected} but the {name} data has {got}; '
                        f'set --config.{field}={got}')
  return multilabel.zscore(splits, 'trainval')


def train_arrays(split: Any) -> tuple[Array, Array]:
  """A training split as float32 device arrays (inputs, targets)."""
  if isinstance(split, multilabel.MultiLabelSplit):
    return (jnp.asarray(split.features, jnp.float32),
            jnp.asarray(split.labels, jnp.float32))
  channels = (part_labels.NUM_CLASSES
              if isinstance(split, part_labels.PartLabelsSplit) else 1)
  return (input_pipeline.images_to_float(split.images),
          input_pipeline.masks_to_float(split.masks, channels))


def get_split(data: dict[str, Any], name: str, field: str) -> Any:
  if name not in data:
    raise ConfigError(f'unknown split {name!r} in {field}; choose one of '
                      f'{sorted(data)}')
  return data[name]


def write_config(config: ml_collections.ConfigDict, workdir: str) -> None:
  with files.atomic_write(os.path.join(workdir, 'config.json'), 'w') as f:
    f.write(config.to_json_best_effort(indent=2, sort_keys=True))


def _check_finite(step: int, metrics: dict[str, float],
                  last_saved: int | None) -> None:
  if not np.all(np.isfinite(list(metrics.values()))):
    bad = sorted(k for k, v in metrics.items() if not np.isfinite(v))
    resume = (f'the last good checkpoint is step {last_saved}; lower '
              '--config.optimizer.learning_rate and rerun with the same '
              '--workdir to resume from it' if last_saved else
              'no checkpoint was saved before it; lower '
              '--config.optimizer.learning_rate and rerun')
    raise TrainingDivergedError(
        f'training diverged at step {step}: {", ".join(bad)} not finite; '
        f'{resume}')


# (train split, eval split) pairs whose evaluation scores training data.
TRAINED_ON = {('trainval', 'val'), ('trainval', 'train')}


def eval_steps(first_step: int, num_train_steps: int, eval_every_steps: int,
               evaluate_last: bool = True) -> list[int]:
  """The steps after `first_step` that training scores: every
  eval_every_steps, and the last step when `evaluate_last`."""
  steps = list(range(first_step + 1, num_train_steps + 1))
  return [s for s in steps if s % eval_every_steps == 0 or
          (evaluate_last and s == num_train_steps)]


def train_and_evaluate(config: ml_collections.ConfigDict, workdir: str,
                       evaluate_last: bool = True) -> dict[str, float]:
  """Trains, evaluates on config.data.eval_split, checkpoints; resumable.

  Returns the last evaluation metrics: those of the last step unless
  `evaluate_last` is False (then only every eval_every_steps is scored).
  A run refused or stopped before its first step leaves the workdir as it
  found it: a workdir (or checkpoint folder) it created is removed again,
  and config.json is written once the first step has run.
  """
  builders.check_config(config)
  files.check_output_dir(workdir, '--workdir')
  checkpoint_dir = checkpoints.checkpoint_dir(workdir)
  files.check_output_dir(checkpoint_dir, 'the checkpoint folder of --workdir')
  with (files.created_for_run(workdir) as keep_workdir,
        files.created_for_run(checkpoint_dir) as keep_checkpoints):

    def started() -> None:
      if jax.process_index() == 0:
        write_config(config, workdir)
      keep_workdir()
      keep_checkpoints()

    return _train_in_workdir(config, workdir, evaluate_last, started)


def _train_in_workdir(config: ml_collections.ConfigDict, workdir: str,
                      evaluate_last: bool, started: Callable[[], None]
                      ) -> dict[str, float]:
  """`train_and_evaluate` in an existing workdir; calls `started()` once
  the first step has run."""
  data = load_data(config)
  train_split = get_split(data, config.data.train_split, 'data.train_split')
  if config.data.get('num_folds', 0):
    train_split = kfold.without_fold(
        train_split, config.data.num_folds, config.data.held_out_fold)
  eval_split = get_split(data, config.data.eval_split, 'data.eval_split')
  if (config.data.train_split, config.data.eval_split) in TRAINED_ON:
    logging.warning('data.eval_split=%s is part of data.train_split=%s: its '
                    'scores are not held out (a final train+val run; score '
                    'test with --mode=evaluate)', config.data.eval_split,
                    config.data.train_split)
  mesh = parallel.make_mesh(config.get('num_devices', 0))
  parallel.check_divisible(config.batch_size, mesh, 'batch_size')
  if config.model.name not in models.CLASSIFIERS:
    chains = tuples.num_chains(config.batch_size,
                               builders.tuple_spec_from_config(config))
    parallel.check_divisible(
        chains, mesh,
        'the inference chains (the inference share of batch_size)')
  replicated = parallel.replicated(mesh)
  inputs, targets = train_arrays(train_split)
  if fcn_starts.start_folds(config):
    # The cross-fitted starts ride along as extra target channels, cropped
    # with the masks (make_train_step splits them off).
    targets = jnp.concatenate(
        [targets, fcn_starts.crossfit_start_maps(config, inputs)], axis=-1)
  inputs, targets = (parallel.put(a, replicated) for a in (inputs, targets))

  model = builders.create_model(config)
  tx = builders.make_optimizer(config.optimizer, config.num_train_steps,
                               builders.tuple_echo(config))
  state = place_state(create_state(model, tx, config), mesh)
  manager = checkpoints.make_manager(workdir, config.max_checkpoints_to_keep,
                                     config.keep_best_checkpoints)
  restored = restore_train_state(manager, state)
  if restored is not None:
    state = restored
    logging.info('Resumed from the checkpoint at step %d in %s',
                 int(state.step), manager.directory)
  elif config.init_from:
    state = place_state(
        warm_start_state(state, tx, config.init_from,
                         config.get('init_layers', 'tower')), mesh)
  is_main = jax.process_index() == 0
  logging.info('Parameters:\n%s',
               parameter_overview.get_parameter_overview(state.params))

  writer = writers.MetricWriter(workdir, enabled=is_main)
  train_step = make_train_step(model, tx, config, mesh)
  predict_fn = predictors.make_predict_fn(model, config, mesh=mesh)
  first_step = int(state.step)
  scored = eval_steps(first_step, config.num_train_steps,
                      config.eval_every_steps, evaluate_last)
  reporter = writers.ProgressReporter(config.num_train_steps,
                                      config.log_every_steps, first_step,
                                      scored)
  last_saved = manager.latest_step()
  eval_metrics: dict[str, float] = {}
  logging.info('Training steps %d..%d on %s (%d examples) over %d '
               'device(s), evaluating on %s', first_step,
               config.num_train_steps, config.data.train_split, len(inputs),
               mesh.size, config.data.eval_split)
  if first_step >= config.num_train_steps:
    logging.info('Nothing to train: the checkpoint is at step %d of %d; raise '
                 '--config.num_train_steps to train longer', first_step,
                 config.num_train_steps)
  step = first_step
  with preemption.stop_requests() as stop_requested:
    try:
      for step in range(first_step + 1, config.num_train_steps + 1):
        indices = parallel.put(input_pipeline.batch_indices(
            config.seed, step - 1, len(inputs), config.batch_size),
                               parallel.batch_sharded(mesh))
        state, metrics = train_step(state, inputs, targets, indices)
        if step == first_step + 1:
          started()
        is_last = step == config.num_train_steps
        log_now = step % config.log_every_steps == 0 or is_last
        eval_now = step in scored
        # Every eval step is saved too, so the best checkpoint is kept.
        save_now = (step % config.checkpoint_every_steps == 0 or is_last or
                    eval_now)
        if log_now or save_now:   # a non-finite state is never saved
          metrics = {k: float(v) for k, v in jax.device_get(metrics).items()}
          _check_finite(step, metrics, last_saved)
        if log_now:
          metrics.update(reporter(step) or {})
          writer.write_scalars(step,
                               {f'train/{k}': v for k, v in metrics.items()})
        score = None
        if eval_now:
          start = time.perf_counter()
          eval_metrics = evaluate_split(predict_fn, eval_params(state),
                                        eval_split, config)
          # With a moving average, the live parameters are scored too, so
          # the average's gain is visible (eval_seconds covers both).
          live = (None if state.ema_params is None or
                  not config.eval.get('score_live_params', True) else
                  evaluate_split(predict_fn, state.params, eval_split, config))
          eval_metrics['eval_seconds'] = time.perf_counter() - start
          reporter.pause(eval_metrics['eval_seconds'], evaluation=True)
          writer.write_scalars(step, {f'{config.data.eval_split}/{k}': v
                                      for k, v in eval_metrics.items()})
          if live is not None:
            writer.write_scalars(step, {
                f'{config.data.eval_split}_live_params/{k}': v
                for k, v in live.items()})
          score = eval_metrics[evaluate.headline_metric(eval_metrics)]
        if save_now:
          start = time.perf_counter()
          checkpoints.save(manager, step, state, score)
          reporter.pause(time.perf_counter() - start)
          last_saved = step
        signal_number = stop_requested()
        if signal_number is not None:
          if last_saved != step:
            checkpoints.save(manager, step, state)
          raise preemption.Preempted(signal_number, step)
    except KeyboardInterrupt:   # a second Ctrl-C, or one before the loop
      if step > (last_saved or 0) and int(state.step) == step:
        logging.warning('Interrupted: saving a checkpoint at step %d', step)
        checkpoints.save(manager, step, state)
      raise
    finally:
      manager.wait_until_finished()
      writer.flush()
  return eval_metrics


def restore_state(model: nn.Module, config: ml_collections.ConfigDict,
                  workdir: str) -> TrainState:
  """The latest checkpoint of `workdir`; DvnError when there is none."""
  tx = builders.make_optimizer(config.optimizer, config.num_train_steps)
  manager = checkpoints.make_manager(workdir, read_only=True)
  state = restore_train_state(manager, create_state(model, tx, config),
                              set_aside_damaged=False)
  if state is None:
    raise DvnError(f'no checkpoint in {checkpoints.checkpoint_dir(workdir)}; '
                   'train first with the same --workdir')
  return state


def load_trained_params(model: nn.Module, config: ml_collections.ConfigDict,
                        workdir: str | None, params_path: str | None = None
                        ) -> Any:
  """Parameters from a released file (`params_path`) or a workdir (its
  latest checkpoint's moving average if it kept one)."""
  if params_path:
    template = builders.init_model_params(model, config, jax.random.key(0))
    return param_files.load_params(params_path, template)
  if not workdir:
    raise ConfigError('pass --workdir (a trained run) or --params (a file)')
  return eval_params(restore_state(model, config, workdir))


def evaluate_params(config: ml_collections.ConfigDict, model: nn.Module,
                    params: Any, splits: Sequence[str]
                    ) -> dict[str, dict[str, float]]:
  """Scores one network's parameters, or an ensemble's, on each of `splits`
  (the data read and the predict function built once)."""
  mesh = parallel.make_mesh(config.get('num_devices', 0))
  params = parallel.put_tree(params, parallel.replicated(mesh))
  predict_fn = predictors.make_predict_fn(model, config, mesh=mesh)
  data = load_data(config)
  return {split: evaluate_split(predict_fn, params,
                                get_split(data, split, '--split'), config)
          for split in splits}


def evaluate_checkpoint(config: ml_collections.ConfigDict, workdir: str | None,
                        split: str = 'test', params_path: str | None = None
                        ) -> dict[str, float]:
  """Scores a workdir's latest checkpoint, or a parameter file, on `split`.

  Writes `<workdir>/eval_<split>.json` when a workdir is given.
  """
  builders.check_config(config)
  if workdir:
    files.check_output_dir(workdir, '--workdir')
  model = builders.create_model(config)
  metrics = evaluate_params(
      config, model, load_trained_params(model, config, workdir, params_path),
      [split])[split]
  if workdir and jax.process_index() == 0:
    with files.atomic_write(os.path.join(workdir, f'eval_{split}.json'),
                            'w') as f:
      json.dump(metrics, f, indent=2)
  return metrics


def evaluate_ensemble(config: ml_collections.ConfigDict,
                      workdirs: Sequence[str], splits: Sequence[str]
                      ) -> dict[str, dict[str, float]]:
  """Scores the ensemble of several workdirs' latest checkpoints (trained
  with one config but for the seed) on each of `splits`: each network
  infers, and their soft masks are averaged."""
  builders.check_config(config)
  model = builders.create_model(config)
  members = [load_trained_params(model, config, workdir)
             for workdir in workdirs]
  return evaluate_params(config, model, stacked.stack_members(members), splits)


def export_params(config: ml_collections.ConfigDict, workdir: str, path: str,
                  dtype: str = 'float32') -> None:
  """Writes the parameters of `workdir`'s latest checkpoint to one file
  (their moving average if the run kept one)."""
  files.check_output_file(path, '--params')
  model = builders.create_model(config)
  param_files.save_params(eval_params(restore_state(model, config, workdir)),
                          path, dtype)
