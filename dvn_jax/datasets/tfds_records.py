"""Reading back what this package's TFDS builders wrote (array_record)."""

from __future__ import annotations

import os
import pathlib
from typing import Any

import tensorflow_datasets as tfds

from dvn_jax.errors import DataError


def is_prepared(data_dir: str, builder_class: type) -> bool:
  """Whether `data_dir` holds a prepared copy of the builder's dataset."""
  return (pathlib.Path(data_dir).expanduser() / builder_class.name /
          str(builder_class.VERSION) / 'dataset_info.json').is_file()


def records_in_order(builder: tfds.core.DatasetBuilder,
                     splits: list[str]) -> dict[str, list[dict[str, Any]]]:
  """Each split's records sorted by their 'index' feature (TFDS shuffles
  records on write); one DataError if the files cannot be opened."""
  try:
    sources = builder.as_data_source()
  except (OSError, ValueError, KeyError) as e:
    raise DataError(f'cannot open the array_record files of '
                    f'{builder.data_dir} ({type(e).__name__}); prepare it '
                    "again with file_format='array_record'") from None
  return {split: sorted((sources[split][i] for i in range(len(sources[split]))),
                        key=lambda r: int(r['index']))
          for split in splits}


def open_builder(builder_class: type, data_dir: str):
  return builder_class(data_dir=os.path.expanduser(data_dir))
