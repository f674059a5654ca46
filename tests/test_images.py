"""Every image mode PIL opens reaches the networks as faithful 8-bit RGB
(dvn_jax/datasets/images.py): each mode is written to a file where a format
holds it, read back, and its pixels compared with what they must be."""

import io

import numpy as np
import pytest
from PIL import Image
from PIL import ImageCms

from dvn_jax.datasets import images
from dvn_jax.errors import DataError

WHITE, BLACK = (255, 255, 255), (0, 0, 0)


def saved(image: Image.Image, tmp_path, fmt: str, **options):
  path = tmp_path / f'image.{fmt.lower()}'
  image.save(path, fmt, **options)
  return path


def read(path, background=WHITE):
  rgb, notes = images.read_rgb(path, background)
  assert rgb.dtype == np.uint8 and rgb.ndim == 3 and rgb.shape[-1] == 3
  return rgb, notes


def grey(values) -> np.ndarray:
  values = np.asarray(values, np.uint8)
  return np.repeat(values[..., None], 3, axis=-1)


def scaled(values) -> np.ndarray:
  """The 8-bit grey of high-bit-depth pixels: their range to 0..255."""
  values = np.asarray(values, np.float64)
  low, high = values.min(), values.max()
  return grey(np.rint((values - low) * 255 / (high - low)))


# ---------------------------------------------------------- 8-bit modes ----


def test_rgb_and_grey_are_read_as_they_are(tmp_path):
  rgb = np.random.default_rng(0).integers(0, 256, (5, 7, 3), dtype=np.uint8)
  for fmt in ('PNG', 'TIFF', 'BMP'):
    got, notes = read(saved(Image.fromarray(rgb), tmp_path, fmt))
    np.testing.assert_array_equal(got, rgb)
    assert notes == []
  values = rgb[..., 0]
  got, _ = read(saved(Image.fromarray(values, 'L'), tmp_path, 'PNG'))
  np.testing.assert_array_equal(got, grey(values))
  bits = values > 127
  got, _ = read(saved(Image.fromarray(bits), tmp_path, 'PNG'))   # mode 1
  np.testing.assert_array_equal(got, grey(np.where(bits, 255, 0)))


def test_a_palette_image_takes_its_palette_colours(tmp_path):
  image = Image.new('P', (3, 1))
  image.putpalette([200, 10, 20, 0, 90, 250] + [0] * 762)
  image.putdata([0, 1, 1])
  got, notes = read(saved(image, tmp_path, 'PNG'))
  np.testing.assert_array_equal(got[0], [[200, 10, 20], [0, 90, 250],
                                         [0, 90, 250]])
  assert notes == []


@pytest.mark.parametrize('mode,pixels,expected', [
    # Naive CMYK: R = (255 - C)(255 - K) / 255 (no ICC profile embedded).
    ('CMYK', [[0, 0, 0, 0], [255, 0, 0, 0], [0, 0, 0, 255], [0, 128, 0, 128]],
     [[255, 255, 255], [0, 255, 255], [0, 0, 0], [127, 63, 127]]),
    # L in 0..255 for 0..100, a and b signed: L 128 with a = b = 0 is the
    # grey of L* 50.2 in sRGB.
    ('LAB', [[128, 0, 0], [255, 0, 0], [0, 0, 0]],
     [[119, 119, 119], [255, 255, 255], [0, 0, 0]]),
    ('HSV', [[0, 255, 255], [85, 255, 255], [0, 0, 128]],
     [[255, 0, 0], [0, 255, 0], [128, 128, 128]]),
    ('YCbCr', [[128, 128, 128], [200, 128, 128]],
     [[128, 128, 128], [200, 200, 200]]),
])
def test_colour_spaces_are_converted_to_rgb(tmp_path, mode, pixels, expected):
  image = Image.fromarray(np.array([pixels], np.uint8), mode)
  if mode in ('CMYK', 'LAB', 'YCbCr'):   # formats that hold the mode
    path = saved(image, tmp_path, 'TIFF')
    assert Image.open(path).mode == mode
    got, _ = read(path)
  else:
    got, _ = images.to_rgb(image)
  np.testing.assert_allclose(got[0], expected, atol=1)


def test_rgbx_drops_its_padding_byte():
  pixels = np.array([[[10, 20, 30, 0], [40, 50, 60, 255]]], np.uint8)
  got, notes = images.to_rgb(Image.fromarray(pixels, 'RGBX'))
  np.testing.assert_array_equal(got, pixels[..., :3])
  assert notes == []


# ----------------------------------------------------- high bit depths ----


@pytest.mark.parametrize('mode,fmt', [
    ('I;16', 'PNG'), ('I;16B', 'TIFF'), ('I;16L', 'TIFF'), ('I', 'TIFF'),
    ('F', 'TIFF')])
def test_high_bit_depths_are_scaled_by_their_pixels_range(tmp_path, mode, fmt):
  values = np.array([[0, 1000, 2047], [3000, 4000, 4095]])  # a 12-bit image
  if mode == 'I':
    values = values - 70000         # 32-bit, negative
  if mode == 'F':
    values = values / 4095 * 3.5 - 1.0
  dtype = {'I': '<i4', 'F': '<f4', 'I;16B': '>u2'}.get(mode, '<u2')
  image = Image.frombytes(mode, values.shape[::-1],
                          values.astype(dtype).tobytes())
  path = saved(image, tmp_path, fmt)
  got, notes = read(path)
  np.testing.assert_array_equal(got, scaled(values))
  assert any('scaled to 0..255' in note for note in notes)
  # Before: PIL's convert('RGB') clipped at 255, so all but 0 was white.
  assert len(np.unique(got)) == 6


def test_a_flat_high_bit_image_is_black_and_nan_is_refused(tmp_path):
  flat = Image.fromarray(np.full((2, 3), 700, np.uint16))
  got, _ = read(saved(flat, tmp_path, 'PNG'))
  np.testing.assert_array_equal(got, np.zeros((2, 3, 3)))
  nan = Image.fromarray(np.array([[0.5, np.nan]], np.float32))
  with pytest.raises(DataError, match='image.tiff: .*NaN or infinite'):
    read(saved(nan, tmp_path, 'TIFF'))


# ------------------------------------------------------- transparency ----


def composited(colour, alpha, background) -> np.ndarray:
  colour, alpha = np.asarray(colour, float), np.asarray(alpha, float) / 255
  return np.rint(colour * alpha[..., None] + (1 - alpha[..., None]) *
                 np.asarray(background, float)).astype(np.uint8)


@pytest.mark.parametrize('background', [WHITE, BLACK, (0, 128, 255)])
def test_rgba_and_la_are_composited_on_the_background(tmp_path, background):
  colour = np.array([[[255, 0, 0], [0, 255, 0], [10, 20, 30]]], np.uint8)
  alpha = np.array([[0, 128, 255]], np.uint8)
  rgba = Image.fromarray(np.concatenate([colour, alpha[..., None]], -1))
  got, notes = read(saved(rgba, tmp_path, 'PNG'), background)
  np.testing.assert_array_equal(got, composited(colour, alpha, background))
  assert notes == [f'transparent pixels composited on RGB {background}']
  la = Image.fromarray(np.stack([colour[..., 1], alpha], -1), 'LA')
  got, _ = read(saved(la, tmp_path, 'PNG'), background)
  np.testing.assert_array_equal(
      got, composited(grey(colour[..., 1]), alpha, background))


def test_palette_transparency_is_composited(tmp_path):
  image = Image.new('P', (2, 1))
  image.putpalette([255, 0, 0, 0, 255, 0] + [0] * 762)
  image.putdata([0, 1])
  path = saved(image, tmp_path, 'PNG', transparency=0)   # index 0
  got, _ = read(path, BLACK)
  np.testing.assert_array_equal(got[0], [[0, 0, 0], [0, 255, 0]])
  pa = Image.fromarray(np.array([[[0, 128], [1, 255]]], np.uint8), 'PA')
  pa.putpalette([255, 0, 0, 0, 255, 0] + [0] * 762)
  got, _ = read(saved(pa, tmp_path, 'TIFF'), WHITE)
  np.testing.assert_array_equal(got[0], [[255, 127, 127], [0, 255, 0]])


def test_a_transparent_colour_key_is_composited(tmp_path):
  values = np.array([[10, 20, 30]], np.uint8)
  got, _ = read(saved(Image.fromarray(values, 'L'), tmp_path, 'PNG',
                      transparency=20))
  np.testing.assert_array_equal(got, grey([[10, 255, 30]]))
  rgb = np.array([[[1, 2, 3], [4, 5, 6]]], np.uint8)
  got, _ = read(saved(Image.fromarray(rgb), tmp_path, 'PNG',
                      transparency=(4, 5, 6)), BLACK)
  np.testing.assert_array_equal(got, [[[1, 2, 3], [0, 0, 0]]])


def test_premultiplied_alpha_is_not_multiplied_twice():
  colour = np.array([[[100, 50, 0], [40, 40, 40]]], np.uint8)   # x alpha
  alpha = np.array([[128, 64]], np.uint8)
  rgba = Image.fromarray(np.concatenate([colour, alpha[..., None]], -1),
                         'RGBa')
  got, _ = images.to_rgb(rgba, WHITE)
  expected = np.rint(colour + (1 - alpha[..., None] / 255) * 255)
  np.testing.assert_array_equal(got, expected)
  la = Image.fromarray(np.stack([colour[..., 0], alpha], -1), 'La')
  got, _ = images.to_rgb(la, BLACK)
  np.testing.assert_array_equal(got, grey(colour[..., 0]))


# --------------------------------------------------------- the rest ----


def test_exif_orientation_is_applied(tmp_path):
  pixels = np.zeros((2, 4, 3), np.uint8)
  pixels[0, 0] = 255
  exif = Image.Exif()
  exif[0x0112] = 6     # rotate 90 degrees clockwise to view
  path = saved(Image.fromarray(pixels), tmp_path, 'PNG', exif=exif)
  got, _ = read(path)
  assert got.shape == (4, 2, 3)
  np.testing.assert_array_equal(got[0, -1], [255, 255, 255])


def test_several_frames_use_the_first_and_say_so(tmp_path):
  frames = [Image.new('L', (3, 2), v) for v in (40, 200)]
  path = tmp_path / 'anim.gif'
  frames[0].save(path, save_all=True, append_images=frames[1:])
  got, notes = read(path)
  np.testing.assert_array_equal(got, grey(np.full((2, 3), 40)))
  assert '2 frames; the first is used' in notes


def test_an_embedded_icc_profile_is_honoured_or_reported(tmp_path):
  rgb = np.random.default_rng(1).integers(0, 256, (4, 5, 3), dtype=np.uint8)
  srgb = ImageCms.ImageCmsProfile(ImageCms.createProfile('sRGB')).tobytes()
  got, notes = read(saved(Image.fromarray(rgb), tmp_path, 'PNG',
                          icc_profile=srgb))
  np.testing.assert_allclose(got, rgb, atol=2)
  assert notes == []
  got, notes = read(saved(Image.fromarray(rgb), tmp_path, 'PNG',
                          icc_profile=b'not a profile'))
  np.testing.assert_array_equal(got, rgb)
  assert any('ICC profile cannot be used' in note for note in notes)


def test_an_unknown_mode_is_refused_in_one_line(monkeypatch):
  image = Image.new('RGB', (2, 2))
  monkeypatch.setattr(Image.Image, 'mode', property(lambda self: 'BGR;24'))
  with pytest.raises(DataError, match="mode 'BGR;24' has no faithful"):
    images.to_rgb(image)


def test_files_that_are_not_images_are_one_line(tmp_path, monkeypatch):
  (tmp_path / 'empty.png').write_bytes(b'')
  (tmp_path / 'text.jpg').write_text('not a jpeg')
  whole = io.BytesIO()
  Image.new('RGB', (40, 40)).save(whole, 'PNG')
  (tmp_path / 'cut.png').write_bytes(whole.getvalue()[:60])
  for name in ('empty.png', 'text.jpg', 'cut.png'):
    with pytest.raises(DataError, match=f'{name} is not a readable image'):
      images.read_rgb(tmp_path / name)
  with pytest.raises(DataError, match='image not found'):
    images.read_rgb(tmp_path / 'nowhere.png')
  with pytest.raises(DataError, match='is a folder'):
    images.read_rgb(tmp_path)
  monkeypatch.setattr(Image, 'MAX_IMAGE_PIXELS', 100)
  Image.new('RGB', (12, 12)).save(tmp_path / 'big.png')   # 144 > 100
  with pytest.raises(DataError, match='more than 100 pixels'):
    images.read_rgb(tmp_path / 'big.png')


def test_background_colours_are_parsed_or_refused():
  assert images.parse_color('white') == WHITE
  assert images.parse_color('#008040') == (0, 128, 64)
  with pytest.raises(DataError, match="unknown colour 'blurple'"):
    images.parse_color('blurple')
