"""TFDS builders `mulan_bibtex` and `mulan_bookmarks` (no TensorFlow needed).

They read Mulan's sparse ARFF files from the manual dir and write
array_record files; `multilabel.load_bibtex(data_dir)` and
`load_bookmarks(data_dir)` read them back. Mulan distributes the data as RAR
archives, which TFDS cannot unpack, so download and unpack by hand:

  * Bibtex: http://sourceforge.net/projects/mulan/files/datasets/bibtex.rar
    -> bibtex-train.arff, bibtex-test.arff, bibtex.xml
  * Bookmarks: http://sourceforge.net/projects/mulan/files/datasets/bookmarks.rar
    -> bookmarks.arff, bookmarks.xml

then

  from dvn_jax.datasets.mulan_tfds import BibtexBuilder
  builder = BibtexBuilder(data_dir='~/tensorflow_datasets')
  builder.download_and_prepare(
      download_config=tfds.download.DownloadConfig(manual_dir=UNPACKED_DIR),
      file_format='array_record')

Splits: 'train' (Mulan's train file; for Bookmarks the first 60,000 rows of
a seed-0 permutation) and 'test'. TFDS shuffles records on write; `index`
restores the order. The loaders derive 'val' (5%) and 'trainval' as for the
ARFF files.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import numpy as np
import tensorflow_datasets as tfds

from dvn_jax.datasets import multilabel
from dvn_jax.datasets import tfds_records
from dvn_jax.errors import DataError

_CITATION = """\
@inproceedings{katakis2008multilabel,
  title={Multilabel Text Classification for Automated Tag Suggestion},
  author={Katakis, Ioannis and Tsoumakas, Grigorios and Vlahavas, Ioannis},
  booktitle={ECML/PKDD Discovery Challenge}, year={2008}}"""


class _MulanBuilder(tfds.core.GeneratorBasedBuilder):
  """Base: binary features and labels of one Mulan dataset."""

  dataset = ''
  num_features = 0
  num_labels = 0
  VERSION = tfds.core.Version('1.0.0')
  RELEASE_NOTES = {'1.0.0': 'Initial release.'}

  def _info(self) -> tfds.core.DatasetInfo:
    return tfds.core.DatasetInfo(
        builder=self,
        description=f'Mulan {self.dataset} multi-label data, as used by SPEN '
                    'and Deep Value Networks.',
        features=tfds.features.FeaturesDict({
            'features': tfds.features.Tensor(shape=(self.num_features,),
                                             dtype=np.uint8),
            'labels': tfds.features.Tensor(shape=(self.num_labels,),
                                           dtype=np.uint8),
            'index': tfds.features.Tensor(shape=(), dtype=np.int64),
        }),
        homepage='http://mulan.sourceforge.net/datasets-mlc.html',
        citation=_CITATION,
    )

  def _read_files(self, folder: str) -> dict[str, multilabel.MultiLabelSplit]:
    """The train file ('trainval' of the loader) and the test file."""
    splits = multilabel.LOADERS[self.dataset](folder)
    return {'train': splits['trainval'], 'test': splits['test']}

  def _split_generators(self, dl_manager: tfds.download.DownloadManager):
    try:
      folder = os.fspath(dl_manager.manual_dir)
    except AssertionError:  # TFDS: the folder is missing or empty
      folder = os.fspath(getattr(dl_manager, '_manual_dir', '') or '')
    splits = self._read_files(folder)
    for split in splits.values():
      if split.features.shape[1] != self.num_features or (
          split.labels.shape[1] != self.num_labels):
        raise DataError(
            f'{folder}: {split.features.shape[1]} features and '
            f'{split.labels.shape[1]} labels; {self.dataset} has '
            f'{self.num_features} and {self.num_labels}')
    return {name: self._generate_examples(splits[name])
            for name in ('train', 'test')}

  def _generate_examples(self, split: multilabel.MultiLabelSplit
                         ) -> Iterator[tuple[int, dict]]:
    for i, (x, y) in enumerate(zip(split.features, split.labels)):
      yield i, {'features': x.astype(np.uint8), 'labels': y, 'index': i}


class BibtexBuilder(_MulanBuilder):
  """Bibtex: Mulan's train (4880) and test (2515) files."""

  name = 'mulan_bibtex'
  dataset = 'bibtex'
  num_features = 1836
  num_labels = 159
  MANUAL_DOWNLOAD_INSTRUCTIONS = (
      'Unpack http://sourceforge.net/projects/mulan/files/datasets/bibtex.rar '
      'into the manual dir: bibtex-train.arff, bibtex-test.arff, bibtex.xml.')


class BookmarksBuilder(_MulanBuilder):
  """Bookmarks: Mulan's one file, split 60,000 / 27,856 (seed 0)."""

  name = 'mulan_bookmarks'
  dataset = 'bookmarks'
  num_features = 2150
  num_labels = 208
  MANUAL_DOWNLOAD_INSTRUCTIONS = (
      'Unpack http://sourceforge.net/projects/mulan/files/datasets/'
      'bookmarks.rar into the manual dir: bookmarks.arff, bookmarks.xml.')


BUILDERS = {'bibtex': BibtexBuilder, 'bookmarks': BookmarksBuilder}


def is_prepared(data_dir: str, dataset: str) -> bool:
  return tfds_records.is_prepared(data_dir, BUILDERS[dataset])


def read_prepared(data_dir: str, dataset: str
                  ) -> dict[str, multilabel.MultiLabelSplit]:
  """The 'train' and 'test' files of a prepared builder, in file order."""
  records = tfds_records.records_in_order(
      tfds_records.open_builder(BUILDERS[dataset], data_dir), ['train', 'test'])
  return {split: multilabel.MultiLabelSplit(
      np.stack([r['features'] for r in rows]).astype(np.float32),
      np.stack([r['labels'] for r in rows]).astype(np.uint8))
          for split, rows in records.items()}
