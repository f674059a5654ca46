"""Writes the embedded Bibtex npz from Mulan's ARFF files.

  python -m dvn_jax.datasets.make_embedded_bibtex --raw_data=DIR

Reads bibtex/bibtex-train.arff, bibtex-test.arff and bibtex.xml under
--raw_data and writes dvn_jax/datasets/data/bibtex.npz (features and
labels as compressed sparse rows), then reads it back and checks it equals
the ARFF data.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

import numpy as np

from dvn_jax.datasets import multilabel
from dvn_jax.errors import DataError


def main(argv: Sequence[str] | None = None) -> int:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument('--raw_data', required=True,
                      help='folder holding bibtex/ (Mulan ARFF files)')
  parser.add_argument('--output', default=multilabel.EMBEDDED_BIBTEX)
  args = parser.parse_args(argv)
  try:
    files = multilabel.read_bibtex_arff(os.path.join(args.raw_data,
                                                     'bibtex'))
    multilabel.save_embedded(args.output, files)
    back = multilabel.load_embedded(args.output)
  except DataError as e:
    print(f'error: {e}', file=sys.stderr)
    return 1
  for name, split in files.items():
    assert np.array_equal(back[name].features, split.features), name
    assert np.array_equal(back[name].labels, split.labels), name
    print(f'{name}: {split.features.shape[0]} examples, '
          f'{split.features.shape[1]} features, {split.labels.shape[1]} labels')
  print(f'wrote {args.output} ({os.path.getsize(args.output) / 1024:.0f} KiB)')
  return 0


if __name__ == '__main__':
  sys.exit(main())
