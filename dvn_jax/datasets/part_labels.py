"""LFW Part Labels (Kae et al. 2013): face / hair / background segmentation.

2927 funneled 250x250 LFW faces labelled on superpixels, with official
train / validation / test lists (1500 / 500 / 927 in the usual split; the
lists' own lengths are what counts). The data is not embedded: download
from http://vis-www.cs.umass.edu/lfw/part_labels/ and unpack into one folder

  lfw_funneled/<Name>/<Name>_0001.jpg              lfw-funneled.tgz
  parts_lfw_funneled_gt_images/<Name>_0001.ppm     parts_lfw_funneled_gt_images.tgz
  parts_lfw_funneled_superpixels_mat/<Name>/<Name>_0001.dat
                                                   parts_lfw_funneled_superpixels_mat.tgz
  parts_lfw_funneled_gt/<Name>/<Name>_0001.dat     parts_lfw_funneled_gt.tgz
  parts_train.txt  parts_validation.txt  parts_test.txt

(the images come from http://vis-www.cs.umass.edu/lfw/lfw-funneled.tgz),
or let the TFDS builder in `part_labels_tfds.py` download them.

File formats (official):
- list files: one face a line, `<Name> <number>`, e.g. `Aaron_Eckhart 1`
  for Aaron_Eckhart_0001;
- label images: PPM, red = hair, green = face, blue = background;
- superpixel maps: text, one image row a line of space-separated 0-based
  superpixel ids;
- superpixel labels: text, the number of superpixels S on the first line,
  then S lines with the class of superpixel 0, 1, ..., S-1
  (0 = hair, 1 = face, 2 = background: the label images' channel order).

For the value network the images are resized to 32x32 (paper Sec. 5.3)
and the label images to 32x32 class maps (per-class area average, then the
majority class); superpixel maps and labels stay full size for scoring.
"""

from __future__ import annotations

import dataclasses
import os
import pathlib
from collections.abc import Mapping

import numpy as np
from PIL import Image

from dvn_jax.datasets import images
from dvn_jax.errors import DataError

CLASSES = ('hair', 'face', 'background')
NUM_CLASSES = len(CLASSES)
IMAGE_SIZE = 32
HOMEPAGE = 'http://vis-www.cs.umass.edu/lfw/part_labels/'
# Split name -> official list file.
LIST_FILES = {'train': 'parts_train.txt', 'val': 'parts_validation.txt',
              'test': 'parts_test.txt'}
# Folder of each component -> the official archive that holds it.
FOLDERS = {
    'images': ('lfw_funneled', 'http://vis-www.cs.umass.edu/lfw/lfw-funneled.tgz'),
    'label_images': ('parts_lfw_funneled_gt_images',
                     HOMEPAGE + 'parts_lfw_funneled_gt_images.tgz'),
    'superpixels': ('parts_lfw_funneled_superpixels_mat',
                    HOMEPAGE + 'parts_lfw_funneled_superpixels_mat.tgz'),
    'superpixel_labels': ('parts_lfw_funneled_gt',
                          HOMEPAGE + 'parts_lfw_funneled_gt.tgz'),
}


@dataclasses.dataclass(frozen=True)
class PartLabelsSplit:
  """One split: network-size inputs and targets, full-size superpixels."""

  images: np.ndarray             # (N, 32, 32, 3) uint8
  masks: np.ndarray              # (N, 32, 32) uint8 class ids
  superpixels: np.ndarray        # (N, H, W) int16 superpixel ids
  superpixel_labels: np.ndarray  # (N, S_max) int8 classes, -1 past S
  names: np.ndarray              # (N,) str, e.g. 'Aaron_Eckhart_0001'

  def __len__(self) -> int:
    return len(self.names)


@dataclasses.dataclass(frozen=True)
class PartLabelsFiles:
  """Where the unpacked official files are."""

  lists: Mapping[str, pathlib.Path]   # split -> list file
  images: pathlib.Path
  label_images: pathlib.Path
  superpixels: pathlib.Path
  superpixel_labels: pathlib.Path

  @classmethod
  def in_folder(cls, root: str | os.PathLike) -> PartLabelsFiles:
    """The official files unpacked side by side in `root`."""
    root = pathlib.Path(root).expanduser()
    if not root.is_dir():
      raise DataError(f'LFW Part Labels folder not found: {root}; download '
                      f'the files listed at {HOMEPAGE} and unpack them there')
    lists = {split: root / name for split, name in LIST_FILES.items()}
    missing = [name for name in lists.values() if not name.is_file()]
    folders = {key: root / name for key, (name, _) in FOLDERS.items()}
    missing += [path for path in folders.values() if not path.is_dir()]
    if missing:
      urls = {name: url for name, url in FOLDERS.values()}
      what = ', '.join(f'{p.name} (from {urls.get(p.name, HOMEPAGE + p.name)})'
                       for p in missing)
      raise DataError(f'{root} lacks {what}; download and unpack it there')
    return cls(lists=lists, **folders)


def read_list(path: pathlib.Path) -> list[str]:
  """Face names ('Aaron_Eckhart_0001') of an official list file, in order."""
  try:
    lines = path.read_text().splitlines()
  except (OSError, UnicodeDecodeError) as e:
    raise DataError(f'cannot read the list file {path} '
                    f'({type(e).__name__}); download it again') from None
  names = []
  for number, line in enumerate(lines, start=1):
    fields = line.split()
    if not fields:
      continue
    if len(fields) != 2 or not fields[1].isdigit():
      raise DataError(f'{path}:{number}: expected "<Name> <number>", got '
                      f'{line.strip()[:60]!r}')
    names.append(f'{fields[0]}_{int(fields[1]):04d}')
  if not names:
    raise DataError(f'{path} lists no faces')
  return names


def _person(name: str) -> str:
  return name.rsplit('_', 1)[0]


def find_file(folder: pathlib.Path, name: str, suffix: str) -> pathlib.Path:
  """`folder/<Person>/<name><suffix>` or `folder/<name><suffix>`."""
  for path in (folder / _person(name) / f'{name}{suffix}',
               folder / f'{name}{suffix}'):
    if path.is_file():
      return path
  raise DataError(f'{folder} has no {name}{suffix} (looked in '
                  f'{folder / _person(name)} and {folder}); is the archive '
                  'fully unpacked?')


def _open_image(path: pathlib.Path) -> Image.Image:
  """The file as an 8-bit RGB image (`images.read_rgb`: any mode,
  faithfully)."""
  return Image.fromarray(images.read_rgb(path)[0])


def read_image(path: pathlib.Path, size: int = IMAGE_SIZE) -> np.ndarray:
  """An RGB image resized (antialiased bilinear) to (size, size, 3) uint8."""
  image = _open_image(path)
  return np.asarray(image.resize((size, size), Image.BILINEAR), np.uint8)


def read_label_image(path: pathlib.Path) -> np.ndarray:
  """Class ids (H, W) uint8 of a label image: the strongest channel, R =
  hair (0), G = face (1), B = background (2); black pixels are background."""
  rgb = np.asarray(_open_image(path))
  labels = rgb.argmax(axis=-1).astype(np.uint8)
  labels[rgb.max(axis=-1) == 0] = CLASSES.index('background')
  return labels


def _read_ints(path: pathlib.Path) -> tuple[list[str], np.ndarray]:
  try:
    lines = path.read_text().splitlines()
  except (OSError, UnicodeDecodeError) as e:
    raise DataError(f'cannot read {path} ({type(e).__name__}); replace it '
                    'with the original file') from None
  lines = [line for line in lines if line.strip()]
  try:
    values = np.array(' '.join(lines).split(), np.int64)
  except ValueError:
    bad = next(i for i, line in enumerate(lines, 1)
               if not all(t.lstrip('-').isdigit() for t in line.split()))
    raise DataError(f'{path}:{bad}: not a line of integers: '
                    f'{lines[bad - 1].strip()[:60]!r}') from None
  return lines, values


def read_superpixels(path: pathlib.Path) -> np.ndarray:
  """A superpixel map (H, W) int16 of 0-based ids."""
  lines, values = _read_ints(path)
  widths = {len(line.split()) for line in lines}
  if len(widths) != 1:
    raise DataError(f'{path}: rows of different lengths {sorted(widths)}; '
                    'the file is damaged')
  if values.min(initial=0) < 0 or values.max(initial=0) > np.iinfo(np.int16).max:
    raise DataError(f'{path}: superpixel ids must be in 0..32767')
  return values.reshape(len(lines), widths.pop()).astype(np.int16)


def read_superpixel_labels(path: pathlib.Path) -> np.ndarray:
  """Classes (S,) int8 of the superpixels 0..S-1 (first line: S)."""
  _, values = _read_ints(path)
  if len(values) == 0 or values[0] != len(values) - 1:
    raise DataError(f'{path}: the first line says {values[:1].tolist()} '
                    f'superpixels but {max(len(values) - 1, 0)} labels follow')
  labels = values[1:]
  if labels.min(initial=0) < 0 or labels.max(initial=0) >= NUM_CLASSES:
    raise DataError(f'{path}: labels must be 0 (hair), 1 (face) or '
                    f'2 (background), found {sorted(set(labels.tolist()))}')
  return labels.astype(np.int8)


def downsample_labels(labels: np.ndarray, size: int,
                      num_classes: int = NUM_CLASSES) -> np.ndarray:
  """(H, W) class ids -> (size, size): per-class area average, argmax."""
  shares = [np.asarray(Image.fromarray((labels == k).astype(np.float32))
                       .resize((size, size), Image.BOX))
            for k in range(num_classes)]
  return np.stack(shares, axis=-1).argmax(axis=-1).astype(np.uint8)


def read_face(files: PartLabelsFiles, name: str, size: int = IMAGE_SIZE
              ) -> dict[str, np.ndarray]:
  """One face: image and mask at `size`, full-size superpixels and labels."""
  label_path = find_file(files.label_images, name, '.ppm')
  labels = read_label_image(label_path)
  sp_path = find_file(files.superpixels, name, '.dat')
  superpixels = read_superpixels(sp_path)
  sp_labels_path = find_file(files.superpixel_labels, name, '.dat')
  sp_labels = read_superpixel_labels(sp_labels_path)
  if superpixels.shape != labels.shape:
    raise DataError(f'{sp_path} is {superpixels.shape[0]}x'
                    f'{superpixels.shape[1]} but the label image '
                    f'{label_path} is {labels.shape[0]}x{labels.shape[1]}')
  if superpixels.max() >= len(sp_labels):
    raise DataError(f'{sp_path} uses superpixel {superpixels.max()} but '
                    f'{sp_labels_path} labels only {len(sp_labels)}')
  return {'image': read_image(find_file(files.images, name, '.jpg'), size),
          'mask': downsample_labels(labels, size),
          'superpixels': superpixels, 'superpixel_labels': sp_labels}


def stack_faces(faces: list[Mapping[str, np.ndarray]],
                names: list[str]) -> PartLabelsSplit:
  """A split from per-face arrays (superpixel labels padded with -1)."""
  shapes = {face['superpixels'].shape for face in faces}
  if len(shapes) != 1:
    raise DataError(f'superpixel maps of different sizes {sorted(shapes)}; '
                    'all faces must have the same size')
  width = max(len(face['superpixel_labels']) for face in faces)
  sp_labels = np.full((len(faces), width), -1, np.int8)
  for row, face in zip(sp_labels, faces):
    row[:len(face['superpixel_labels'])] = face['superpixel_labels']
  return PartLabelsSplit(
      images=np.stack([face['image'] for face in faces]),
      masks=np.stack([face['mask'] for face in faces]),
      superpixels=np.stack([face['superpixels'] for face in faces]),
      superpixel_labels=sp_labels, names=np.array(names))


def read_split(files: PartLabelsFiles, split: str,
               size: int = IMAGE_SIZE) -> PartLabelsSplit:
  """All faces of an official list."""
  names = read_list(files.lists[split])
  return stack_faces([read_face(files, name, size) for name in names], names)


def concatenate(*splits: PartLabelsSplit) -> PartLabelsSplit:
  width = max(split.superpixel_labels.shape[1] for split in splits)
  padded = [np.pad(s.superpixel_labels,
                   ((0, 0), (0, width - s.superpixel_labels.shape[1])),
                   constant_values=-1) for s in splits]
  return PartLabelsSplit(
      images=np.concatenate([s.images for s in splits]),
      masks=np.concatenate([s.masks for s in splits]),
      superpixels=np.concatenate([s.superpixels for s in splits]),
      superpixel_labels=np.concatenate(padded),
      names=np.concatenate([s.names for s in splits]))


def with_trainval(splits: dict[str, PartLabelsSplit]
                  ) -> dict[str, PartLabelsSplit]:
  """Adds 'trainval' = train + val (the paper's final training set)."""
  return {**splits, 'trainval': concatenate(splits['train'], splits['val'])}


def load_part_labels(path: str) -> dict[str, PartLabelsSplit]:
  """Splits 'train', 'val', 'test', 'trainval' of LFW Part Labels.

  Args:
    path: a folder with the unpacked official files (module docstring), or a
      TFDS data_dir where the `lfw_part_labels` builder was prepared.
  """
  if not path:
    raise DataError('LFW Part Labels is not embedded (its licence and size); '
                    f'download it (see {HOMEPAGE}, or docs/lfw.md) and pass '
                    '--config.data.path=FOLDER')
  from dvn_jax.datasets import part_labels_tfds  # pylint: disable=g-import-not-at-top
  if part_labels_tfds.is_prepared(path):
    return with_trainval(part_labels_tfds.read_prepared(path))
  files = PartLabelsFiles.in_folder(path)
  return with_trainval({split: read_split(files, split) for split in LIST_FILES})
