"""TFDS builder `lfw_part_labels` (no TensorFlow needed).

Reads the official LFW Part Labels files (see `part_labels.py` for the
layout and formats) from a manual dir where they are unpacked side by side,
or downloads the official archives from vis-www.cs.umass.edu when there is
no manual dir; writes array_record files that `part_labels.load_part_labels`
reads back:

  import tensorflow_datasets as tfds
  from dvn_jax.datasets.part_labels_tfds import PartLabelsBuilder
  builder = PartLabelsBuilder(data_dir='~/tensorflow_datasets')
  builder.download_and_prepare(file_format='array_record')   # downloads
  # or, with the files already unpacked in FOLDER:
  builder.download_and_prepare(
      download_config=tfds.download.DownloadConfig(manual_dir=FOLDER),
      file_format='array_record')

Splits 'train', 'validation', 'test' from the official lists. Each record:
the face's name and list position ('index'; TFDS shuffles on write), the
32x32 image and class map the value network uses, and the full-size
superpixel map (zlib-compressed) and superpixel labels used for scoring.
"""

from __future__ import annotations

import os
import pathlib
from collections.abc import Iterator, Mapping

import numpy as np
import tensorflow_datasets as tfds

from dvn_jax.datasets import part_labels
from dvn_jax.datasets import tfds_records

_CITATION = """\
@inproceedings{kae2013augmenting,
  title={Augmenting {CRFs} with {Boltzmann} Machine Shape Priors for Image
         Labeling},
  author={Kae, Andrew and Sohn, Kihyuk and Lee, Honglak and
          Learned-Miller, Erik},
  booktitle={CVPR}, year={2013}}"""
# TFDS split name -> part_labels split name.
TFDS_SPLITS = {'train': 'train', 'validation': 'val', 'test': 'test'}


def download_urls() -> dict[str, str]:
  """Key -> official URL of every file the builder needs."""
  urls = {split: part_labels.HOMEPAGE + name
          for split, name in part_labels.LIST_FILES.items()}
  urls.update({key: url for key, (_, url) in part_labels.FOLDERS.items()})
  return urls


def files_from_downloads(paths: Mapping[str, os.PathLike | str]
                         ) -> part_labels.PartLabelsFiles:
  """PartLabelsFiles from `download_and_extract(download_urls())`'s result.

  Each archive unpacks into its own folder, holding the official top folder
  (e.g. lfw_funneled/), which is used when present.
  """
  folders = {}
  for key, (name, _) in part_labels.FOLDERS.items():
    folder = pathlib.Path(paths[key])
    folders[key] = folder / name if (folder / name).is_dir() else folder
  return part_labels.PartLabelsFiles(
      lists={split: pathlib.Path(paths[split])
             for split in part_labels.LIST_FILES}, **folders)


def _manual_dir(dl_manager: tfds.download.DownloadManager) -> str:
  try:
    return os.fspath(dl_manager.manual_dir)
  except AssertionError:  # TFDS: the folder is missing or empty
    return os.fspath(getattr(dl_manager, '_manual_dir', '') or '')


class PartLabelsBuilder(tfds.core.GeneratorBasedBuilder):
  """LFW Part Labels: 2927 faces, hair / face / background on superpixels."""

  name = 'lfw_part_labels'
  VERSION = tfds.core.Version('1.0.0')
  RELEASE_NOTES = {'1.0.0': 'Initial release.'}
  image_size = part_labels.IMAGE_SIZE
  MANUAL_DOWNLOAD_INSTRUCTIONS = (
      'Optional: without a manual dir the official files are downloaded. To '
      'use local copies, unpack lfw-funneled.tgz, '
      'parts_lfw_funneled_gt_images.tgz, '
      'parts_lfw_funneled_superpixels_mat.tgz and parts_lfw_funneled_gt.tgz '
      'and put parts_train.txt, parts_validation.txt and parts_test.txt '
      f'beside them (all from {part_labels.HOMEPAGE}).')

  def _info(self) -> tfds.core.DatasetInfo:
    size = self.image_size
    return tfds.core.DatasetInfo(
        builder=self,
        description='LFW Part Labels (Kae et al. 2013) at the input size of '
                    'Deep Value Networks, with full-size superpixels.',
        features=tfds.features.FeaturesDict({
            'name': tfds.features.Text(),
            'index': tfds.features.Tensor(shape=(), dtype=np.int64),
            'image': tfds.features.Tensor(shape=(size, size, 3),
                                          dtype=np.uint8),
            'mask': tfds.features.Tensor(shape=(size, size), dtype=np.uint8),
            'superpixels': tfds.features.Tensor(
                shape=(None, None), dtype=np.int16, encoding='zlib'),
            'superpixel_labels': tfds.features.Tensor(shape=(None,),
                                                      dtype=np.int8),
        }),
        homepage=part_labels.HOMEPAGE,
        citation=_CITATION,
    )

  def _split_generators(self, dl_manager: tfds.download.DownloadManager):
    manual = _manual_dir(dl_manager)
    if manual and pathlib.Path(manual).is_dir():
      files = part_labels.PartLabelsFiles.in_folder(manual)
    else:
      files = files_from_downloads(dl_manager.download_and_extract(
          download_urls()))
    return {tfds_name: self._generate_examples(files, split)
            for tfds_name, split in TFDS_SPLITS.items()}

  def _generate_examples(self, files: part_labels.PartLabelsFiles,
                         split: str) -> Iterator[tuple[str, dict]]:
    for index, name in enumerate(part_labels.read_list(files.lists[split])):
      face = part_labels.read_face(files, name, self.image_size)
      yield name, {'name': name, 'index': index, **face}


def is_prepared(data_dir: str) -> bool:
  return tfds_records.is_prepared(data_dir, PartLabelsBuilder)


def read_prepared(data_dir: str) -> dict[str, part_labels.PartLabelsSplit]:
  """Splits 'train', 'val', 'test' of a prepared builder, in list order."""
  records = tfds_records.records_in_order(
      tfds_records.open_builder(PartLabelsBuilder, data_dir), list(TFDS_SPLITS))
  splits = {}
  for tfds_name, split in TFDS_SPLITS.items():
    names = [r['name'].decode() if isinstance(r['name'], bytes) else
             str(r['name']) for r in records[tfds_name]]
    splits[split] = part_labels.stack_faces(records[tfds_name], names)
  return splits
