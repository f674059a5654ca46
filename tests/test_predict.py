"""The predict command's file handling, in process (its end-to-end run is in
test_main.py)."""

import pathlib

import numpy as np
import pytest
from PIL import Image

from dvn_jax import predict
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
  """README's predict command with the released files of the best result
  (three value nets named with commas, five FCNs for the start and the prior),
  its ascent cut to 2 steps on 4 crops: one binary mask at the image's size."""
  from configs import horses
  released = pathlib.Path(__file__).resolve().parents[1] / 'released'
  config = horses.get_config()
  config.eval.num_crops = 4
  config.eval.inference.num_steps = 2
  config.eval.fcn.params = str(released / 'horses_fcn_ema_ensemble.npz')
  config.eval.fcn.start_scale = 0.1
  config.eval.fcn.prior_weight = 2.35e-4
  params = ','.join(str(released / name) for name in (
      'horses_dvn_long_pair.npz', 'horses_dvn_interp_seed2.npz'))
  image_path = tmp_path / 'horse.jpg'
  Image.fromarray(np.random.default_rng(0).integers(
      0, 255, (45, 70, 3), dtype=np.uint8)).save(image_path)
  [written] = predict.predict_files(config, None, [str(image_path)],
                                    str(tmp_path / 'masks'), params)
  mask = np.asarray(Image.open(written))
  assert written.name == 'horse_mask.png'
  assert mask.shape == (45, 70) and set(np.unique(mask)) <= {0, 255}
