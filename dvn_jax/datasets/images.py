"""Image files as the 8-bit RGB arrays the networks see, for every mode PIL
opens, converted faithfully or refused in one line.

`to_rgb(image, background)`:
- 8-bit modes (1, L, P, RGB, RGBX, CMYK, YCbCr, LAB, HSV) through PIL's own
  conversion to RGB; an embedded ICC profile (an Adobe RGB or CMYK JPEG) is
  honoured: the colours are converted from it to sRGB.
- High bit depth grey (I;16 and its byte orders, 32-bit I, float F): the
  pixels' own range, min to max, scaled linearly to 0..255 (a flat image is
  black); non-finite values are refused.
- Transparency (LA, PA, RGBA, premultiplied La and RGBa, and P, L or RGB
  with a transparent colour): composited on `background` (white unless the
  caller says otherwise): out = alpha * colour + (1 - alpha) * background.
- The EXIF orientation is applied, so the array (and the mask drawn from
  it) is the image as viewers show it; of several frames (GIF, TIFF pages)
  the first is used.
- Any other mode: DataError.
Each step that changes more than the encoding is reported in the returned
notes (one short phrase each), for the caller to show.
"""

from __future__ import annotations

import io
import os
import pathlib
import warnings

import numpy as np
from PIL import Image
from PIL import ImageCms
from PIL import ImageColor
from PIL import ImageOps
from PIL import UnidentifiedImageError

from dvn_jax.errors import DataError

RGB = tuple[int, int, int]
WHITE: RGB = (255, 255, 255)

EIGHT_BIT = frozenset({'1', 'L', 'P', 'RGB', 'RGBX', 'CMYK', 'YCbCr', 'LAB',
                       'HSV'})
HIGH_BIT = frozenset({'I', 'I;16', 'I;16L', 'I;16B', 'I;16N', 'F'})
STRAIGHT_ALPHA = frozenset({'LA', 'PA', 'RGBA'})
PREMULTIPLIED_ALPHA = frozenset({'La', 'RGBa'})
MODES = EIGHT_BIT | HIGH_BIT | STRAIGHT_ALPHA | PREMULTIPLIED_ALPHA
# PIL's errors for a file that is not an image, a truncated or corrupt one,
# or one too large to decode safely.
READ_ERRORS = (UnidentifiedImageError, OSError, ValueError, SyntaxError,
               Image.DecompressionBombError)


def parse_color(text: str) -> RGB:
  """An RGB triple of a colour name or code PIL knows ('white', '#808080',
  'rgb(0,0,0)'); DataError otherwise."""
  try:
    return ImageColor.getrgb(text)[:3]
  except (ValueError, AttributeError):
    raise DataError(f'unknown colour {text!r}; name one as white, black or '
                    '#rrggbb') from None


def _high_bit_to_grey(image: Image.Image, notes: list[str]) -> Image.Image:
  """A 16-bit, 32-bit or float grey image as 8-bit L (LA with a transparent
  value), its pixel range scaled to 0..255."""
  values = np.asarray(image).astype(np.float64)
  if not np.isfinite(values).all():
    raise DataError(f'a {image.mode} image with NaN or infinite pixels has no '
                    'range to scale; replace them with finite values')
  low, high = float(values.min()), float(values.max())
  scale = 255.0 / (high - low) if high > low else 0.0
  grey = np.rint((values - low) * scale).astype(np.uint8)
  notes.append(f'{image.mode} pixels {low:g}..{high:g} scaled to 0..255')
  key = image.info.get('transparency')
  if isinstance(key, (int, float)):
    alpha = np.where(values == key, 0, 255).astype(np.uint8)
    return Image.fromarray(np.stack([grey, alpha], axis=-1), 'LA')
  return Image.fromarray(grey, 'L')


def _composited(image: Image.Image, background: RGB,
                notes: list[str]) -> Image.Image:
  """An image with an alpha channel or a transparent colour as RGB on
  `background`; straight and premultiplied alpha alike."""
  if image.mode in PREMULTIPLIED_ALPHA:
    pixels = np.asarray(image).astype(np.float64)
    colour, alpha = pixels[..., :-1], pixels[..., -1:] / 255.0
  else:
    pixels = np.asarray(image.convert('RGBA')).astype(np.float64)
    alpha = pixels[..., 3:] / 255.0
    colour = pixels[..., :3] * alpha
  if (alpha < 1).any():
    notes.append('transparent pixels composited on RGB '
                 f'{tuple(background)}')
  rgb = colour + (1.0 - alpha) * np.asarray(background, np.float64)
  rgb = np.broadcast_to(rgb, alpha.shape[:-1] + (3,))   # La: grey
  return Image.fromarray(np.clip(np.rint(rgb), 0, 255).astype(np.uint8),
                         'RGB')


def _in_srgb(image: Image.Image, profile: bytes | None,
             notes: list[str]) -> Image.Image:
  """An 8-bit image as RGB, its colours converted from an embedded ICC
  `profile` to sRGB when it has one that fits its mode."""
  if profile:
    if image.mode not in ('L', 'RGB', 'CMYK', 'LAB'):
      image = image.convert('RGB')   # palette, 1 bit, RGBX, YCbCr, HSV
    try:
      return ImageCms.profileToProfile(
          image, io.BytesIO(profile), ImageCms.createProfile('sRGB'),
          outputMode='RGB')
    except (ImageCms.PyCMSError, OSError, ValueError, TypeError) as e:
      notes.append(f'its ICC profile cannot be used ({type(e).__name__}); '
                   'the colours are taken as they are')
  return image.convert('RGB')


def to_rgb(image: Image.Image, background: RGB = WHITE
           ) -> tuple[np.ndarray, list[str]]:
  """uint8 (H, W, 3) of an opened PIL image (module docstring), and the
  notes on what the conversion did beyond decoding."""
  notes: list[str] = []
  frames = getattr(image, 'n_frames', 1)
  if frames > 1:
    notes.append(f'{frames} frames; the first is used')
  mode = image.mode
  if mode not in MODES:
    raise DataError(f'PIL mode {mode!r} has no faithful conversion to 8-bit '
                    'RGB here; save the image as an 8-bit RGB PNG or JPEG')
  profile = image.info.get('icc_profile')
  try:
    image = ImageOps.exif_transpose(image)
  except (ValueError, TypeError, KeyError, SyntaxError, OSError):
    notes.append('its EXIF orientation cannot be read; used as stored')
  if image.mode in HIGH_BIT:
    image = _high_bit_to_grey(image, notes)
  if (image.mode in STRAIGHT_ALPHA | PREMULTIPLIED_ALPHA
      or 'transparency' in image.info):
    image = _composited(image, background, notes)
  return np.asarray(_in_srgb(image, profile, notes)), notes


def read_rgb(path: str | os.PathLike, background: RGB = WHITE
             ) -> tuple[np.ndarray, list[str]]:
  """`to_rgb` of an image file; DataError if it is missing, not an image,
  or damaged."""
  path = pathlib.Path(path)
  if path.is_dir():
    raise DataError(f'{path} is a folder; name the image files in it')
  if not path.is_file():
    raise DataError(f'image not found: {path}')
  try:
    with warnings.catch_warnings():
      # Above PIL's pixel limit it warns, above twice the limit it refuses.
      warnings.simplefilter('error', Image.DecompressionBombWarning)
      with Image.open(path) as image:
        image.load()
        return to_rgb(image, background)
  except DataError as e:   # a mode or pixels to_rgb refuses
    raise DataError(f'{path}: {e}') from None
  except Image.DecompressionBombWarning:
    raise DataError(f'{path} has more than {Image.MAX_IMAGE_PIXELS} pixels '
                    '(a decompression bomb?); shrink it first') from None
  except READ_ERRORS as e:
    raise DataError(f'{path} is not a readable image ({type(e).__name__}): '
                    'damaged, or in a format PIL does not know; pass a JPEG, '
                    'PNG or TIFF file') from None
