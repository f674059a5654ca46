"""Weizmann horses at 32x32 (CHOPPS version and split, as used by DVN).

The data ships inside the package as a small npz (written by
`python -m dvn_jax.datasets.make_embedded`). `load_weizmann_horses` reads it, or
another npz in the same format, or a TFDS data_dir prepared with the
`weizmann_horses_32x32` builder, and validates everything it reads.
"""

from __future__ import annotations

import dataclasses
import os
import pathlib
import zipfile
import zlib
from collections.abc import Mapping

import numpy as np

from dvn_jax.errors import DataError

DATA_DIR = pathlib.Path(__file__).resolve().parent / "data"
EMBEDDED_PATH = DATA_DIR / "weizmann_horses_32x32.npz"
SPLIT_LIST_PATH = DATA_DIR / "chopps_idx_1based.txt"

NUM_IMAGES = 328
IMAGE_SHAPE = (32, 32, 3)
MASK_SHAPE = (32, 32)
# CHOPPS split (Li et al. 2013): positions in the 1-based `idx` permutation.
SPLIT_BOUNDS = {"train": (0, 160), "val": (160, 200), "test": (200, 328)}
NPZ_KEYS = ("images", "masks", "names", "train_idx", "val_idx", "test_idx")
_INDEX_KEYS = ("train_idx", "val_idx", "test_idx")
# What np.load and lazy member reads raise on a damaged or foreign file.
_READ_ERRORS = (OSError, ValueError, EOFError, zipfile.BadZipFile, zlib.error)


@dataclasses.dataclass(frozen=True)
class SegmentationSplit:
  """One split of a binary segmentation dataset."""

  images: np.ndarray  # (N, 32, 32, 3) uint8
  masks: np.ndarray  # (N, 32, 32) uint8 in {0, 1}
  names: np.ndarray  # (N,) str

  def __len__(self) -> int:
    return len(self.names)


def horse_names(n: int = NUM_IMAGES) -> np.ndarray:
  """Returns the names 'horse001'.. for n images, as a unicode array."""
  return np.array([f"horse{i:03d}" for i in range(1, n + 1)])


def read_horse_mat(path: str | os.PathLike) -> tuple[np.ndarray, np.ndarray]:
  """Reads CHOPPS `horse.mat`.

  Args:
    path: the MATLAB v5 file with `imgs` (328x1 cell of 32x32x3 uint8) and
      `segs` (328x1024 uint8, column-major masks).

  Returns:
    images (328, 32, 32, 3) uint8 and masks (328, 32, 32) uint8 in {0, 1}, in
    horse001..horse328 order; mask i is `segs[i].reshape(32, 32).T`.
  """
  import scipy.io  # pylint: disable=g-import-not-at-top  (only needed here)

  path = pathlib.Path(path)
  if not path.is_file():
    raise DataError(f"horse.mat not found at {path}; get it from Yujia Li's "
                    "CHOPPS cvpr13_data.zip and pass its path.")
  try:
    mat = scipy.io.loadmat(path)
  except (*_READ_ERRORS, NotImplementedError, TypeError,
          scipy.io.matlab.MatReadError) as e:
    raise DataError(f"{path} is not a readable MATLAB file "
                    f"({type(e).__name__}); replace it with the original "
                    "horse.mat.") from None
  if "imgs" not in mat or "segs" not in mat:
    raise DataError(f"{path} lacks the variables 'imgs' and 'segs'; is this the "
                    "CHOPPS horse.mat?")
  imgs, segs = mat["imgs"], mat["segs"]
  if imgs.size != NUM_IMAGES or segs.shape != (NUM_IMAGES, 32 * 32):
    raise DataError(f"{path}: expected {NUM_IMAGES} images and segs of shape "
                    f"({NUM_IMAGES}, 1024), got {imgs.size} and {segs.shape}.")
  cells = [np.asarray(c) for c in imgs.reshape(-1)]
  if any(c.shape != IMAGE_SHAPE or c.dtype != np.uint8 for c in cells):
    raise DataError(f"{path}: every cell of 'imgs' must be a 32x32x3 uint8 "
                    "image; replace the file with the original horse.mat.")
  images = np.stack(cells)
  masks = np.ascontiguousarray(
      segs.astype(np.uint8).reshape(NUM_IMAGES, 32, 32).transpose(0, 2, 1))
  _check_masks(masks, str(path))
  return images, masks


def read_split_list(path: str | os.PathLike = SPLIT_LIST_PATH) -> np.ndarray:
  """Reads the CHOPPS permutation (one 1-based horse number a line), 0-based."""
  path = pathlib.Path(path)
  if not path.is_file():
    raise DataError(f"split list not found at {path}; copy "
                    "chopps_idx_1based.txt (328 lines, 1-based horse numbers) "
                    "there.")
  try:
    perm = np.array([int(s) for s in path.read_text().split()], np.int64) - 1
  except (OSError, UnicodeDecodeError, ValueError) as e:
    raise DataError(f"{path} is not a list of integers, one per line "
                    f"({type(e).__name__}); replace it with "
                    "chopps_idx_1based.txt.") from None
  if np.array_equal(np.sort(perm), np.arange(NUM_IMAGES)):
    return perm
  raise DataError(f"{path} must be a permutation of 1..{NUM_IMAGES} (one per "
                  f"line), got {perm.size} numbers; replace it with "
                  "chopps_idx_1based.txt.")


def chopps_split_indices(perm: np.ndarray) -> dict[str, np.ndarray]:
  """Cuts the 0-based CHOPPS permutation into train/val/test row indices."""
  return {name: np.asarray(perm[lo:hi], np.int64)
          for name, (lo, hi) in SPLIT_BOUNDS.items()}


def _check_masks(masks: np.ndarray, source: str) -> None:
  bad = np.setdiff1d(np.unique(masks), [0, 1])
  if bad.size:
    raise DataError(f"{source}: masks must hold only 0 and 1, found value "
                    f"{bad[0]}; binarize them (e.g. mask >= 128) and rewrite "
                    "the file.")


def _check_arrays(images: np.ndarray, masks: np.ndarray, names: np.ndarray,
                  source: str) -> None:
  """Checks shapes, dtypes and mask values of one set of examples."""
  n = images.shape[0] if images.ndim else 0
  expected = (("images", images, (n, *IMAGE_SHAPE), np.uint8),
              ("masks", masks, (n, *MASK_SHAPE), np.uint8))
  for key, arr, shape, dtype in expected:
    if arr.shape != shape or arr.dtype != dtype:
      raise DataError(f"{source}: '{key}' must be {np.dtype(dtype).name} of "
                      f"shape {shape}, got {arr.dtype} {arr.shape}; rewrite "
                      "the file with dvn_jax.datasets.make_embedded.")
  if names.shape != (n,) or names.dtype.kind != "U":
    raise DataError(f"{source}: 'names' must be a unicode str array of shape "
                    f"({n},), got {names.dtype} {names.shape}; rewrite the "
                    "file with dvn_jax.datasets.make_embedded.")
  _check_masks(masks, source)


def _check_indices(indices: Mapping[str, np.ndarray], n: int,
                   source: str) -> None:
  """Checks that split indices are integer, in range and disjoint."""
  seen = np.zeros(n, bool)
  for key, idx in indices.items():
    if idx.ndim != 1 or idx.size == 0 or idx.dtype.kind not in "iu":
      raise DataError(f"{source}: '{key}' must be a non-empty 1-D integer "
                      f"array, got {idx.dtype} {idx.shape}.")
    if idx.min() < 0 or idx.max() >= n:
      raise DataError(f"{source}: '{key}' has indices outside [0, {n}) "
                      f"(min {idx.min()}, max {idx.max()}); the indices must "
                      "be 0-based rows of 'images'.")
    if seen[idx].any() or np.unique(idx).size != idx.size:
      raise DataError(f"{source}: '{key}' repeats rows or overlaps another "
                      "split; train/val/test must be disjoint.")
    seen[idx] = True


def _read_npz(path: pathlib.Path) -> dict[str, np.ndarray]:
  """Reads the NPZ_KEYS arrays of an npz file, without pickle."""
  hint = "write one with python -m dvn_jax.datasets.make_embedded --out=FILE"
  try:
    npz = np.load(path, allow_pickle=False)
  except _READ_ERRORS as e:
    raise DataError(f"{path} is not an npz archive (corrupt, truncated or "
                    f"another format: {type(e).__name__}); {hint}.") from None
  if not isinstance(npz, np.lib.npyio.NpzFile):
    raise DataError(f"{path} is a single .npy array, not an npz archive; "
                    f"{hint}.")
  with npz:
    missing = [k for k in NPZ_KEYS if k not in npz.files]
    if missing:
      raise DataError(f"{path} lacks the key(s) {', '.join(missing)}; {hint}.")
    try:
      return {k: npz[k] for k in NPZ_KEYS}
    except _READ_ERRORS as e:
      raise DataError(f"{path} has a damaged member ({type(e).__name__}; "
                      f"truncated or holding objects); {hint}.") from None


def _splits_from_arrays(arrays: Mapping[str, np.ndarray],
                        source: str) -> dict[str, SegmentationSplit]:
  """Validates npz-format arrays and cuts them into the four splits."""
  images, masks, names = arrays["images"], arrays["masks"], arrays["names"]
  _check_arrays(images, masks, names, source)
  indices = {k: arrays[k] for k in _INDEX_KEYS}
  _check_indices(indices, images.shape[0], source)
  splits = {
      k.removesuffix("_idx"): SegmentationSplit(images[i], masks[i], names[i])
      for k, i in indices.items()
  }
  splits["trainval"] = concatenate(splits["train"], splits["val"])
  return {k: splits[k] for k in ("train", "val", "trainval", "test")}


def concatenate(*splits: SegmentationSplit) -> SegmentationSplit:
  """Concatenates splits in the given order."""
  return SegmentationSplit(
      images=np.concatenate([s.images for s in splits]),
      masks=np.concatenate([s.masks for s in splits]),
      names=np.concatenate([s.names for s in splits]))


def _read_tfds(data_dir: pathlib.Path) -> dict[str, SegmentationSplit]:
  """Reads the prepared `weizmann_horses_32x32` TFDS builder in data_dir."""
  # Imported here so that the embedded path never imports tensorflow_datasets.
  from dvn_jax.datasets.weizmann_horses_32x32 import weizmann_horses_32x32_dataset_builder as wh  # pylint: disable=g-import-not-at-top,line-too-long

  # Checked before building, which would log a warning for a missing folder.
  version_dir = data_dir / wh.Builder.name / str(wh.Builder.VERSION)
  if not (version_dir / "dataset_info.json").is_file():
    raise DataError(
        f"{data_dir} holds no prepared {version_dir.relative_to(data_dir)}; "
        "prepare it with Builder(data_dir=...).download_and_prepare(...) or "
        "pass path=None for the embedded copy.")
  builder = wh.Builder(data_dir=os.fspath(data_dir))
  try:
    sources = builder.as_data_source()
  except (*_READ_ERRORS, KeyError) as e:
    raise DataError(f"cannot open the array_record files of {builder.data_dir}"
                    f" ({type(e).__name__}); prepare it again with "
                    "file_format='array_record'.") from None
  splits = {}
  for split in SPLIT_BOUNDS:
    if split not in sources:
      raise DataError(f"{builder.data_dir} lacks the split '{split}'; prepare "
                      "the builder again.")
    source = sources[split]
    records = [source[i] for i in range(len(source))]
    splits[split] = _split_from_records(records,
                                        f"{builder.data_dir}[{split}]")
  splits["trainval"] = concatenate(splits["train"], splits["val"])
  return {k: splits[k] for k in ("train", "val", "trainval", "test")}


def _split_from_records(records: list[Mapping[str, object]],
                        source: str) -> SegmentationSplit:
  """Orders TFDS records by their `index` feature and stacks them."""
  if not records:
    raise DataError(f"{source} is empty; prepare the builder again.")
  order = np.argsort([int(r["index"]) for r in records])
  got = np.sort([int(r["index"]) for r in records])
  if not np.array_equal(got, np.arange(len(records))):
    raise DataError(f"{source}: the 'index' feature is not 0..{len(records)-1};"
                    " prepare the builder again.")
  records = [records[i] for i in order]
  names = np.array([_as_str(r["name"]) for r in records])
  images = np.stack([np.asarray(r["image"]) for r in records])
  masks = np.stack([np.asarray(r["mask"]) for r in records])
  _check_arrays(images, masks, names, source)
  return SegmentationSplit(images, masks, names)


def _as_str(value: object) -> str:
  return value.decode() if isinstance(value, bytes) else str(value)


def load_weizmann_horses(
    path: str | os.PathLike | None = None) -> dict[str, SegmentationSplit]:
  """Loads the 32x32 Weizmann horses with the CHOPPS split used by DVN.

  Args:
    path: None for the npz shipped in the package; a path to an npz in the same
      format; or a TFDS data_dir holding the prepared `weizmann_horses_32x32`
      builder (see dvn_jax/datasets/weizmann_horses_32x32).

  Returns:
    Splits 'train' (160), 'val' (40), 'trainval' (200: train then val) and
    'test' (128), in CHOPPS order.

  Raises:
    DataError: the file or folder is missing, unreadable or malformed.
  """
  path = EMBEDDED_PATH if path is None else pathlib.Path(path).expanduser()
  if path.is_dir():
    return _read_tfds(path)
  if not path.is_file():
    hint = ("run python -m dvn_jax.datasets.make_embedded to write it"
            if path == EMBEDDED_PATH else
            "pass an npz file, a prepared TFDS data_dir, or None for the "
            "embedded copy")
    raise DataError(f"Weizmann horses data not found at {path}; {hint}.")
  return _splits_from_arrays(_read_npz(path), str(path))
