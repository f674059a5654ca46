"""Scatter plots as PNG with PIL alone (no plotting library needed)."""

from __future__ import annotations

import dataclasses

import numpy as np
from PIL import Image
from PIL import ImageDraw

SIZE = 300       # plotting area of a panel, pixels
MARGIN = 48      # room for the axes' numbers and labels
POINT = 1        # radius of a point
POINT_COLOUR = (120, 170, 210)
MEAN_COLOUR = (214, 39, 40)


@dataclasses.dataclass(frozen=True)
class Panel:
  """One panel: points (x, y), a title, the y axis' label, and the line
  y = x when `diagonal` (both axes then span [0, 1]); the mean y of each
  tenth of the x axis is drawn over the points (`binned_means`)."""
  title: str
  x: np.ndarray
  y: np.ndarray
  y_label: str
  diagonal: bool = False


def axis_range(values: np.ndarray, unit: bool) -> tuple[float, float]:
  """[0, 1] for a unit axis, else the values' range padded by 5%."""
  if unit:
    return 0.0, 1.0
  low, high = float(np.min(values)), float(np.max(values))
  pad = 0.05 * (high - low) or 0.5
  return low - pad, high + pad


def binned_means(x: np.ndarray, y: np.ndarray, bins: int = 10
                 ) -> tuple[np.ndarray, np.ndarray]:
  """(mean x, mean y) of the points in each of `bins` equal parts of
  x in [0, 1] that holds any (1.0 falls in the last)."""
  index = np.minimum((np.asarray(x) * bins).astype(int), bins - 1)
  filled = [i for i in range(bins) if np.any(index == i)]
  return (np.array([np.mean(x[index == i]) for i in filled]),
          np.array([np.mean(y[index == i]) for i in filled]))


def to_pixels(values: np.ndarray, low: float, high: float, start: int,
              flip: bool) -> np.ndarray:
  """Values on [low, high] -> pixel coordinates on [start, start + SIZE]
  (upwards when flip: image rows grow downwards)."""
  fraction = (np.asarray(values, np.float64) - low) / (high - low)
  if flip:
    fraction = 1.0 - fraction
  return start + fraction * SIZE


def draw_panel(draw: ImageDraw.ImageDraw, panel: Panel, left: int, top: int,
               x_label: str) -> None:
  x_range = (0.0, 1.0)
  y_range = axis_range(panel.y, panel.diagonal)
  draw.rectangle((left, top, left + SIZE, top + SIZE), outline='black')
  xs = to_pixels(panel.x, *x_range, left, flip=False)
  ys = to_pixels(panel.y, *y_range, top, flip=True)
  if panel.diagonal:
    draw.line((left, top + SIZE, left + SIZE, top), fill=(160, 160, 160))
  for px, py in zip(xs, ys):
    draw.ellipse((px - POINT, py - POINT, px + POINT, py + POINT),
                 fill=POINT_COLOUR)
  mean_x, mean_y = binned_means(panel.x, panel.y)
  line = list(zip(to_pixels(mean_x, *x_range, left, flip=False),
                  to_pixels(mean_y, *y_range, top, flip=True)))
  if len(line) > 1:
    draw.line(line, fill=MEAN_COLOUR, width=2)
  for px, py in line:
    draw.ellipse((px - 3, py - 3, px + 3, py + 3), fill=MEAN_COLOUR)
  for value in np.linspace(*x_range, 5):
    px = to_pixels(value, *x_range, left, flip=False)
    draw.line((px, top + SIZE, px, top + SIZE + 4), fill='black')
    draw.text((px - 10, top + SIZE + 6), f'{value:.2f}', fill='black')
  for value in np.linspace(*y_range, 5):
    py = to_pixels(value, *y_range, top, flip=True)
    draw.line((left - 4, py, left, py), fill='black')
    draw.text((left - MARGIN + 4, py - 5), f'{value:.2f}', fill='black')
  draw.text((left, top - 30), panel.title, fill='black')
  draw.text((left, top - 16), panel.y_label + ' (red: mean per tenth of x)',
            fill='black')
  draw.text((left + SIZE // 2 - 60, top + SIZE + 22), x_label, fill='black')


def scatter(panels: list[Panel], x_label: str) -> Image.Image:
  """Panels side by side, x on [0, 1] in each."""
  width = len(panels) * (SIZE + 2 * MARGIN)
  height = SIZE + 3 * MARGIN
  image = Image.new('RGB', (width, height), 'white')
  draw = ImageDraw.Draw(image)
  for i, panel in enumerate(panels):
    draw_panel(draw, panel, left=i * (SIZE + 2 * MARGIN) + MARGIN,
               top=MARGIN + 8, x_label=x_label)
  return image
