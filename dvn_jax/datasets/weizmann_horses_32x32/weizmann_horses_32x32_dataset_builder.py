"""TFDS builder for the 32x32 Weizmann horses with the CHOPPS split (DVN).

Works without TensorFlow: prepare with `file_format="array_record"` and read
with `builder.as_data_source()` (or `dvn_jax.datasets.horses`), e.g.

  builder = Builder(data_dir="~/tensorflow_datasets")
  builder.download_and_prepare(
      download_config=tfds.download.DownloadConfig(manual_dir=MANUAL_DIR),
      file_format="array_record")

TFDS shuffles records on write; each record carries `index`, its position in
the split in CHOPPS order, and `name` ('horse001'..), so order can be restored.
"""

from __future__ import annotations

import pathlib
from collections.abc import Iterator

import numpy as np
import tensorflow_datasets as tfds

from dvn_jax.datasets import horses
from dvn_jax.errors import DataError

_MAT_NAME = "horse.mat"
_SPLIT_LIST_NAME = horses.SPLIT_LIST_PATH.name

_DESCRIPTION = """\
Weizmann horses (Borenstein & Ullman) at 32x32, as prepared by Li, Tarlow &
Zemel (CHOPPS, CVPR 2013) and used by Deep Value Networks (Gygli et al., ICML
2017): 328 RGB images with binary figure/ground masks; CHOPPS split with 160
train, 40 val and 128 test images.
"""

_CITATION = """\
@inproceedings{borenstein2002class,
  title={Class-specific, top-down segmentation},
  author={Borenstein, Eran and Ullman, Shimon},
  booktitle={ECCV}, year={2002}}
@inproceedings{li2013exploring,
  title={Exploring Compositional High Order Pattern Potentials for Structured
         Output Learning},
  author={Li, Yujia and Tarlow, Daniel and Zemel, Richard},
  booktitle={CVPR}, year={2013}}
"""


class Builder(tfds.core.GeneratorBasedBuilder):
  """Weizmann horses 32x32, CHOPPS split."""

  name = "weizmann_horses_32x32"
  VERSION = tfds.core.Version("1.0.0")
  RELEASE_NOTES = {"1.0.0": "Initial release."}
  MANUAL_DOWNLOAD_INSTRUCTIONS = f"""\
  Place in the manual dir:
  * `{_MAT_NAME}` from Yujia Li's CHOPPS `cvpr13_data.zip` (MATLAB file with
    `imgs`, a 328x1 cell of 32x32x3 uint8, and `segs`, 328x1024 uint8).
  * optionally `{_SPLIT_LIST_NAME}` (328 lines, 1-based horse numbers in CHOPPS
    order: lines 1-160 train, 161-200 val, 201-328 test). When absent, the copy
    shipped in dvn_jax/datasets/data/ is used.
  """

  def _info(self) -> tfds.core.DatasetInfo:
    return tfds.core.DatasetInfo(
        builder=self,
        description=_DESCRIPTION,
        features=tfds.features.FeaturesDict({
            "image": tfds.features.Tensor(shape=horses.IMAGE_SHAPE,
                                          dtype=np.uint8),
            "mask": tfds.features.Tensor(shape=horses.MASK_SHAPE,
                                         dtype=np.uint8),
            "name": tfds.features.Text(),
            "index": tfds.features.Tensor(shape=(), dtype=np.int64),
        }),
        homepage="https://www.cs.toronto.edu/~yujiali/",
        citation=_CITATION,
    )

  def _split_generators(self, dl_manager: tfds.download.DownloadManager):
    manual_dir = _manual_dir(dl_manager)
    images, masks = horses.read_horse_mat(manual_dir / _MAT_NAME)
    split_list = manual_dir / _SPLIT_LIST_NAME
    if not split_list.is_file():
      split_list = horses.SPLIT_LIST_PATH
    indices = horses.chopps_split_indices(horses.read_split_list(split_list))
    names = horses.horse_names(len(images))
    return {
        split: self._generate_examples(images[idx], masks[idx], names[idx])
        for split, idx in indices.items()
    }

  def _generate_examples(self, images: np.ndarray, masks: np.ndarray,
                         names: np.ndarray) -> Iterator[tuple[int, dict]]:
    for i, (image, mask, name) in enumerate(zip(images, masks, names)):
      yield i, {"image": image, "mask": mask, "name": str(name), "index": i}


def _manual_dir(dl_manager: tfds.download.DownloadManager) -> pathlib.Path:
  """Returns the manual dir, or raises DataError when horse.mat is not there."""
  try:
    path = pathlib.Path(dl_manager.manual_dir)
  except AssertionError:  # TFDS: the folder is missing or empty.
    path = None
  if path is None or not (path / _MAT_NAME).is_file():
    where = path or getattr(dl_manager, "_manual_dir", "unset")
    raise DataError(f"{_MAT_NAME} not found in the manual dir {where}; put "
                    f"{_MAT_NAME} from Yujia Li's CHOPPS cvpr13_data.zip there "
                    "and pass DownloadConfig(manual_dir=...).")
  return path
