"""Writes the embedded 32x32 Weizmann horses npz from the raw CHOPPS files.

  python -m dvn_jax.datasets.make_embedded --raw_data=DIR

Reads `weizmann_horses/chopps_32x32/horse.mat` and
`weizmann_horses/splits/chopps_idx_1based.txt` under --raw_data, writes
dvn_jax/datasets/data/weizmann_horses_32x32.npz (and a copy of the split list
next to it), then checks the result against the derived reference npz and the
SEAL .npy split files when they exist.
"""

from __future__ import annotations

import argparse
import pathlib
import sys
from collections.abc import Sequence

import numpy as np

from dvn_jax.datasets import horses
from dvn_jax.errors import DataError

_HORSES = "weizmann_horses"
_MAT = f"{_HORSES}/chopps_32x32/horse.mat"
_SPLIT_LIST = f"{_HORSES}/splits/chopps_idx_1based.txt"
_REFERENCE = f"{_HORSES}/weizmann_horse_32x32_chopps.npz"
_SEAL_NPY = f"{_HORSES}/chopps_32x32/weizmann_horse_{{}}.npy"


def build_arrays(mat_path: pathlib.Path,
                 split_path: pathlib.Path) -> dict[str, np.ndarray]:
  """Returns the arrays of the embedded npz, built from the raw files."""
  images, masks = horses.read_horse_mat(mat_path)
  perm = horses.read_split_list(split_path)
  indices = horses.chopps_split_indices(perm)
  return {
      "images": images,
      "masks": masks,
      "names": horses.horse_names(len(images)),
      **{f"{k}_idx": v for k, v in indices.items()},
  }


def check_reference(arrays: dict[str, np.ndarray],
                    reference: pathlib.Path) -> None:
  """Checks the arrays against the derived reference npz."""
  with np.load(reference, allow_pickle=False) as ref:
    for key in horses.NPZ_KEYS:
      if key in ref.files and not np.array_equal(arrays[key], ref[key]):
        raise DataError(f"'{key}' differs from the reference {reference}; "
                        "check horse.mat and the split list.")


def check_seal_npy(arrays: dict[str, np.ndarray], shared: pathlib.Path) -> None:
  """Checks counts (and content) against the SEAL weizmann_horse_*.npy files.

  These files are pickled dicts; they come from the trusted shared data folder.
  """
  for split in horses.SPLIT_BOUNDS:
    path = shared / _SEAL_NPY.format(split)
    if not path.is_file():
      continue
    seal = np.load(path, allow_pickle=True).item()
    idx = arrays[f"{split}_idx"]
    if len(seal["images"]) != len(idx) or len(seal["masks"]) != len(idx):
      raise DataError(f"{path} holds {len(seal['images'])} examples but the "
                      f"'{split}' split has {len(idx)}.")
    if not (np.array_equal(np.stack(seal["images"]), arrays["images"][idx]) and
            np.array_equal(np.stack(seal["masks"]), arrays["masks"][idx])):
      raise DataError(f"{path} differs from the '{split}' split built from "
                      "horse.mat; check the split list.")


def main(argv: Sequence[str] | None = None) -> int:
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--raw_data", required=True,
                      help="folder holding weizmann_horses/ (raw CHOPPS files)")
  parser.add_argument("--out", default=str(horses.EMBEDDED_PATH),
                      help="npz to write")
  args = parser.parse_args(argv)
  shared = pathlib.Path(args.raw_data).expanduser()
  out = pathlib.Path(args.out)
  try:
    arrays = build_arrays(shared / _MAT, shared / _SPLIT_LIST)
    out.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(out, **arrays)
    split_copy = out.parent / horses.SPLIT_LIST_PATH.name
    perm = np.concatenate([arrays[f"{k}_idx"] for k in horses.SPLIT_BOUNDS])
    split_copy.write_text("".join(f"{i + 1}\n" for i in perm))
    # Read back through the loader, so the shipped file passes its checks.
    splits = horses.load_weizmann_horses(out)
    checked = []
    if (shared / _REFERENCE).is_file():
      check_reference(arrays, shared / _REFERENCE)
      checked.append("reference npz")
    if any((shared / _SEAL_NPY.format(s)).is_file()
           for s in horses.SPLIT_BOUNDS):
      check_seal_npy(arrays, shared)
      checked.append("SEAL .npy splits")
  except DataError as e:
    print(f"make_embedded: error: {e}", file=sys.stderr)
    return 1
  counts = ", ".join(f"{k} {len(v)}" for k, v in splits.items())
  print(f"wrote {out} ({out.stat().st_size / 1024:.0f} KiB; {counts}); "
        f"matches: {', '.join(checked) or 'nothing to check against'}")
  return 0


if __name__ == "__main__":
  sys.exit(main())
