"""Multi-label tagging data: Bibtex and Bookmarks (paper Sec. 5.1, Table 1).

Splits, as the DVN authors made them: the Mulan train file is permuted with
numpy seed 0; its first 95% are 'train', the last 5% 'val'; 'trainval' is
the whole train file and 'test' the Mulan test file. Bibtex (Mulan's
4880 / 2515 split, 1836 binary features, 159 labels) is embedded in the
package (`data/bibtex.npz`, written by `python -m
dvn_jax.datasets.make_embedded_bibtex`), so it needs no download.

Bookmarks (87,856 examples, 2150 features, 208 labels) ships from Mulan as
one file, `bookmarks.arff` with `bookmarks.xml`; SPEN's split files, which
the paper used, are no longer online. `load_bookmarks` permutes the rows
with seed 0 and takes the first 60,000 as the train file (SPEN's size) and
the remaining 27,856 as test (for a smaller file, the same fractions).

`zscore` standardises features with the mean and std of the training split
(+1e-6), as the authors' code does.
"""

from __future__ import annotations

import dataclasses
import os
import zipfile

import numpy as np

from dvn_jax.datasets import arff
from dvn_jax.errors import DataError

EMBEDDED_BIBTEX = os.path.join(os.path.dirname(__file__), 'data', 'bibtex.npz')
VAL_FRACTION = 0.05
BOOKMARKS_TRAIN_FRACTION = 60_000 / 87_856


@dataclasses.dataclass(frozen=True)
class MultiLabelSplit:
  """Features (N, D) float32 and labels (N, L) uint8 in {0, 1}."""
  features: np.ndarray
  labels: np.ndarray

  def __len__(self) -> int:
    return len(self.labels)


# ------------------------------------------------------- sparse storage ----


def to_csr(dense: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
  """(indptr, column indices) of the non-zero entries of a 0/1 matrix."""
  rows, columns = np.nonzero(dense)
  indptr = np.searchsorted(rows, np.arange(len(dense) + 1)).astype(np.int32)
  dtype = np.uint16 if dense.shape[1] < 2**16 else np.int32
  return indptr, columns.astype(dtype)


def from_csr(indptr: np.ndarray, indices: np.ndarray, width: int,
             dtype=np.float32) -> np.ndarray:
  dense = np.zeros((len(indptr) - 1, width), dtype)
  rows = np.repeat(np.arange(len(indptr) - 1), np.diff(indptr))
  dense[rows, indices.astype(np.int64)] = 1
  return dense


def save_embedded(path: str, splits: dict[str, arff.MultiLabelArrays]) -> None:
  """Writes binary train/test splits as compressed CSR arrays."""
  arrays = {}
  for name, split in splits.items():
    if not np.isin(split.features, (0.0, 1.0)).all():
      raise DataError(f'{name}: the embedded format holds binary features only')
    arrays[f'{name}_x_indptr'], arrays[f'{name}_x_indices'] = to_csr(
        split.features)
    arrays[f'{name}_y_indptr'], arrays[f'{name}_y_indices'] = to_csr(
        split.labels)
  first = next(iter(splits.values()))
  arrays['feature_names'] = np.array(first.feature_names)
  arrays['label_names'] = np.array(first.label_names)
  np.savez_compressed(path, **arrays)


def load_embedded(path: str) -> dict[str, MultiLabelSplit]:
  """The 'train' and 'test' files of a `save_embedded` npz."""
  try:
    with np.load(path) as data:
      num_features, num_labels = len(data['feature_names']), len(
          data['label_names'])
      return {name: MultiLabelSplit(
          from_csr(data[f'{name}_x_indptr'], data[f'{name}_x_indices'],
                   num_features),
          from_csr(data[f'{name}_y_indptr'], data[f'{name}_y_indices'],
                   num_labels, np.uint8)) for name in ('train', 'test')}
  except FileNotFoundError:
    raise DataError(f'data file not found: {path}') from None
  except (OSError, KeyError, ValueError, zipfile.BadZipFile) as e:
    raise DataError(f'{path} is not a multi-label npz ({type(e).__name__}: '
                    f'{e}); regenerate it with make_embedded_bibtex') from None


# --------------------------------------------------------------- splits ----


def permuted_split(data: MultiLabelSplit, first_fraction: float,
                   seed: int = 0) -> tuple[MultiLabelSplit, MultiLabelSplit]:
  """Rows permuted with numpy seed `seed`; the first `first_fraction` of
  them, and the rest."""
  order = np.random.RandomState(seed).permutation(len(data))
  cut = int(round(len(data) * first_fraction))
  pick = lambda idx: MultiLabelSplit(data.features[idx], data.labels[idx])
  return pick(order[:cut]), pick(order[cut:])


def split_train_val(train: MultiLabelSplit, seed: int = 0,
                    val_fraction: float = VAL_FRACTION
                    ) -> tuple[MultiLabelSplit, MultiLabelSplit]:
  """The authors' held-out split: permutation(seed); last 5% is val."""
  return permuted_split(train, 1 - val_fraction, seed)


def make_splits(train_file: MultiLabelSplit, test_file: MultiLabelSplit
                ) -> dict[str, MultiLabelSplit]:
  train, val = split_train_val(train_file)
  return {'train': train, 'val': val, 'trainval': train_file,
          'test': test_file}


def zscore(splits: dict[str, MultiLabelSplit], fit_split: str,
           eps: float = 1e-6) -> dict[str, MultiLabelSplit]:
  """Every split standardised with the mean and std of `fit_split`."""
  features = splits[fit_split].features
  mean, std = features.mean(axis=0), features.std(axis=0) + eps
  return {name: MultiLabelSplit(((s.features - mean) / std).astype(np.float32),
                                s.labels) for name, s in splits.items()}


# -------------------------------------------------------------- loaders ----


def _mulan_files(folder: str, stem: str, suffixes: tuple[str, ...]
                 ) -> list[str]:
  if not os.path.isdir(folder):
    raise DataError(f'data folder not found: {folder}')
  paths = [os.path.join(folder, f'{stem}{suffix}') for suffix in suffixes]
  missing = [p for p in paths if not os.path.isfile(p)]
  if missing:
    raise DataError(f'{missing[0]} not found; the folder must hold Mulan\'s '
                    + ', '.join(os.path.basename(p) for p in paths))
  return paths


def read_bibtex_arff(folder: str) -> dict[str, arff.MultiLabelArrays]:
  """Mulan's bibtex-train.arff, bibtex-test.arff and bibtex.xml."""
  train, test, xml = _mulan_files(folder, 'bibtex', ('-train.arff',
                                                    '-test.arff', '.xml'))
  names = arff.read_label_names(xml)
  return {'train': arff.read_arff(train, names),
          'test': arff.read_arff(test, names)}


def _as_split(arrays: arff.MultiLabelArrays) -> MultiLabelSplit:
  return MultiLabelSplit(arrays.features.astype(np.float32), arrays.labels)


def _prepared_tfds(path: str, dataset: str
                   ) -> dict[str, MultiLabelSplit] | None:
  """The train/test files of a prepared TFDS builder in `path`, or None."""
  from dvn_jax.datasets import mulan_tfds  # pylint: disable=g-import-not-at-top
  if not mulan_tfds.is_prepared(path, dataset):
    return None
  return mulan_tfds.read_prepared(path, dataset)


def load_bibtex(path: str | None = None) -> dict[str, MultiLabelSplit]:
  """Bibtex splits: embedded (path None or ''), a folder with Mulan's ARFF
  files, a TFDS data_dir with `mulan_bibtex` prepared, or an npz."""
  if not path:
    files = load_embedded(EMBEDDED_BIBTEX)
  elif os.path.isdir(path) and not os.path.isfile(
      os.path.join(path, 'bibtex-train.arff')) and (
          tfds_files := _prepared_tfds(path, 'bibtex')):
    files = tfds_files
  elif os.path.isdir(path):
    files = {k: _as_split(v) for k, v in read_bibtex_arff(path).items()}
  else:
    files = load_embedded(path)
  return make_splits(files['train'], files['test'])


def load_bookmarks(path: str) -> dict[str, MultiLabelSplit]:
  """Bookmarks splits from a folder with Mulan's bookmarks.arff + .xml, or
  from a TFDS data_dir with `mulan_bookmarks` prepared."""
  if not path:
    raise DataError('Bookmarks is not embedded: download bookmarks.rar from '
                    'Mulan (mulan.sourceforge.net/datasets-mlc.html), unpack '
                    'it and pass the folder as --config.data.path')
  if os.path.isdir(path) and not os.path.isfile(
      os.path.join(path, 'bookmarks.arff')) and (
          tfds_files := _prepared_tfds(path, 'bookmarks')):
    return make_splits(tfds_files['train'], tfds_files['test'])
  arff_path, xml = _mulan_files(path, 'bookmarks', ('.arff', '.xml'))
  data = _as_split(arff.read_arff(arff_path, arff.read_label_names(xml)))
  return make_splits(*permuted_split(data, BOOKMARKS_TRAIN_FRACTION))


LOADERS = {'bibtex': load_bibtex, 'bookmarks': load_bookmarks}
