"""Tests for dvn_jax.datasets: embedded horses npz, loader and TFDS builder."""

from __future__ import annotations

import pathlib

import numpy as np
import pytest

from dvn_jax.datasets import horses
from dvn_jax.datasets import make_embedded
from dvn_jax.errors import DataError

REPO_ROOT = pathlib.Path(__file__).resolve().parent.parent
SHARED = REPO_ROOT.parent / "shared" / "data"
HORSES_DIR = SHARED / "weizmann_horses"
REFERENCE_NPZ = HORSES_DIR / "weizmann_horse_32x32_chopps.npz"
MANUAL_DIR = HORSES_DIR / "chopps_32x32"
COUNTS = {"train": 160, "val": 40, "trainval": 200, "test": 128}

needs_shared = pytest.mark.skipif(
    not HORSES_DIR.is_dir(), reason=f"shared data absent: {HORSES_DIR}")


@pytest.fixture(scope="module")
def embedded() -> dict[str, horses.SegmentationSplit]:
  return horses.load_weizmann_horses()


@pytest.fixture(scope="module")
def raw_arrays() -> dict[str, np.ndarray]:
  with np.load(horses.EMBEDDED_PATH, allow_pickle=False) as npz:
    return {k: npz[k] for k in npz.files}


@pytest.fixture(scope="module")
def tfds_dir(tmp_path_factory) -> pathlib.Path:
  """A TFDS data_dir with the builder prepared from the shared raw files."""
  if not MANUAL_DIR.is_dir():
    pytest.skip(f"shared data absent: {MANUAL_DIR}")
  import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top
  from dvn_jax.datasets.weizmann_horses_32x32 import Builder  # pylint: disable=g-import-not-at-top

  data_dir = tmp_path_factory.mktemp("tfds")
  Builder(data_dir=data_dir).download_and_prepare(
      download_config=tfds.download.DownloadConfig(manual_dir=MANUAL_DIR),
      file_format="array_record")
  return data_dir


def assert_same_splits(got: dict[str, horses.SegmentationSplit],
                       want: dict[str, horses.SegmentationSplit]) -> None:
  assert list(got) == list(want)
  for name in want:
    np.testing.assert_array_equal(got[name].images, want[name].images, name)
    np.testing.assert_array_equal(got[name].masks, want[name].masks, name)
    np.testing.assert_array_equal(got[name].names, want[name].names, name)


def test_embedded_file_is_small():
  assert horses.EMBEDDED_PATH.is_file()
  assert horses.EMBEDDED_PATH.stat().st_size < 1.1e6


def test_embedded_counts_shapes_dtypes(embedded):
  assert {k: len(v) for k, v in embedded.items()} == COUNTS
  for split in embedded.values():
    n = len(split.names)
    assert split.images.shape == (n, 32, 32, 3)
    assert split.images.dtype == np.uint8
    assert split.masks.shape == (n, 32, 32)
    assert split.masks.dtype == np.uint8
    assert split.names.dtype.kind == "U"


def test_embedded_splits_disjoint_and_cover_all(embedded):
  parts = [set(embedded[k].names) for k in ("train", "val", "test")]
  assert sum(map(len, parts)) == 328
  assert set.union(*parts) == set(horses.horse_names())
  np.testing.assert_array_equal(
      embedded["trainval"].names,
      np.concatenate([embedded["train"].names, embedded["val"].names]))
  # CHOPPS order, not sorted: the first train image is horse023.
  assert embedded["train"].names[0] == "horse023"


def test_embedded_masks_binary_and_plausible(embedded):
  for split in embedded.values():
    assert set(np.unique(split.masks)) == {0, 1}
  fg = embedded["trainval"].masks.mean(axis=(1, 2))
  assert 0.1 < fg.mean() < 0.5 and fg.min() > 0


def test_embedded_raw_file_format(raw_arrays):
  assert set(horses.NPZ_KEYS) <= set(raw_arrays)
  np.testing.assert_array_equal(raw_arrays["names"], horses.horse_names())
  for key in ("train_idx", "val_idx", "test_idx"):
    assert raw_arrays[key].dtype == np.int64


@needs_shared
def test_embedded_equals_reference(raw_arrays):
  with np.load(REFERENCE_NPZ, allow_pickle=False) as ref:
    for key in horses.NPZ_KEYS:
      np.testing.assert_array_equal(raw_arrays[key], ref[key], key)
    ref_splits = horses.load_weizmann_horses(REFERENCE_NPZ)
  assert_same_splits(ref_splits, horses.load_weizmann_horses())


@needs_shared
def test_make_embedded_reproduces_shipped_file(tmp_path, raw_arrays, capsys):
  out = tmp_path / "horses.npz"
  assert make_embedded.main([f"--raw_data={SHARED}", f"--out={out}"]) == 0
  assert "matches: reference npz, SEAL .npy splits" in capsys.readouterr().out
  with np.load(out, allow_pickle=False) as npz:
    assert sorted(npz.files) == sorted(raw_arrays)
    for key in npz.files:
      np.testing.assert_array_equal(npz[key], raw_arrays[key], key)
  assert ((tmp_path / "chopps_idx_1based.txt").read_text() ==
          horses.SPLIT_LIST_PATH.read_text())


def test_make_embedded_reports_missing_data(tmp_path, capsys):
  assert make_embedded.main([f"--raw_data={tmp_path}",
                             f"--out={tmp_path / 'x.npz'}"]) == 1
  err = capsys.readouterr().err.strip()
  assert "horse.mat not found" in err and "\n" not in err
  assert not (tmp_path / "x.npz").exists()


def test_tfds_builder_matches_embedded(tfds_dir, embedded):
  assert_same_splits(horses.load_weizmann_horses(tfds_dir), embedded)
  assert_same_splits(horses.load_weizmann_horses(str(tfds_dir)), embedded)


def test_tfds_data_source_features(tfds_dir):
  from dvn_jax.datasets.weizmann_horses_32x32 import Builder  # pylint: disable=g-import-not-at-top

  builder = Builder(data_dir=tfds_dir)
  assert builder.name == "weizmann_horses_32x32"
  assert str(builder.version) == "1.0.0"
  sources = builder.as_data_source()
  assert {k: len(v) for k, v in sources.items()} == {
      "train": 160, "val": 40, "test": 128}
  record = sources["val"][0]
  assert record["image"].shape == (32, 32, 3)
  assert record["image"].dtype == np.uint8
  assert record["mask"].shape == (32, 32)
  indices = sorted(int(sources["val"][i]["index"]) for i in range(40))
  assert indices == list(range(40))


def test_tfds_builder_missing_manual_files(tmp_path):
  import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top
  from dvn_jax.datasets.weizmann_horses_32x32 import Builder  # pylint: disable=g-import-not-at-top

  builder = Builder(data_dir=tmp_path / "tfds")
  config = tfds.download.DownloadConfig(manual_dir=tmp_path / "nothing_here")
  with pytest.raises(DataError, match="horse.mat not found") as info:
    builder.download_and_prepare(download_config=config,
                                 file_format="array_record")
  assert "\n" not in str(info.value)


@needs_shared
def test_tfds_builder_bad_split_list(tmp_path):
  import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top
  from dvn_jax.datasets.weizmann_horses_32x32 import Builder  # pylint: disable=g-import-not-at-top

  manual = tmp_path / "manual"
  manual.mkdir()
  (manual / "horse.mat").symlink_to(MANUAL_DIR / "horse.mat")
  (manual / "chopps_idx_1based.txt").write_text("1\n2\n2\n")
  config = tfds.download.DownloadConfig(manual_dir=manual)
  with pytest.raises(DataError, match="permutation"):
    Builder(data_dir=tmp_path / "tfds").download_and_prepare(
        download_config=config, file_format="array_record")


def _write_npz(path: pathlib.Path, arrays: dict[str, np.ndarray],
               **changes) -> pathlib.Path:
  arrays = {**arrays, **changes}
  np.savez_compressed(path, **{k: v for k, v in arrays.items() if v is not None})
  return path


def _bad_inputs():
  """(case id, function tmp_path, arrays -> path, expected message part)."""

  def masks_with(value):
    def change(arrays):
      masks = arrays["masks"].copy()
      masks[3, 5, 7] = value
      return {"masks": masks}
    return change

  def npz(change):
    return lambda tmp, arrays: _write_npz(tmp / "bad.npz", arrays,
                                          **change(arrays))

  def truncated(tmp, arrays):
    data = _write_npz(tmp / "full.npz", arrays).read_bytes()
    (tmp / "cut.npz").write_bytes(data[:len(data) // 2])
    return tmp / "cut.npz"

  def damaged_member(tmp, arrays):
    data = bytearray(_write_npz(tmp / "full.npz", arrays).read_bytes())
    data[len(data) // 3:len(data) // 3 + 2000] = bytes(2000)
    (tmp / "damaged.npz").write_bytes(data)
    return tmp / "damaged.npz"

  def text_file(tmp, _):
    (tmp / "horses.npz").write_text("not an archive\n")
    return tmp / "horses.npz"

  def npy_file(tmp, arrays):
    np.save(tmp / "images.npy", arrays["images"])
    return tmp / "images.npy"

  def empty_dir(tmp, _):
    (tmp / "tfds").mkdir()
    return tmp / "tfds"

  return [
      ("missing", lambda tmp, _: tmp / "nope.npz", "not found"),
      ("empty_dir", empty_dir, "no prepared"),
      ("text", text_file, "not an npz"),
      ("truncated", truncated, "not an npz"),
      ("damaged_member", damaged_member, "damaged member"),
      ("npy", npy_file, "single .npy"),
      ("missing_key", npz(lambda a: {"masks": None}), "lacks the key(s) masks"),
      ("mask_value_2", npz(masks_with(2)), "found value 2"),
      ("mask_shape", npz(lambda a: {"masks": a["masks"][:, :16]}), "'masks'"),
      ("image_dtype",
       npz(lambda a: {"images": a["images"].astype(np.float32)}), "'images'"),
      ("names_count", npz(lambda a: {"names": a["names"][:10]}), "'names'"),
      ("idx_out_of_range",
       npz(lambda a: {"test_idx": a["test_idx"] + 200}), "outside [0, 328)"),
      ("idx_negative",
       npz(lambda a: {"val_idx": a["val_idx"] - 400}), "outside [0, 328)"),
      ("idx_float",
       npz(lambda a: {"val_idx": a["val_idx"].astype(float)}), "integer"),
      ("idx_overlap",
       npz(lambda a: {"test_idx": np.concatenate([a["test_idx"],
                                                  a["train_idx"][:1]])}),
       "overlaps"),
  ]


@pytest.mark.parametrize("make_path,message",
                         [case[1:] for case in _bad_inputs()],
                         ids=[case[0] for case in _bad_inputs()])
def test_bad_input_raises_one_line_data_error(tmp_path, raw_arrays,
                                              make_path, message):
  path = make_path(tmp_path, raw_arrays)
  with pytest.raises(DataError) as info:
    horses.load_weizmann_horses(path)
  text = str(info.value)
  assert message in text
  assert "\n" not in text and str(path) in text


def test_read_split_list_rejects_non_integers(tmp_path):
  path = tmp_path / "idx.txt"
  path.write_text("1\ntwo\n")
  with pytest.raises(DataError, match="not a list of integers"):
    horses.read_split_list(path)


def test_read_horse_mat_rejects_foreign_file(tmp_path):
  path = tmp_path / "horse.mat"
  path.write_bytes(b"\x00" * 300)
  with pytest.raises(DataError, match="horse.mat"):
    horses.read_horse_mat(path)
