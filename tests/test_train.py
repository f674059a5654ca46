"""Train step, input pipeline and evaluation metrics, in process."""

import os

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from configs import horses as horses_config
from configs import horses_fcn as fcn_config_module
from dvn_jax import builders
from dvn_jax import param_files
from dvn_jax import evaluate
from dvn_jax import fcn_starts
from dvn_jax import inference
from dvn_jax import input_pipeline
from dvn_jax import losses
from dvn_jax import models
from dvn_jax import predictors
from dvn_jax import train
from dvn_jax.datasets import kfold
from dvn_jax.errors import CheckpointError
from dvn_jax.errors import ConfigError


def test_batch_indices_are_epochs_of_permutations_and_repeatable():
  batches = [input_pipeline.batch_indices(0, s, 10, 4) for s in range(5)]
  flat = np.concatenate(batches)
  assert sorted(flat[:10]) == list(range(10))      # epoch 0
  assert sorted(flat[10:20]) == list(range(10))    # epoch 1
  np.testing.assert_array_equal(input_pipeline.batch_indices(0, 3, 10, 4),
                                batches[3])
  assert not np.array_equal(input_pipeline.batch_indices(1, 0, 10, 4),
                            batches[0])


def test_random_crops_cut_image_and_mask_alike():
  images = jnp.arange(2 * 8 * 8 * 3, dtype=jnp.float32).reshape(2, 8, 8, 3)
  masks = images[..., :1]  # the mask equals the image's first channel
  for flip in (False, True):
    x, y = input_pipeline.random_crops(jax.random.key(0), images, masks, 5,
                                       flip)
    assert x.shape == (2, 5, 5, 3) and y.shape == (2, 5, 5, 1)
    np.testing.assert_array_equal(x[..., :1], y)


def test_scaled_crops_zoom_inside_the_image_and_keep_masks_hard():
  rows = jnp.broadcast_to(jnp.arange(32.0)[:, None, None], (32, 32, 1))
  cols = jnp.swapaxes(rows, 0, 1)
  image = jnp.concatenate([rows, cols, rows], axis=-1)
  images = jnp.stack([image] * 16)
  masks = (images[..., :1] >= 16).astype(jnp.float32)  # rows 16..31
  x, y = input_pipeline.random_scaled_crops(jax.random.key(0), images, masks,
                                            24, False, 0.2)
  assert x.shape == (16, 24, 24, 3) and y.shape == (16, 24, 24, 1)
  # Bilinear resampling of a ramp is exact: channel 0 is the input row of
  # each output pixel, rising by 1/s per row, s in [0.8, 1.2], in the image.
  slopes = np.asarray(x[:, 1:, 0, 0] - x[:, :-1, 0, 0])
  np.testing.assert_allclose(slopes, slopes[:, :1] + 0 * slopes, atol=1e-4)
  assert np.all(slopes >= 1 / 1.2 - 1e-4) and np.all(slopes <= 1 / 0.8 + 1e-4)
  assert len(np.unique(np.round(slopes[:, 0], 4))) > 8   # zooms differ
  assert float(x.min()) >= 0 and float(x.max()) <= 31
  # The mask is hard and cut where the input row crosses 15.5.
  assert set(np.unique(np.asarray(y))) <= {0.0, 1.0}
  np.testing.assert_array_equal(y[..., 0], x[..., 0] >= 15.5)
  three = jax.nn.one_hot((images[..., 0] // 11).astype(int), 3)
  _, y3 = input_pipeline.random_scaled_crops(jax.random.key(1), images,
                                             three, 24, True, 0.2)
  np.testing.assert_array_equal(y3.sum(-1), 1.0)


def test_color_jitter_changes_each_image_by_its_own_draw():
  rng = np.random.default_rng(0)
  images = jnp.asarray(rng.uniform(0.3, 0.7, (4, 6, 6, 3)), jnp.float32)
  key = jax.random.key(1)
  off = input_pipeline.color_jitter(key, images, 0.0, 0.0, 0.0)
  np.testing.assert_array_equal(off, images)
  # Brightness alone shifts every pixel of an image by one amount in
  # [-0.2, 0.2] (no clipping from [0.3, 0.7]), a different one per image.
  shift = input_pipeline.color_jitter(key, images, 0.2, 0.0, 0.0) - images
  per_image = shift[:, 0, 0, 0]
  np.testing.assert_allclose(shift, per_image[:, None, None, None] +
                             jnp.zeros_like(shift), atol=1e-6)
  assert np.all(np.abs(per_image) <= 0.2) and len(set(np.asarray(per_image))) == 4
  # Saturation leaves grey pixels grey; contrast keeps the image's mean.
  grey = jnp.repeat(images[..., :1], 3, axis=-1)
  np.testing.assert_allclose(
      input_pipeline.color_jitter(key, grey, 0.0, 0.0, 0.5), grey, atol=1e-6)
  contrasted = input_pipeline.color_jitter(key, images, 0.0, 0.3, 0.0)
  np.testing.assert_allclose(contrasted.mean(axis=(1, 2, 3)),
                             images.mean(axis=(1, 2, 3)), atol=1e-6)
  assert not np.allclose(contrasted, images)
  strong = input_pipeline.color_jitter(key, images, 0.9, 0.9, 0.9)
  assert float(strong.min()) >= 0.0 and float(strong.max()) <= 1.0


def test_batch_fn_jitters_x_only_and_keeps_the_crops_of_unjittered_runs():
  config = horses_config.get_config('smoke')
  images = jnp.asarray(np.random.default_rng(0).uniform(
      0.2, 0.8, (3, 32, 32, 3)), jnp.float32)
  masks = (images[..., :1] > 0.5).astype(jnp.float32)
  key = jax.random.key(2)
  x_plain, y_plain = train.make_batch_fn(config)(key, images, masks)
  config.augment.brightness = 0.1
  x_jit, y_jit = train.make_batch_fn(config)(key, images, masks)
  np.testing.assert_array_equal(y_jit, y_plain)
  assert not np.allclose(x_jit, x_plain)
  shift = x_jit - x_plain     # one brightness shift per crop
  np.testing.assert_allclose(shift, jnp.broadcast_to(shift[:, :1, :1, :1],
                                                     shift.shape), atol=1e-6)


def test_metrics_mean_and_global_iou():
  truth = np.zeros((2, 4, 4), bool)
  truth[0, :2] = True   # 8 pixels
  truth[1, 0, 0] = True  # 1 pixel
  pred = np.zeros_like(truth)
  pred[0, :1] = True    # 4 of 8: IoU 0.5
  pred[1, 0, :2] = True  # IoU 1/2
  metrics = evaluate.segmentation_metrics(pred, truth)
  assert metrics['mean_iou'] == pytest.approx(50.0)
  assert metrics['global_iou'] == pytest.approx(100.0 * 5 / 10)


def test_soft_metrics_are_relaxed_iou_and_equal_binary_ones_on_binary():
  rng = np.random.default_rng(0)
  truth = rng.random((5, 6, 6)) > 0.5
  pred = rng.random((5, 6, 6)) > 0.4
  soft = evaluate.soft_segmentation_metrics(pred.astype(float), truth)
  hard = evaluate.segmentation_metrics(pred, truth)
  assert soft == pytest.approx(hard)
  half = evaluate.soft_segmentation_metrics(np.full((1, 2), 0.5),
                                            np.array([[1.0, 0.0]]))
  assert half['mean_iou'] == pytest.approx(100 * 0.5 / 1.5)


def test_predict_in_batches_pads_and_trims():
  calls = []

  def predict(images):
    calls.append(images.shape)
    return images * 2
  out = evaluate.predict_in_batches(predict, np.arange(5.0)[:, None], 2)
  np.testing.assert_array_equal(out[:, 0], np.arange(5.0) * 2)
  assert calls == [(2, 1)] * 3
  # A split smaller than the batch is not padded up to it.
  calls.clear()
  out = evaluate.predict_in_batches(predict, np.arange(3.0)[:, None], 40)
  np.testing.assert_array_equal(out[:, 0], np.arange(3.0) * 2)
  assert calls == [(3, 1)]


def test_predict_in_batches_logs_progress_and_eta(caplog):
  caplog.set_level('INFO')
  five = np.arange(5.0)[:, None]
  out = evaluate.predict_in_batches(lambda images: images, five, 2,
                                    log_every_s=0.0)
  assert out.shape == (5, 1)
  lines = [r.getMessage() for r in caplog.records
           if r.getMessage().startswith('predicted')]
  # After the first batch (compilation) and before the last: 4 of 5 done.
  assert len(lines) == 1
  assert lines[0].startswith('predicted 4/5 examples (80%), ETA ')
  caplog.clear()
  evaluate.predict_in_batches(lambda images: images, five, 2)
  assert not [r for r in caplog.records if r.getMessage().startswith('predicted')]


@pytest.mark.parametrize('model_name', ['value_net', 'two_stream_value_net',
                                        'fcn', 'value_net+chains'])
def test_train_step_learns_and_compiles_once(model_name):
  config = horses_config.get_config('smoke')
  model_name, chains = model_name.partition('+')[::2]
  config.model.name = model_name
  config.tuples.inference_chains = bool(chains)
  if model_name == 'fcn':
    del config.model.dropout_rate
  config.tuples.mix.stratified = 0.5
  config.tuples.mix.ground_truth = 0.5
  data = train.load_data(config)['train']
  images = input_pipeline.images_to_float(data.images[:8])
  masks = input_pipeline.masks_to_float(data.masks[:8])
  model = builders.create_model(config)
  tx = builders.make_optimizer(config.optimizer, config.num_train_steps)
  state = train.create_state(model, tx, config)
  step = train.make_train_step(model, tx, config)
  params0 = jax.tree.map(np.asarray, state.params)
  for s in range(3):
    state, metrics = step(state, images, masks,
                          input_pipeline.batch_indices(0, s, 8, 4))
  assert step._cache_size() == 1
  assert int(state.step) == 3
  assert np.isfinite(float(metrics['loss']))
  moved = jax.tree.map(lambda a, b: not np.allclose(a, b), params0,
                       jax.tree.map(np.asarray, state.params))
  assert all(jax.tree.leaves(moved))
  if chains:   # 1 inference tuple of 4 (the mix): one chain, 2-step lives
    assert int(state.chains.age[0]) in (1, 2)
    assert state.chains.x.shape == (1, 24, 24, 3)
  else:
    assert state.chains is None


@pytest.mark.parametrize(
    'config_module,single_file,ensemble_file,members,atol', [
    (horses_config, 'horses_dvn.npz', 'horses_dvn_ensemble.npz', 2, 1e-4),
    (fcn_config_module, 'horses_fcn.npz', 'horses_fcn_ensemble.npz', 5, 1e-3),
])
def test_released_horse_files_fit_their_default_configs(
    config_module, single_file, ensemble_file, members, atol):
  """The released value net and FCN, and their float16 ensembles, load into
  configs/horses.py's and configs/horses_fcn.py's models; each ensemble's
  first member is the released single file, the second another network."""
  config = config_module.get_config()
  model = builders.create_model(config)
  root = os.path.join(os.path.dirname(__file__), '..', 'released')
  single = train.load_trained_params(
      model, config, None, os.path.join(root, single_file))
  ensemble = train.load_trained_params(
      model, config, None, os.path.join(root, ensemble_file))
  assert ensemble.size == members
  jax.tree.map(lambda e, p: np.testing.assert_allclose(
      e[0], p, rtol=1e-3, atol=atol), ensemble.members, single)
  first_leaf = jax.tree.leaves(ensemble)[0]   # (members, ...)
  assert not np.allclose(first_leaf[1], jax.tree.leaves(single)[0])


@pytest.mark.parametrize('config_module,arg,file,members', [
    (fcn_config_module, 'ema', 'horses_fcn_ema_ensemble.npz', 5),
    (horses_config, 'chains', 'horses_dvn_long_pair.npz', 2),
    (horses_config, 'chains',
     'horses_dvn_long_pair.npz,horses_dvn_interp_seed2.npz', 3),
])
def test_released_ensembles_of_the_best_result_fit_their_configs(
    config_module, arg, file, members):
  """released/horses_fcn_ema_ensemble.npz (five FCNs of
  configs/horses_fcn.py:ema) and horses_dvn_long_pair.npz (two value nets
  of configs/horses.py:chains; with horses_dvn_interp_seed2.npz, named
  beside it, three): distinct members that load into their config's model
  (the files of the best horse result)."""
  config = config_module.get_config(arg)
  released = os.path.join(os.path.dirname(__file__), '..', 'released')
  path = ','.join(os.path.join(released, name)
                  for name in param_files.param_file_names(file))
  ensemble = train.load_trained_params(builders.create_model(config), config,
                                       None, path)
  first_leaf = jax.tree.leaves(ensemble)[0]   # (members, ...)
  assert first_leaf.shape[0] == members
  assert len({np.asarray(m).tobytes() for m in first_leaf}) == members


def test_released_single_file_holds_the_best_results_models_in_int8():
  """released/horses_best_int8.npz, one file under 12 MB: its models 'dvn'
  and 'fcn' are the three value nets and five FCNs of the best result, each
  kernel within half an int8 step of its column's range and every other
  array the same float16 values."""
  released = os.path.join(os.path.dirname(__file__), '..', 'released')
  bundle = os.path.join(released, 'horses_best_int8.npz')
  assert os.path.getsize(bundle) < 12e6
  for model, files in (
      ('dvn', 'horses_dvn_long_pair.npz,horses_dvn_interp_seed2.npz'),
      ('fcn', 'horses_fcn_ema_ensemble.npz')):
    reference = param_files.read_params_list(','.join(
        os.path.join(released, name) for name in files.split(',')))
    stored = param_files.read_params(f'{bundle}:{model}')
    # (The bundle predates the recorded member count: the migration reads it.)
    assert (param_files.member_count(stored) ==
            param_files.member_count(reference))
    reference.pop(param_files.MEMBERS_KEY, None)
    assert stored.keys() == reference.keys()
    for name, value in reference.items():
      value = value.astype(np.float32)
      if stored[name].dtype == np.float16:
        np.testing.assert_array_equal(stored[name], value)
      else:
        step = np.abs(value).max(axis=-2, keepdims=True) / 127
        assert np.all(np.abs(stored[name] - value) <= step / 2 + 1e-3), name


def _adam_count(opt_state) -> int:
  counts = [leaf for path, leaf in jax.tree_util.tree_leaves_with_path(
      opt_state) if 'count' in jax.tree_util.keystr(path)]
  return int(counts[0])


def _train_smoke_steps(config, num_steps: int):
  """(state, metrics of the last step) after num_steps train steps of
  `config` on the first 8 training images, on the host."""
  data = train.load_data(config)['train']
  images = input_pipeline.images_to_float(data.images[:8])
  masks = input_pipeline.masks_to_float(data.masks[:8])
  model = builders.create_model(config)
  tx = builders.make_optimizer(config.optimizer, config.num_train_steps)
  state = train.create_state(model, tx, config)
  step = train.make_train_step(model, tx, config)
  for s in range(num_steps):
    state, metrics = step(state, images, masks,
                          input_pipeline.batch_indices(0, s, 8, 4))
  return jax.device_get((state, metrics))


def test_tuple_echo_updates_k_times_on_the_same_tuples():
  """tuples.echo=2: one tuple generation, two optimizer updates; the
  metrics are the first update's, so they equal a plain step's."""
  base = horses_config.get_config('chains,smoke')
  results = {}
  for echo in (1, 2):
    config = base.copy_and_resolve_references()
    config.tuples.echo = echo
    results[echo] = _train_smoke_steps(config, 1)
  (plain, plain_metrics), (echoed, echoed_metrics) = results[1], results[2]
  assert int(plain.step) == int(echoed.step) == 1
  assert _adam_count(plain.opt_state) == 1
  assert _adam_count(echoed.opt_state) == 2
  assert float(echoed_metrics['loss']) == float(plain_metrics['loss'])
  np.testing.assert_array_equal(plain.chains.y, echoed.chains.y)
  moved = jax.tree.map(lambda a, b: not np.allclose(a, b), plain.params,
                       echoed.params)
  assert all(jax.tree.leaves(moved))
  assert not np.allclose(plain.ema_params['fc0']['kernel'],
                         echoed.ema_params['fc0']['kernel'])


def test_update_ema_warms_up_then_decays_at_the_set_rate():
  ema, params = {'w': jnp.zeros(2)}, {'w': jnp.ones(2)}
  # Step 0: rate min(0.99, 1/10) = 0.1, so the average is mostly params.
  first = train.update_ema(ema, params, 0.99, jnp.asarray(0))
  np.testing.assert_allclose(first['w'], 0.9)
  late = train.update_ema(ema, params, 0.99, jnp.asarray(10_000))
  np.testing.assert_allclose(late['w'], 0.01, rtol=1e-5)


def test_moving_average_leaves_training_unchanged_and_is_evaluated():
  """With ema_decay the live parameters train exactly as without it; the
  average trails them and is what eval_params returns."""
  base = horses_config.get_config('smoke')
  states = {}
  for decay in (0.0, 0.9):
    config = base.copy_and_resolve_references()
    config.ema_decay = decay
    states[decay] = _train_smoke_steps(config, 3)[0]
  plain, averaged = states[0.0], states[0.9]
  assert plain.ema_params is None
  assert train.eval_params(plain) is plain.params
  for a, b in zip(jax.tree.leaves(plain.params),
                  jax.tree.leaves(averaged.params)):
    np.testing.assert_array_equal(a, b)
  assert train.eval_params(averaged) is averaged.ema_params
  differs = jax.tree.map(lambda a, b: not np.allclose(a, b),
                         averaged.params, averaged.ema_params)
  assert all(jax.tree.leaves(differs))


def test_start_fn_is_the_fcns_soft_mask_mixed_with_the_papers_start(
    tmp_path):
  """config.start: y(0) = scale * sigmoid(FCN logits) + (1 - scale) * 0;
  the train step and the predict function take it."""
  fcn = models.create_model('fcn', skips=True)
  fcn_params = models.init_params(fcn, jax.random.key(5), 24)
  path = str(tmp_path / 'fcn.npz')
  param_files.save_params(fcn_params, path)
  config = horses_config.get_config('smoke')
  config.start.params, config.start.scale = path, 0.5
  builders.check_config(config)
  x = jax.random.uniform(jax.random.key(6), (3, 24, 24, 3))
  expected = 0.5 * jax.nn.sigmoid(fcn.apply({'params': fcn_params}, x))
  np.testing.assert_allclose(fcn_starts.make_start_fn(config)(x), expected,
                             rtol=1e-5)
  assert fcn_starts.make_start_fn(horses_config.get_config('smoke')) is None
  # A flat value net (zero output kernel) leaves the masks at y(0).
  model = builders.create_model(config)
  params = builders.init_model_params(model, config, jax.random.key(0))
  params['out']['kernel'] = jnp.zeros_like(params['out']['kernel'])
  images = train.load_data(config)['val'].images[:1]
  soft = predictors.make_predict_fn(model, config)(params, images)
  assert 0.05 < float(soft.min()) and float(soft.max()) < 0.5
  state, metrics = _train_smoke_steps(config, 1)
  assert 0.0 < float(metrics['v_star/inference']) < 1.0
  config.start.scale = 0.0
  with pytest.raises(ConfigError, match=r'start.scale must be in \(0, 1\]'):
    builders.check_config(config)
  config.start.scale = 1.0
  config.start.params = os.path.join(os.path.dirname(__file__), '..',
                                     'released', 'horses_dvn.npz')
  with pytest.raises(CheckpointError, match='does not fit'):   # not an FCN
    fcn_starts.make_start_fn(config)


def test_without_fold_drops_every_fth_example_and_keeps_the_rest():
  data = train.load_data(horses_config.get_config('smoke'))
  train_split = data['train']
  np.testing.assert_array_equal(kfold.fold_of(7, 3), [0, 1, 2, 0, 1, 2, 0])
  kept = kfold.without_fold(train_split, 5, 2)
  assert len(kept) == len(train_split) - len(train_split) // 5
  np.testing.assert_array_equal(kept.names, [
      n for i, n in enumerate(train_split.names) if i % 5 != 2])
  np.testing.assert_array_equal(kept.images, train_split.images[
      np.arange(len(train_split)) % 5 != 2])
  config = horses_config.get_config('smoke')
  config.data.num_folds, config.data.held_out_fold = 5, 5
  with pytest.raises(ConfigError, match='data.held_out_fold must be in'):
    builders.check_config(config)
  config.data.num_folds = 0
  with pytest.raises(ConfigError, match='needs data.num_folds > 0'):
    builders.check_config(config)


def test_crossfit_starts_come_from_the_fcn_of_each_images_fold(tmp_path):
  """start.folds F: training image i starts at member i mod F's crop-
  averaged soft mask (times start.scale), and the train step's inference
  trajectories start there: a flat value net leaves them at y(0)."""
  fcn = models.create_model('fcn', skips=True)
  paths = []
  for f in range(2):
    paths.append(str(tmp_path / f'fcn{f}.npz'))
    param_files.save_params(models.init_params(fcn, jax.random.key(f), 24),
                            paths[-1])
  config = horses_config.get_config('smoke')
  config.start.params = str(tmp_path / 'folds.npz')
  param_files.save_params(param_files.stack_params(paths), config.start.params)
  config.start.scale, config.start.folds = 0.5, 2
  config.eval.num_crops = 4
  builders.check_config(config)
  images = input_pipeline.images_to_float(
      train.load_data(config)['train'].images[:5])
  maps = fcn_starts.crossfit_start_maps(config, images)
  assert maps.shape == images.shape[:-1] + (1,)
  offsets = inference.crop_offsets(32, 24, 4)
  for f in range(2):
    member = fcn_starts.load_fcn(config, paths[f], 'start.params')
    np.testing.assert_allclose(maps[f::2], 0.5 * fcn_starts.fcn_soft_masks(
        member, images[f::2], offsets, 24), atol=1e-5)
  assert not np.allclose(maps[0], 0.5 * fcn_starts.fcn_soft_masks(
      fcn_starts.load_fcn(config, paths[1], 'start.params'), images[:1],
      offsets, 24)[0], atol=1e-3)
  # The starts reach the trajectories: with a zero step the inference
  # tuples are the starts themselves, cropped as their images.
  config.tuples.inference.step_size = 0.0
  config.tuples.mix.inference, config.tuples.mix.adversarial = 1.0, 0.0
  model = builders.create_model(config)
  spec = builders.tuple_spec_from_config(config)
  params = builders.init_model_params(model, config, jax.random.key(0))
  x = images[:, :24, :24]
  starts = maps[:, :24, :24]
  _, y, _, _ = train.tuples.generate_tuples_with_chains(
      jax.random.key(1), predictors.bind_logit_fn(model, params), x,
      jnp.zeros_like(starts), spec, None, starts)
  np.testing.assert_allclose(y, starts, atol=1e-6)
  # The train step takes them as target channels after the masks: its
  # inference tuples' v* is then the IoU of the starts (not of y = 0).
  masks = input_pipeline.masks_to_float(
      train.load_data(config)['train'].masks[:5])
  tx = builders.make_optimizer(config.optimizer, 1)
  step = train.make_train_step(model, tx, config)
  state = train.create_state(model, tx, config)
  _, metrics = step(state, images, jnp.concatenate([masks, maps], -1),
                    np.arange(4))
  assert 0.05 < float(metrics['v_star/inference']) < 1.0
  with pytest.raises(ConfigError, match='start maps'):
    step(train.create_state(model, tx, config), images, masks, np.arange(4))
  config.start.folds = 3
  with pytest.raises(ConfigError, match='start.folds is 3 but'):
    fcn_starts.crossfit_start_maps(config, images)
  config.start.folds, config.augment.scale = 2, 0.1
  with pytest.raises(ConfigError, match='cannot be combined'):
    builders.check_config(config)


def test_eval_fcn_weight_averages_the_masks_with_the_fcns(tmp_path):
  """eval.fcn: (1 - w) DVN + w FCN soft masks; w = 1 is the FCN baseline's
  prediction itself, w = 0 the DVN's."""
  fcn_config = fcn_config_module.get_config('smoke')
  fcn = builders.create_model(fcn_config)
  fcn_params = builders.init_model_params(fcn, fcn_config, jax.random.key(7))
  path = str(tmp_path / 'fcn.npz')
  param_files.save_params(fcn_params, path)
  config = horses_config.get_config('smoke')
  model = builders.create_model(config)
  params = builders.init_model_params(model, config, jax.random.key(0))
  images = train.load_data(config)['val'].images[:2]
  dvn = predictors.make_predict_fn(model, config)(params, images)
  fcn_masks = predictors.make_predict_fn(fcn, fcn_config)(fcn_params, images)
  assert not np.allclose(dvn, fcn_masks, atol=1e-2)
  config.eval.fcn.params = path
  for weight in (1.0, 0.25):
    config.eval.fcn.weight = weight
    builders.check_config(config)
    mixed = predictors.make_predict_fn(model, config)(params, images)
    np.testing.assert_allclose(mixed, (1 - weight) * dvn + weight * fcn_masks,
                               atol=1e-5)
  # An ensemble file of FCNs: their masks averaged, then mixed in.
  other = builders.init_model_params(fcn, fcn_config, jax.random.key(8))
  other_path = str(tmp_path / 'fcn2.npz')
  param_files.save_params(other, other_path)
  config.eval.fcn.params = str(tmp_path / 'fcns.npz')
  param_files.save_params(param_files.stack_params([path, other_path]),
                          config.eval.fcn.params)
  other_masks = predictors.make_predict_fn(fcn, fcn_config)(other, images)
  assert not np.allclose(other_masks, fcn_masks, atol=1e-2)
  mixed = predictors.make_predict_fn(model, config)(params, images)
  np.testing.assert_allclose(
      mixed, 0.75 * dvn + 0.25 * (fcn_masks + other_masks) / 2, atol=1e-5)
  # start_scale: the test-time ascent starts at s * the FCN's mask; a flat
  # value net (zero output kernel) leaves it there. Training is untouched.
  config.eval.fcn.params, config.eval.fcn.weight = path, 0.0
  config.eval.fcn.start_scale = 0.5
  builders.check_config(config)
  assert fcn_starts.make_start_fn(config) is None
  flat = dict(params, out=dict(params['out'], kernel=jnp.zeros_like(
      params['out']['kernel'])))
  started = predictors.make_predict_fn(model, config)(flat, images)
  np.testing.assert_allclose(started, 0.5 * fcn_masks, atol=1e-5)
  config.eval.fcn.start_scale = 0.0
  restarted = predictors.make_predict_fn(model, config)(flat, images)
  assert not np.allclose(restarted, started, atol=1e-2)
  # prior_weight lam: each crop's ascent also climbs lam * log p_FCN(y | x);
  # the flat net's masks from y = 0 are then clip(T * step * lam * logit p)
  # over each crop, put together by the crops' mean.
  config.eval.fcn.start_scale, config.eval.fcn.prior_weight = 0.0, 1e-3
  builders.check_config(config)
  pulled = predictors.make_predict_fn(model, config)(flat, images)
  offsets = inference.crop_offsets(config.image_size, config.crop_size,
                                   config.eval.num_crops)
  crops = inference.extract_crops(input_pipeline.images_to_float(images),
                                  offsets, config.crop_size)
  p = jax.nn.sigmoid(fcn.apply({'params': fcn_params},
                               crops.reshape((-1,) + crops.shape[2:])))
  steps = config.eval.inference.num_steps * config.eval.inference.step_size
  pulled_crops = jnp.clip(steps * 1e-3 * jnp.clip(
      jnp.log(p) - jnp.log1p(-p), -8, 8), 0.0, 1.0)
  np.testing.assert_allclose(pulled, inference.average_crops(
      pulled_crops.reshape(crops.shape[:-1] + (1,)), offsets,
      config.image_size), atol=1e-5)
  assert 0.05 < float((np.asarray(pulled) > 1e-3).mean()) < 0.95
  config.eval.fcn.prior_weight = -1.0
  with pytest.raises(ConfigError, match='eval.fcn.prior_weight must be >= 0'):
    builders.check_config(config)
  config.eval.fcn.prior_weight = 0.0
  config.eval.fcn.start_scale = -0.5
  with pytest.raises(ConfigError, match='eval.fcn.start_scale must be in'):
    builders.check_config(config)
  config.eval.fcn.start_scale = 0.0
  config.eval.fcn.weight = 1.5
  with pytest.raises(ConfigError, match='eval.fcn.weight must be in'):
    builders.check_config(config)
  config.eval.fcn.weight, config.eval.fcn.params = 0.5, ''
  with pytest.raises(ConfigError, match='eval.fcn.params file not found'):
    builders.check_config(config)
  config.eval.fcn.weight, config.eval.fcn.prior_weight = 0.0, 1e-3
  with pytest.raises(ConfigError, match='eval.fcn.params file not found'):
    builders.check_config(config)   # the prior alone needs the FCN too


def test_the_fcn_prior_is_the_gradient_of_its_log_likelihood_clipped():
  """Binary: d/dy [y log p + (1 - y) log(1 - p)] = logit p; K classes:
  d/dy_k sum_k y_k log p_k = log p_k; a certain FCN pulls at most 8."""
  binary = jnp.array([0.5, 0.9, 0.1, 1.0, 0.0]).reshape(1, 5, 1, 1)
  np.testing.assert_allclose(
      np.ravel(fcn_starts.log_likelihood_gradient(binary)),
      [0.0, np.log(9.0), -np.log(9.0), 8.0, -8.0], rtol=1e-5, atol=1e-6)
  classes = jnp.array([0.7, 0.2, 0.1, 0.0]).reshape(1, 1, 1, 4)
  np.testing.assert_allclose(
      np.ravel(fcn_starts.log_likelihood_gradient(classes)),
      [np.log(0.7), np.log(0.2), np.log(0.1), -8.0], rtol=1e-5)


def test_soft_iou_loss_is_one_minus_the_relaxed_iou_and_pulls_towards_truth():
  masks = jnp.zeros((2, 4, 4, 1)).at[:, :2].set(1.0)   # half the pixels on
  certain = jnp.where(masks > 0, 20.0, -20.0)          # sigmoid ~ the mask
  assert float(losses.soft_iou_loss(certain, masks)) < 1e-6
  zeros = jnp.zeros_like(masks)                        # p = 0.5 everywhere
  # relaxed IoU of 0.5 everywhere vs half on: sum min 4, sum max 8+4 -> 1/3.
  np.testing.assert_allclose(losses.soft_iou_loss(zeros, masks), 2 / 3,
                             rtol=1e-6)
  grad = jax.grad(losses.soft_iou_loss)(zeros, masks)
  assert bool(jnp.all(grad[masks > 0] < 0)) and bool(jnp.all(grad[masks == 0] > 0))


def test_fcn_iou_loss_weight_trains_and_multiclass_is_a_config_error():
  config = fcn_config_module.get_config('smoke')
  assert config.iou_loss_weight == 0.0       # the paper's baseline loss
  model = builders.create_model(config)
  tx = optax.adam(1e-3)
  inputs = jnp.asarray(np.random.default_rng(0).uniform(
      size=(4, 32, 32, 3)), jnp.float32)
  targets = jnp.zeros((4, 32, 32, 1)).at[:, 8:24, 8:24].set(1.0)
  indices = jnp.arange(config.batch_size) % 4
  loss = {}
  for weight in (0.0, 1.0):
    config.iou_loss_weight = weight
    state = train.create_state(model, tx, config)
    step = train.make_classifier_train_step(model, tx, config)
    _, metrics = step(state, inputs, targets, indices)
    loss[weight] = float(metrics['loss'])
  assert loss[1.0] > loss[0.0] + 0.1          # the IoU term is in the loss
  config.num_classes = 3
  with pytest.raises(ConfigError, match='iou_loss_weight is for binary'):
    builders.check_config(config)
