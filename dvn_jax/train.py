"""Training and evaluation: `train_and_evaluate(config, workdir)`.

config -> task (`tasks.get`: data, networks, test-time protocol, metrics)
and method (`methods.get`: the train step and the prediction of one
network) -> the loop here: the task's splits on the device, a jitted train
step per iteration, metrics, evaluation, Orbax checkpoints, preemption.
`evaluate_checkpoint` restores a workdir's latest checkpoint (or reads a
parameter file) and scores a split. No ConfigDict enters a jitted function:
builders.py turns configs into hashable specs, models and optimizers, which
are closed over. Nothing here depends on which task or method runs.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from collections.abc import Sequence
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
from absl import logging
from clu import parameter_overview

from dvn_jax import builders
from dvn_jax import calibration
from dvn_jax import checkpoints
from dvn_jax import files
from dvn_jax import input_pipeline
from dvn_jax import methods
from dvn_jax import param_files
from dvn_jax import parallel
from dvn_jax import predictors
from dvn_jax import preemption
from dvn_jax import stacked
from dvn_jax import tasks
from dvn_jax import train_state
from dvn_jax import writers
from dvn_jax.datasets import kfold
from dvn_jax.errors import ConfigError
from dvn_jax.errors import DvnError
from dvn_jax.train_state import TrainState
from dvn_jax.train_state import eval_params
from dvn_jax.train_state import fresh_copy

Array = jax.Array


class TrainingDivergedError(DvnError):
  """The loss or the parameters became non-finite."""


def create_state(model: nn.Module, tx: optax.GradientTransformation,
                 config: ml_collections.ConfigDict) -> TrainState:
  """Step 0: initial parameters (seeded by config.seed), the optimizer's
  state, the method's chains and replay buffer, and the moving average if
  the config keeps one."""
  params = builders.init_model_params(model, config,
                                      jax.random.key(config.seed))
  task, method = tasks.get(config), methods.get(config)
  return TrainState(step=jnp.zeros((), jnp.int32), params=params,
                    opt_state=tx.init(params),
                    chains=method.init_chains(task, config),
                    ema_params=(fresh_copy(params)
                                if config.ema_decay > 0 else None),
                    replay=method.init_replay(task, config))


def state_shardings(mesh: jax.sharding.Mesh, chains: bool,
                    ema: bool, replay: bool = False) -> TrainState:
  """Shardings of a train state (a pytree prefix): everything replicated
  (the replay buffer too: any device may draw any tuple) but the inference
  chains (if any), split over the devices like a batch."""
  rep = parallel.replicated(mesh)
  return TrainState(step=rep, params=rep, opt_state=rep,
                    chains=parallel.batch_sharded(mesh) if chains else None,
                    ema_params=rep if ema else None,
                    replay=rep if replay else None)


def place_state(state: TrainState, mesh: jax.sharding.Mesh) -> TrainState:
  """`state` as global arrays with `state_shardings`."""
  shardings = state_shardings(mesh, state.chains is not None,
                              state.ema_params is not None,
                              state.replay is not None)
  return jax.tree.map(lambda sharding, part: parallel.put_tree(part, sharding),
                      shardings, state)


def restore_train_state(manager: Any, state: TrainState,
                        set_aside_damaged: bool = True) -> TrainState | None:
  """The latest checkpoint restored into `state`'s structure (None if there
  is none). A run that kept no moving average or no replay buffer resumes
  with one (ema_decay or tuples.replay_size raised mid-run): the average
  starts from the restored parameters (so evaluating such a run with
  ema_decay on scores its parameters), the buffer empty (`state`'s). A
  checkpoint written before the replay buffer existed is read as a state
  without one."""
  variants = [state]   # the target, then the structures it may grow from
  if state.ema_params is not None:
    variants += [v.replace(ema_params=None) for v in variants]
  if state.replay is not None:
    variants += [v.replace(replay=None) for v in variants]
  older = [train_state.TrainStateBeforeReplay(
      v.step, v.params, v.opt_state, v.chains, v.ema_params)
           for v in variants if v.replay is None]
  restored = checkpoints.restore_latest(manager, state, set_aside_damaged,
                                        [*variants[1:], *older])
  if isinstance(restored, train_state.TrainStateBeforeReplay):
    restored = restored.as_current()
  if restored is None:
    return None
  if restored.ema_params is None and state.ema_params is not None:
    logging.info('The checkpoint has no moving average of the parameters; '
                 'it starts from the restored parameters')
    restored = restored.replace(ema_params=fresh_copy(restored.params))
  if restored.replay is None and state.replay is not None:
    logging.info('The checkpoint has no replay buffer; it starts empty')
    restored = restored.replace(replay=state.replay)
  return restored


def started_from(state: TrainState, tx: optax.GradientTransformation,
                 path: str) -> TrainState:
  """`state` with the parameters of a parameter file of the same network
  (an export of a trained or released model, to continue training it), a
  fresh optimizer state, and the moving average restarted from them."""
  params = param_files.load_params(path, state.params)
  if isinstance(params, stacked.Ensemble):
    raise DvnError(f'{path} holds {params.size} networks; start from one '
                   '(python -m dvn_jax.ensemble --member=K --output=FILE)')
  logging.info('Parameters taken from %s', path)
  params = jax.tree.map(jnp.asarray, params)
  return state.replace(params=params, opt_state=tx.init(params),
                       ema_params=(None if state.ema_params is None else
                                   fresh_copy(params)))


# ---------------------------------------------------------- train steps ----


def fuse_steps(train_step: Callable) -> Callable:
  """train_step(state, inputs, targets, indices (B,)) -> (state, metrics)
  as steps(state, inputs, targets, indices (K, B)) -> (state, metrics with
  a leading axis K): K steps in one call, a `lax.scan` over the batches'
  indices. K = 1 is the single step itself, not a scan of one."""

  def steps(state, inputs, targets, indices):
    if indices.shape[0] == 1:
      state, metrics = train_step(state, inputs, targets, indices[0])
      return state, jax.tree.map(lambda value: value[None], metrics)
    return jax.lax.scan(
        lambda carry, batch: train_step(carry, inputs, targets, batch),
        state, indices)

  return steps


def jit_train_step(train_step: Callable, mesh: jax.sharding.Mesh | None,
                   chains: bool = False, ema: bool = False,
                   replay: bool = False) -> Callable:
  """jit of `fuse_steps(train_step)` with the state donated; on a mesh,
  everything replicated but the batch indices (K, B) and the inference
  chains, which are split over the devices along the batch (parallel.py,
  `state_shardings`)."""
  steps = fuse_steps(train_step)
  if mesh is None:
    return jax.jit(steps, donate_argnums=(0,))
  rep = parallel.replicated(mesh)
  state = state_shardings(mesh, chains, ema, replay)
  return jax.jit(steps, in_shardings=(state, rep, rep,
                                      parallel.steps_batch_sharded(mesh)),
                 out_shardings=(state, rep), donate_argnums=(0,))


def make_train_step(model: nn.Module, tx: optax.GradientTransformation,
                    config: ml_collections.ConfigDict,
                    mesh: jax.sharding.Mesh | None = None) -> Callable:
  """jit(train_steps)(state, inputs, targets, indices) -> (state, metrics):
  the method's step (`methods.<method>.make_train_step`) on the task, once
  per row of indices (K, B) (`fuse_steps`); metrics have a leading axis K.

  inputs and targets are the whole training set on the device
  (`Task.train_arrays`); each row of indices picks a batch. With a mesh,
  the steps are data parallel over its devices (parallel.py).
  """
  task, method = tasks.get(config), methods.get(config)
  # Only whether the state holds chains / a buffer matters here: their
  # shapes are traced, not allocated.
  has = lambda init: jax.eval_shape(lambda: init(task, config)) is not None
  return jit_train_step(method.make_train_step(task, model, tx, config), mesh,
                        chains=has(method.init_chains),
                        ema=config.ema_decay > 0,
                        replay=has(method.init_replay))


def call_ends(first_step: int, num_train_steps: int, steps_per_call: int,
              stops: Sequence[int]) -> list[int]:
  """The step each compiled call ends at: every steps_per_call steps, and
  at each of `stops` (the steps evaluated or checkpointed) and the last."""
  ends, step = [], first_step
  stops = sorted(s for s in set(stops) if first_step < s < num_train_steps)
  for stop in stops + [num_train_steps]:
    while step < stop:
      step = min(step + steps_per_call, stop)
      ends.append(step)
  return ends


# ------------------------------------------------------------- evaluate ----


def evaluate_split(predict_fn: Callable, params: Any, split: Any,
                   config: ml_collections.ConfigDict) -> dict[str, float]:
  """The task's metrics (in %) of the parameters on a split."""
  return tasks.get(config).evaluate(
      lambda inputs: predict_fn(params, inputs), split)


def format_metrics(metrics: dict[str, float],
                   config: ml_collections.ConfigDict) -> str:
  """The headline numbers of an evaluation, for one printed line."""
  return tasks.get(config).summary(metrics)


# ----------------------------------------------------------------- loop ----


def load_data(config: ml_collections.ConfigDict) -> dict[str, Any]:
  """All splits of the config's task, keyed by name; with data.cv_folds
  K > 0 also 'fold_train' and 'fold_val' (datasets/kfold.py)."""
  data = tasks.get(config).load()
  if config.data.cv_folds:
    data.update(kfold.fold_splits(data, config.data.cv_folds,
                                  config.data.cv_fold))
  return data


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
TRAINED_ON = {('trainval', 'val'), ('trainval', 'train'),
              ('trainval', 'fold_val'), ('trainval', 'fold_train'),
              ('fold_train', 'val'), ('fold_train', 'train')}


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
  task = tasks.get(config)
  data = load_data(config)
  train_split = get_split(data, config.data.train_split, 'data.train_split')
  eval_split = get_split(data, config.data.eval_split, 'data.eval_split')
  if (config.data.train_split, config.data.eval_split) in TRAINED_ON:
    logging.warning('data.eval_split=%s is part of data.train_split=%s: its '
                    'scores are not held out (after a final train+val run, '
                    'score test with --mode=evaluate; with data.cv_folds, '
                    'score fold_val)', config.data.eval_split,
                    config.data.train_split)
  mesh = parallel.make_mesh(config.num_devices)
  parallel.check_divisible(config.batch_size, mesh, 'batch_size')
  model = builders.create_model(config)
  tx = builders.make_optimizer(config.optimizer)
  state = create_state(model, tx, config)
  if state.chains is not None:   # split over the devices like a batch
    parallel.check_divisible(
        jax.tree.leaves(state.chains)[0].shape[0], mesh,
        'the inference chains (the inference share of batch_size)')
  state = place_state(state, mesh)
  replicated = parallel.replicated(mesh)
  inputs, targets = (parallel.put(a, replicated)
                     for a in task.train_arrays(train_split))

  manager = checkpoints.make_manager(workdir, config.max_checkpoints_to_keep,
                                     config.keep_best_checkpoints)
  restored = restore_train_state(manager, state)
  if restored is not None:
    state = restored
    logging.info('Resumed from the checkpoint at step %d in %s',
                 int(state.step), manager.directory)
  elif config.init_from:
    state = place_state(started_from(state, tx, config.init_from), mesh)
  is_main = jax.process_index() == 0
  logging.info('Parameters:\n%s',
               parameter_overview.get_parameter_overview(state.params))

  writer = writers.MetricWriter(workdir, enabled=is_main)
  train_step = make_train_step(model, tx, config, mesh)
  predict_fn = predictors.make_predict_fn(model, config, mesh=mesh)
  monitor = (calibration.make_monitor(task, model, config, eval_split)
             if config.eval.calibration else None)
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
  saved = [s for s in range(first_step + 1, config.num_train_steps + 1)
           if s % config.checkpoint_every_steps == 0]
  step = first_step
  with preemption.stop_requests() as stop_requested:
    try:
      for end in call_ends(first_step, config.num_train_steps,
                           config.steps_per_call, scored + saved):
        indices = parallel.put(input_pipeline.steps_batch_indices(
            config.seed, step, end - step, len(inputs), config.batch_size),
                               parallel.steps_batch_sharded(mesh))
        state, metrics = train_step(state, inputs, targets, indices)
        if step == first_step:
          started()
        first, step = step + 1, end
        logged = [s for s in range(first, end + 1)
                  if s % config.log_every_steps == 0 or
                  s == config.num_train_steps]
        eval_now = step in scored
        # Every eval step is saved too, so the best checkpoint is kept.
        save_now = (step % config.checkpoint_every_steps == 0 or
                    step == config.num_train_steps or eval_now)
        if logged or save_now:   # a non-finite state is never saved
          rows = jax.device_get(metrics)
          for s in sorted(set(logged) | {step}):
            row = {k: float(v[s - first]) for k, v in rows.items()}
            _check_finite(s, row, last_saved)
            if s in logged:
              row.update(reporter(s) or {})
              writer.write_scalars(s, {f'train/{k}': v
                                       for k, v in row.items()})
        score = None
        if eval_now:
          start = time.perf_counter()
          eval_metrics = evaluate_split(predict_fn, eval_params(state),
                                        eval_split, config)
          if monitor is not None:   # the value's error on its own outputs
            eval_metrics.update(monitor(eval_params(state)))
          # With a moving average, the live parameters are scored too, so
          # the average's gain is visible (eval_seconds covers both).
          live = (None if state.ema_params is None or
                  not config.eval.score_live_params else
                  evaluate_split(predict_fn, state.params, eval_split, config))
          eval_metrics['eval_seconds'] = time.perf_counter() - start
          reporter.pause(eval_metrics['eval_seconds'], evaluation=True)
          writer.write_scalars(step, {f'{config.data.eval_split}/{k}': v
                                      for k, v in eval_metrics.items()})
          if live is not None:
            writer.write_scalars(step, {
                f'{config.data.eval_split}_live_params/{k}': v
                for k, v in live.items()})
          score = eval_metrics[task.headline]
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
  tx = builders.make_optimizer(config.optimizer)
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
    return param_files.load_params(params_path,
                                   builders.param_shapes(model, config))
  if not workdir:
    raise ConfigError('pass --workdir (a trained run) or --params (a file)')
  return eval_params(restore_state(model, config, workdir))


def evaluate_params(config: ml_collections.ConfigDict, model: nn.Module,
                    params: Any, splits: Sequence[str]
                    ) -> dict[str, dict[str, float]]:
  """Scores one network's parameters, or an ensemble's, on each of `splits`
  (the data read and the predict function built once)."""
  mesh = parallel.make_mesh(config.num_devices)
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
  builders.check_config(config)
  model = builders.create_model(config)
  param_files.save_params(eval_params(restore_state(model, config, workdir)),
                          path, dtype)
