r"""Writes a small synthetic LFW Part Labels folder in the official formats.

For tests and smoke runs (the real data is not on CI machines): a handful
of 250x250 "faces" (a skin-coloured ellipse under a hair cap on a smooth
background), each with its funneled-style JPEG, PPM label image, superpixel
map and superpixel labels, plus the three list files, laid out as the
official archives unpack (see `part_labels.py`):

  python -m dvn_jax.datasets.make_part_labels_fixture --out=/tmp/lfw_fixture

Superpixels are the Voronoi cells of random seeds; like the official label
images, the PPM labels are constant on each superpixel (its majority class).
"""

from __future__ import annotations

import pathlib

import numpy as np
from absl import app
from absl import flags
from PIL import Image

from dvn_jax.datasets import part_labels

# Class colours of the official label images (R = hair, G = face, B = bg).
LABEL_COLOURS = np.eye(3, dtype=np.uint8) * 255
COUNTS = {'train': 8, 'val': 4, 'test': 4}


def synthetic_labels(rng: np.random.Generator, size: int) -> np.ndarray:
  """Pixel classes (size, size): a face ellipse under a hair cap."""
  rows, cols = np.mgrid[0:size, 0:size] / size
  cy, cx = 0.55 + rng.uniform(-0.05, 0.05), 0.5 + rng.uniform(-0.06, 0.06)
  ry, rx = rng.uniform(0.22, 0.3), rng.uniform(0.15, 0.22)
  face = ((rows - cy) / ry) ** 2 + ((cols - cx) / rx) ** 2 <= 1
  head = ((rows - cy + 0.08) / (ry + 0.08)) ** 2 + (
      (cols - cx) / (rx + 0.06)) ** 2 <= 1
  hair = head & ~face & (rows < cy + rng.uniform(0.0, 0.1))
  labels = np.full((size, size), part_labels.CLASSES.index('background'),
                   np.uint8)
  labels[hair] = part_labels.CLASSES.index('hair')
  labels[face] = part_labels.CLASSES.index('face')
  return labels


def voronoi_superpixels(rng: np.random.Generator, size: int,
                        num_superpixels: int) -> np.ndarray:
  """Superpixel ids (size, size): the nearest of random seeds, 0-based."""
  seeds = rng.uniform(0, size, (num_superpixels, 2))
  rows, cols = np.mgrid[0:size, 0:size]
  pixels = np.stack([rows.ravel(), cols.ravel()], axis=1).astype(np.float32)
  # |p - s|^2 = |p|^2 - 2 p.s + |s|^2; |p|^2 does not change the argmin.
  nearest = (-2.0 * pixels @ seeds.T + (seeds ** 2).sum(axis=1)).argmin(axis=1)
  # Renumber 0..S-1 in order of first appearance (every id is used).
  _, first, inverse = np.unique(nearest, return_index=True,
                                return_inverse=True)
  order = np.argsort(np.argsort(first))
  return order[inverse].reshape(size, size)


def superpixel_majority(labels: np.ndarray, superpixels: np.ndarray
                        ) -> np.ndarray:
  """The most frequent class of each superpixel: (S,)."""
  num = superpixels.max() + 1
  votes = np.bincount(superpixels.ravel() * 3 + labels.ravel(),
                      minlength=num * 3).reshape(num, 3)
  return votes.argmax(axis=1).astype(np.uint8)


def synthetic_image(rng: np.random.Generator, labels: np.ndarray
                    ) -> np.ndarray:
  """An RGB image whose colours follow the classes, with noise."""
  size = labels.shape[0]
  ramp = np.linspace(0, 1, size)[None, :, None]
  background = rng.uniform(40, 200, 3) * (0.7 + 0.3 * ramp)
  colours = {0: rng.uniform(20, 90, 3), 1: np.array([225., 180, 150]) +
             rng.uniform(-30, 20, 3)}
  image = np.broadcast_to(background, (size, size, 3)).copy()
  for k, colour in colours.items():
    image[labels == k] = colour
  image += rng.normal(0, 12, image.shape)
  return np.clip(image, 0, 255).astype(np.uint8)


def write_ints(path: pathlib.Path, rows: np.ndarray) -> None:
  path.parent.mkdir(parents=True, exist_ok=True)
  path.write_text(''.join(' '.join(map(str, row)) + ' \n' for row in rows))


def write_face(root: pathlib.Path, name: str, rng: np.random.Generator,
               size: int = 250, num_superpixels: int = 180) -> None:
  """The four files of one face, in the official folders and formats."""
  person = name.rsplit('_', 1)[0]
  folders = {key: root / folder
             for key, (folder, _) in part_labels.FOLDERS.items()}
  superpixels = voronoi_superpixels(rng, size, num_superpixels)
  sp_labels = superpixel_majority(synthetic_labels(rng, size), superpixels)
  labels = sp_labels[superpixels]
  image_path = folders['images'] / person / f'{name}.jpg'
  image_path.parent.mkdir(parents=True, exist_ok=True)
  Image.fromarray(synthetic_image(rng, labels)).save(image_path, quality=90)
  folders['label_images'].mkdir(parents=True, exist_ok=True)
  Image.fromarray(LABEL_COLOURS[labels]).save(
      folders['label_images'] / f'{name}.ppm')
  write_ints(folders['superpixels'] / person / f'{name}.dat', superpixels)
  write_ints(folders['superpixel_labels'] / person / f'{name}.dat',
             np.concatenate([[len(sp_labels)], sp_labels])[:, None])


def write_fixture(root: str | pathlib.Path, counts: dict[str, int] = COUNTS,
                  seed: int = 0) -> pathlib.Path:
  """Writes the fixture into `root` (created); returns it."""
  root = pathlib.Path(root)
  root.mkdir(parents=True, exist_ok=True)
  rng = np.random.default_rng(seed)
  for split, count in counts.items():
    lines = []
    for i in range(count):
      # Two faces per person, numbered 1 and 2, as in LFW.
      person, number = f'Fixture_{split.capitalize()}_{i // 2:02d}', 1 + i % 2
      write_face(root, f'{person}_{number:04d}', rng)
      lines.append(f'{person} {number}\n')
    (root / part_labels.LIST_FILES[split]).write_text(''.join(lines))
  return root


_OUT = flags.DEFINE_string('out', None, 'Folder to write the fixture to.',
                           required=True)


def main(argv):
  del argv
  print(f'Wrote {write_fixture(_OUT.value)}')


if __name__ == '__main__':
  app.run(main)
