"""The predict command's file handling, in process (its end-to-end run is in
test_main.py)."""

import pathlib

import numpy as np
import pytest
from PIL import Image

from dvn_jax import predict
from dvn_jax.errors import ConfigError
from dvn_jax.errors import DataError


def test_a_folder_is_named_as_one(tmp_path):
  with pytest.raises(DataError, match='is a folder; name the image files'):
    predict.read_image(tmp_path)


def test_grey_and_rgba_images_are_read_as_rgb(tmp_path):
  Image.fromarray(np.zeros((5, 7), np.uint8), 'L').save(tmp_path / 'g.png')
  Image.fromarray(np.zeros((5, 7, 4), np.uint8), 'RGBA').save(
      tmp_path / 'a.png')
  for name in ('g.png', 'a.png'):
    image = predict.read_image(tmp_path / name)
    assert image.shape == (5, 7, 3) and image.dtype == np.uint8


def test_two_images_of_one_name_are_refused_before_any_work(tmp_path):
  paths = ['a/horse.jpg', 'b/horse.png', 'c/zebra.png']
  with pytest.raises(DataError, match='would both write .*horse_mask.png'):
    predict.mask_paths(paths, str(tmp_path))
  assert predict.mask_paths(paths[1:], str(tmp_path)) == [
      tmp_path / 'horse_mask.png', tmp_path / 'zebra_mask.png']
  assert not any(pathlib.Path(tmp_path).iterdir())


def test_the_released_best_model_segments_an_image(tmp_path):
  """README's predict command with the released hybrid (four value nets,
  five FCNs for the start and the prior: configs/horses.py:hybrid), its
  ascent cut to 2 steps on 4 crops: one binary mask at the image's size."""
  from configs import horses
  released = pathlib.Path(__file__).resolve().parents[1] / 'released'
  config = horses.get_config('hybrid')
  config.eval.num_crops = 4
  config.eval.inference.num_steps = 2
  image_path = tmp_path / 'horse.jpg'
  Image.fromarray(np.random.default_rng(0).integers(
      0, 255, (45, 70, 3), dtype=np.uint8)).save(image_path)
  [written] = predict.predict_files(config, None, [str(image_path)],
                                    str(tmp_path / 'masks'),
                                    f'{released / "horses_hybrid.npz"}:dvn')
  mask = np.asarray(Image.open(written))
  assert written.name == 'horse_mask.png'
  assert mask.shape == (45, 70) and set(np.unique(mask)) <= {0, 255}


class CapturingPredictor:
  """A stand-in model: records what reaches it, answers a soft mask of
  0.75 (binary) per pixel."""

  def __init__(self, monkeypatch):
    self.inputs = []
    monkeypatch.setattr(predict.builders, 'create_model', lambda config: None)
    monkeypatch.setattr(predict.train, 'load_trained_params',
                        lambda *args: {})
    monkeypatch.setattr(predict.predictors, 'make_predict_fn',
                        lambda model, config: self)

  def __call__(self, params, images):
    self.inputs.append(np.asarray(images))
    return np.full(images.shape[:3] + (1,), 0.75, np.float32)


def test_the_network_sees_a_16_bit_image_scaled_by_its_range(tmp_path,
                                                             monkeypatch):
  from configs import horses
  network = CapturingPredictor(monkeypatch)
  values = np.linspace(0, 4095, 40 * 50).reshape(40, 50).astype(np.uint16)
  Image.fromarray(values).save(tmp_path / 'deep.png')
  [written] = predict.predict_files(horses.get_config(), None,
                                    [str(tmp_path / 'deep.png')],
                                    str(tmp_path / 'masks'), 'unused.npz')
  grey = np.rint(values / 4095 * 255).astype(np.uint8)
  expected = predict.resize(np.repeat(grey[..., None], 3, -1), (32, 32))
  np.testing.assert_array_equal(network.inputs[0][0], expected)
  assert 100 < expected.mean() < 155   # mid grey, not all white
  assert np.asarray(Image.open(written)).min() == 255


def test_a_refused_run_writes_nothing(tmp_path, monkeypatch):
  from configs import horses
  network = CapturingPredictor(monkeypatch)
  Image.new('RGB', (9, 9)).save(tmp_path / 'good.png')
  (tmp_path / 'bad.png').write_text('not an image')
  before = sorted(tmp_path.iterdir())
  with pytest.raises(DataError, match='bad.png is not a readable image'):
    predict.predict_files(horses.get_config(), None,
                          [str(tmp_path / 'good.png'), str(tmp_path / 'bad.png')],
                          str(tmp_path / 'masks'), 'unused.npz')
  (tmp_path / 'masks' / 'good_mask.png').mkdir(parents=True)
  with pytest.raises(DataError, match='good_mask.png is a folder'):
    predict.predict_files(horses.get_config(), None,
                          [str(tmp_path / 'good.png')],
                          str(tmp_path / 'masks'), 'unused.npz')
  assert network.inputs == []    # refused before the network ran
  assert sorted(tmp_path.iterdir()) == before + [tmp_path / 'masks']


def test_a_run_that_fails_midway_removes_the_folder_it_made(tmp_path,
                                                            monkeypatch):
  from configs import horses
  network = CapturingPredictor(monkeypatch)
  Image.new('RGB', (9, 9)).save(tmp_path / 'a.png')
  Image.new('RGB', (9, 9)).save(tmp_path / 'b.png')
  calls = []

  def fails_second(params, images):
    calls.append(1)
    if len(calls) == 2:
      raise KeyboardInterrupt
    return network(params, images)

  monkeypatch.setattr(predict.predictors, 'make_predict_fn',
                      lambda model, config: fails_second)
  with pytest.raises(KeyboardInterrupt):
    predict.predict_files(horses.get_config(), None,
                          [str(tmp_path / 'a.png'), str(tmp_path / 'b.png')],
                          str(tmp_path / 'out' / 'masks'), 'unused.npz')
  assert not (tmp_path / 'out').exists()


def test_predict_refuses_a_config_that_is_not_segmentation(tmp_path):
  from configs import bibtex
  Image.new('RGB', (9, 9)).save(tmp_path / 'a.png')
  with pytest.raises(ConfigError, match='this is a multilabel config'):
    predict.predict_files(bibtex.get_config(), None, [str(tmp_path / 'a.png')],
                          str(tmp_path / 'masks'), 'unused.npz')
  assert not (tmp_path / 'masks').exists()


def test_batched_prediction_gives_the_masks_of_one_image_at_a_time():
  """Five images of different sizes, three per compiled call (the last call
  padded), segment as they do one per call; one program serves all."""
  import jax
  from configs import horses
  from dvn_jax import builders
  from dvn_jax import predictors
  config = horses.get_config('smoke')
  builders.check_config(config)
  model = builders.create_model(config)
  params = builders.init_model_params(model, config, jax.random.key(1))
  predict_fn = predictors.make_predict_fn(model, config)
  rng = np.random.default_rng(0)
  rgbs = [rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
          for h, w in [(20, 30), (32, 32), (64, 41), (9, 9), (50, 50)]]
  one = list(predict.segment(predict_fn, params, rgbs, 32, 0.5, 1))
  batched = list(predict.segment(predict_fn, params, rgbs, 32, 0.5, 3))
  assert [m.shape for m in batched] == [r.shape[:2] for r in rgbs]
  for a, b in zip(one, batched):
    np.testing.assert_array_equal(a, b)
  assert predict_fn._cache_size() == 2   # batch 1 and batch 3, no more
