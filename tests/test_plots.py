"""PIL scatter plots (dvn_jax/plots.py)."""

import numpy as np

from dvn_jax import plots


def test_values_map_to_pixels_with_y_upwards():
  np.testing.assert_allclose(plots.to_pixels(np.array([0.0, 1.0]), 0.0, 1.0,
                                             10, flip=False),
                             [10, 10 + plots.SIZE])
  np.testing.assert_allclose(plots.to_pixels(np.array([0.0, 1.0]), 0.0, 1.0,
                                             10, flip=True),
                             [10 + plots.SIZE, 10])


def test_axis_range_is_the_unit_or_the_padded_data():
  assert plots.axis_range(np.array([3.0, 5.0]), unit=True) == (0.0, 1.0)
  assert plots.axis_range(np.array([3.0, 5.0]), unit=False) == (2.9, 5.1)
  low, high = plots.axis_range(np.array([2.0, 2.0]), unit=False)
  assert low < 2.0 < high   # a constant still gets a range


def test_a_point_is_drawn_where_its_values_say():
  panel = plots.Panel('t', np.array([0.5]), np.array([0.25]), 'v',
                      diagonal=True)
  image = plots.scatter([panel, panel], 'x')
  assert image.size == (2 * (plots.SIZE + 2 * plots.MARGIN),
                        plots.SIZE + 3 * plots.MARGIN)
  left, top = plots.MARGIN, plots.MARGIN + 8
  px = int(left + 0.5 * plots.SIZE)
  py = int(top + 0.75 * plots.SIZE)
  # The point, under its bin's mean (the same point): the mean's colour.
  assert image.getpixel((px, py)) == plots.MEAN_COLOUR
  assert image.getpixel((px, top + plots.SIZE // 10)) == (255, 255, 255)


def test_binned_means_average_each_tenth():
  x = np.array([0.01, 0.05, 0.55, 1.0, 0.95])
  y = np.array([1.0, 3.0, 5.0, 2.0, 4.0])
  mean_x, mean_y = plots.binned_means(x, y)
  np.testing.assert_allclose(mean_x, [0.03, 0.55, 0.975])
  np.testing.assert_allclose(mean_y, [2.0, 5.0, 3.0])
