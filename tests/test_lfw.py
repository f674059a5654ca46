"""3-class face segmentation (LFW Part Labels): simplex, oracle, metric,
data files, TFDS builder and the configs end to end on the fixture."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from PIL import Image

from dvn_jax import evaluate
from dvn_jax import inference
from dvn_jax import oracles
from dvn_jax import tuples
from dvn_jax.datasets import make_part_labels_fixture as fixture
from dvn_jax.datasets import part_labels
from dvn_jax.errors import DataError
from subprocess_runs import run_main



@pytest.fixture(scope='module')
def lfw_dir(tmp_path_factory):
  return fixture.write_fixture(tmp_path_factory.mktemp('lfw'))


# ------------------------------------------------------------ simplex ----


def project_by_bisection(v: np.ndarray) -> np.ndarray:
  """Reference: the theta with sum max(v - theta, 0) = 1, by bisection."""
  lo, hi = v.min() - 1.0, v.max()
  for _ in range(200):
    theta = (lo + hi) / 2
    lo, hi = (theta, hi) if np.maximum(v - theta, 0).sum() > 1 else (lo, theta)
  return np.maximum(v - (lo + hi) / 2, 0)


@pytest.mark.parametrize('v, expected', [
    ([0., 0, 0], [1 / 3, 1 / 3, 1 / 3]),
    ([2., 0, 0], [1., 0, 0]),
    ([.5, .5, .5], [1 / 3, 1 / 3, 1 / 3]),
    ([.2, .3, .5], [.2, .3, .5]),          # already on the simplex
    ([1., .5, -1], [.75, .25, 0.]),        # rho = 2, theta = 0.25
    ([-1., 3, -2], [0., 1, 0]),
])
def test_simplex_projection_hand_cases(v, expected):
  np.testing.assert_allclose(inference.project_simplex(jnp.array(v)),
                             expected, atol=1e-6)


def test_simplex_projection_acts_on_the_last_axis_only():
  # (B, H, W, K) with H != W != K: a wrong axis cannot pass.
  v = np.random.default_rng(0).normal(size=(2, 5, 4, 3)) * 2
  p = np.asarray(inference.project_simplex(jnp.asarray(v, jnp.float32)))
  np.testing.assert_allclose(p.sum(axis=-1), 1.0, atol=1e-5)
  assert p.min() >= 0
  reference = np.apply_along_axis(project_by_bisection, -1, v)
  np.testing.assert_allclose(p, reference, atol=1e-5)
  np.testing.assert_allclose(inference.project_simplex(p), p, atol=1e-6)


def test_inference_starts_at_the_projection_of_zero():
  box = inference.AscentSpec(projection='box')
  simplex = inference.AscentSpec(projection='simplex')
  np.testing.assert_array_equal(inference.start_point((2, 3), box), 0.0)
  np.testing.assert_allclose(inference.start_point((2, 4, 4, 3), simplex),
                             1 / 3)


def test_joint_inference_stays_on_the_simplex():
  w = jax.random.normal(jax.random.key(0), (24, 24, 3))
  logit_fn = lambda x, y: jnp.sum(y * w, axis=(1, 2, 3)) + 0 * x.sum()
  spec = inference.AscentSpec(num_steps=5, step_size=3.0,
                              projection='simplex')
  masks, _ = inference.infer_full_image(
      logit_fn, jnp.zeros((2, 32, 32, 3)), crop_size=24, num_crops=4,
      combine='joint', num_classes=3, spec=spec)
  np.testing.assert_allclose(masks.sum(-1), 1.0, atol=1e-5)
  assert float(masks.min()) >= 0


# ------------------------------------------------------------- oracle ----


def test_pixel_accuracy_oracle_hand_cases():
  truth = jax.nn.one_hot(jnp.array([[[0, 1, 2], [2, 2, 1]]]), 3)  # 2x3, K=3
  wrong_one = jax.nn.one_hot(jnp.array([[[0, 1, 2], [2, 0, 1]]]), 3)
  np.testing.assert_allclose(oracles.pixel_accuracy(truth, truth), [1.0])
  np.testing.assert_allclose(oracles.pixel_accuracy(wrong_one, truth), [5 / 6])
  uniform = jnp.full(truth.shape, 1 / 3)
  np.testing.assert_allclose(oracles.pixel_accuracy(uniform, truth), [1 / 3],
                             rtol=1e-6)


def test_pixel_accuracy_oracle_reduces_the_right_axes():
  rng = np.random.default_rng(1)
  y = rng.dirichlet(np.ones(4), size=(3, 2, 5))       # (B, H, W, K)
  y_star = np.eye(4)[rng.integers(0, 4, (3, 2, 5))]
  expected = [np.mean([[sum(min(y[b, i, j, k], y_star[b, i, j, k])
                            for k in range(4)) for j in range(5)]
                       for i in range(2)]) for b in range(3)]
  np.testing.assert_allclose(oracles.pixel_accuracy(y, y_star), expected,
                             rtol=1e-5)


def test_stratified_multiclass_outputs_carry_their_exact_value():
  truth = jax.nn.one_hot(jax.random.randint(jax.random.key(0), (16, 6, 5),
                                            0, 3), 3)
  spec = tuples.TupleSpec(oracle='pixel_accuracy', temperature=0.5)
  y = tuples.stratified_outputs(jax.random.key(1), truth, spec)
  np.testing.assert_array_equal(y.sum(-1), 1.0)     # one-hot
  values = oracles.pixel_accuracy(y, truth)
  agree = (y.argmax(-1) == truth.argmax(-1)).mean(axis=(1, 2))
  np.testing.assert_allclose(values, agree, rtol=1e-6)
  assert float(values.min()) < 1.0 and float(values.std()) > 0
  sharp = tuples.stratified_outputs(
      jax.random.key(1), truth, tuples.TupleSpec(oracle='pixel_accuracy',
                                                 temperature=1e-3))
  assert float(oracles.pixel_accuracy(sharp, truth).mean()) > 0.99


# ------------------------------------------------------------- metric ----


def test_superpixel_accuracy_hand_case():
  # Image A (4x4): superpixels 0 (left half), 1 (top right), 2 (bottom
  # right); id 3 is labelled but has no pixel, so it is left out.
  sp_a = np.array([[0, 0, 1, 1], [0, 0, 1, 1], [0, 0, 2, 2], [0, 0, 2, 2]])
  pred_a = np.array([[1, 1, 0, 0], [1, 2, 0, 2], [2, 2, 1, 2], [1, 0, 1, 2]])
  # votes: sp0 -> class 1 (4 of 8) ; sp1 -> 0 vs 2 tie (2, 2) -> 0 ;
  #        sp2 -> 1 vs 2 tie (2, 2) -> 1.
  labels_a = np.array([1, 2, 1, 0])       # sp0 right, sp1 wrong, sp2 right
  sp_b = np.zeros((4, 4), int)
  pred_b = np.full((4, 4), 2)
  labels_b = np.array([2, -1, -1, -1])    # one superpixel, right
  metrics = evaluate.superpixel_accuracy(
      np.stack([pred_a, pred_b]), np.stack([sp_a, sp_b]),
      np.stack([labels_a, labels_b]), num_classes=3)
  assert metrics['superpixel_accuracy'] == pytest.approx(100 * 3 / 4)
  assert metrics['mean_superpixel_accuracy'] == pytest.approx(
      100 * (2 / 3 + 1) / 2)


def test_full_size_classes_resizes_probabilities_then_takes_argmax():
  soft = np.zeros((1, 2, 2, 3), np.float32)
  soft[0, 0, 0, 0] = soft[0, 0, 1, 1] = soft[0, 1, :, 2] = 1
  classes = evaluate.full_size_classes(soft, (4, 4))
  np.testing.assert_array_equal(classes[0], [[0, 0, 1, 1], [0, 0, 1, 1],
                                             [2, 2, 2, 2], [2, 2, 2, 2]])


# --------------------------------------------------------------- data ----


def test_fixture_reads_back_in_list_order(lfw_dir):
  splits = part_labels.load_part_labels(str(lfw_dir))
  counts = {name: len(split) for name, split in splits.items()}
  assert counts == {'train': 8, 'val': 4, 'test': 4, 'trainval': 12}
  train = splits['train']
  assert list(train.names[:2]) == ['Fixture_Train_00_0001',
                                   'Fixture_Train_00_0002']
  assert train.images.shape == (8, 32, 32, 3) and train.images.dtype == np.uint8
  assert train.masks.shape == (8, 32, 32) and set(np.unique(train.masks)) == {
      0, 1, 2}
  assert train.superpixels.shape == (8, 250, 250)
  # The superpixel labels painted onto the map give the label image back.
  files = part_labels.PartLabelsFiles.in_folder(lfw_dir)
  name = train.names[3]
  painted = train.superpixel_labels[3][train.superpixels[3]]
  np.testing.assert_array_equal(painted, part_labels.read_label_image(
      part_labels.find_file(files.label_images, name, '.ppm')))
  np.testing.assert_array_equal(
      train.masks[3], part_labels.downsample_labels(painted, 32))


def test_official_text_formats(tmp_path):
  (tmp_path / 'gt.dat').write_text('3\n2\n0\n1\n')
  np.testing.assert_array_equal(
      part_labels.read_superpixel_labels(tmp_path / 'gt.dat'), [2, 0, 1])
  (tmp_path / 'sp.dat').write_text('0 0 1 \n2 2 1 \n')
  np.testing.assert_array_equal(part_labels.read_superpixels(
      tmp_path / 'sp.dat'), [[0, 0, 1], [2, 2, 1]])
  (tmp_path / 'list.txt').write_text('Aaron_Eckhart 1\nA_B_C 12\n')
  assert part_labels.read_list(tmp_path / 'list.txt') == [
      'Aaron_Eckhart_0001', 'A_B_C_0012']


@pytest.mark.parametrize('file, text, message', [
    ('gt.dat', '4\n2\n0\n1\n', 'first line says \\[4\\] superpixels but 3'),
    ('gt.dat', '2\n2\n5\n', 'labels must be 0 \\(hair\\)'),
    ('sp.dat', '0 0 1\n2 2\n', 'rows of different lengths'),
    ('sp.dat', '0 0 1\n2 x 1\n', 'sp.dat:2: not a line of integers'),
    ('list.txt', 'Aaron_Eckhart 1\nAaron_Eckhart one\n', 'list.txt:2: expected'),
])
def test_malformed_files_name_the_file(tmp_path, file, text, message):
  (tmp_path / file).write_text(text)
  reader = {'gt.dat': part_labels.read_superpixel_labels,
            'sp.dat': part_labels.read_superpixels,
            'list.txt': part_labels.read_list}[file]
  with pytest.raises(DataError, match=message):
    reader(tmp_path / file)


def test_missing_and_corrupt_files_are_clear_errors(lfw_dir, tmp_path):
  with pytest.raises(DataError, match='not embedded'):
    part_labels.load_part_labels('')
  with pytest.raises(DataError, match='folder not found'):
    part_labels.load_part_labels(str(tmp_path / 'nowhere'))
  (tmp_path / 'parts_train.txt').write_text('A 1\n')
  with pytest.raises(DataError, match='lacks parts_validation.txt'):
    part_labels.PartLabelsFiles.in_folder(tmp_path)
  files = part_labels.PartLabelsFiles.in_folder(lfw_dir)
  with pytest.raises(DataError, match='has no Nobody_0001.jpg'):
    part_labels.find_file(files.images, 'Nobody_0001', '.jpg')
  bad = tmp_path / 'bad.jpg'
  bad.write_bytes(b'not a jpeg')
  with pytest.raises(DataError, match='bad.jpg is not a readable image'):
    part_labels.read_image(bad)


def test_tfds_builder_matches_the_raw_files(lfw_dir, tmp_path):
  import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top
  from dvn_jax.datasets import part_labels_tfds  # pylint: disable=g-import-not-at-top
  data_dir = tmp_path / 'tfds'
  part_labels_tfds.PartLabelsBuilder(data_dir=data_dir).download_and_prepare(
      download_config=tfds.download.DownloadConfig(manual_dir=lfw_dir),
      file_format='array_record')
  from_tfds = part_labels.load_part_labels(str(data_dir))
  from_files = part_labels.load_part_labels(str(lfw_dir))
  for name in ('train', 'val', 'test', 'trainval'):
    for field in ('images', 'masks', 'superpixels', 'superpixel_labels',
                  'names'):
      np.testing.assert_array_equal(getattr(from_tfds[name], field),
                                    getattr(from_files[name], field))


def test_without_a_manual_dir_the_builder_downloads(lfw_dir, tmp_path,
                                                   monkeypatch):
  import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top
  from dvn_jax.datasets import part_labels_tfds  # pylint: disable=g-import-not-at-top
  urls = part_labels_tfds.download_urls()
  assert urls['val'] == ('http://vis-www.cs.umass.edu/lfw/part_labels/'
                         'parts_validation.txt')
  assert urls['images'] == 'http://vis-www.cs.umass.edu/lfw/lfw-funneled.tgz'
  # What download_and_extract returns: list files as files, each archive as
  # a folder holding the official top folder.
  extracted = {split: lfw_dir / name
               for split, name in part_labels.LIST_FILES.items()}
  extracted.update({key: lfw_dir for key in part_labels.FOLDERS})
  requested = {}

  def fake_download_and_extract(self, url_or_urls):
    del self
    requested.update(url_or_urls)
    return extracted

  monkeypatch.setattr(tfds.download.DownloadManager, 'download_and_extract',
                      fake_download_and_extract)
  data_dir = tmp_path / 'tfds'
  part_labels_tfds.PartLabelsBuilder(data_dir=data_dir).download_and_prepare(
      file_format='array_record')
  assert requested == urls
  splits = part_labels.load_part_labels(str(data_dir))
  assert len(splits['test']) == 4 and splits['test'].names[0] == (
      'Fixture_Test_00_0001')


# ------------------------------------------------------ end to end ------


@pytest.mark.parametrize('config', ['configs/lfw.py:smoke',
                                    'configs/lfw_fcn.py:smoke'])
def test_lfw_configs_train_and_evaluate_on_the_fixture(lfw_dir, tmp_path,
                                                       config):
  args = (f'--config={config}', f'--config.data.path={lfw_dir}',
          f'--workdir={tmp_path}')
  result = run_main(*args)
  assert result.returncode == 0, result.stderr[-2000:]
  assert 'val: superpixel accuracy ' in result.stdout
  result = run_main(*args, '--mode=evaluate', '--split=test')
  assert result.returncode == 0, result.stderr[-2000:]
  assert 'test: superpixel accuracy ' in result.stdout
  # The trained model segments a user's image into an RGB class map.
  face = next((lfw_dir / 'lfw_funneled').glob('*/*.jpg'))
  result = run_main(f'--config={config}', f'--workdir={tmp_path}',
                    f'--output_dir={tmp_path / "masks"}', face,
                    module='dvn_jax.predict')
  assert result.returncode == 0, result.stderr[-2000:]
  mask = np.asarray(Image.open(tmp_path / 'masks' / f'{face.stem}_mask.png'))
  assert mask.shape == (250, 250, 3)
  assert set(np.unique(mask.reshape(-1, 3), axis=0).sum(axis=1)) == {255}


def test_lfw_without_data_and_wrong_classes_are_one_line(tmp_path):
  result = run_main('--config=configs/lfw.py:smoke', f'--workdir={tmp_path}')
  assert result.returncode == 1 and 'Traceback' not in result.stderr
  assert result.stderr.strip().splitlines()[-1].startswith(
      'error: LFW Part Labels is not embedded')
  result = run_main('--config=configs/lfw.py:smoke', '--config.num_classes=1',
                    f'--workdir={tmp_path}')
  assert result.returncode == 1
  assert 'num_classes is 1 but lfw_part_labels masks have 3' in result.stderr
