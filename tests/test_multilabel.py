"""Multi-label data (Mulan ARFF, Bibtex, Bookmarks), models and metrics."""

import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import networks
from dvn_jax import evaluate
from dvn_jax import models
from dvn_jax.datasets import arff
from dvn_jax.datasets import multilabel
from dvn_jax.errors import DataError
from subprocess_runs import REPO, run_main



def random_arrays(num_examples, num_features, num_labels, seed=0):
  rng = np.random.RandomState(seed)
  features = (rng.rand(num_examples, num_features) < 0.2).astype(np.float32)
  labels = (rng.rand(num_examples, num_labels) < 0.3).astype(np.uint8)
  labels[np.arange(num_examples), rng.randint(num_labels, size=num_examples)] = 1
  return arff.MultiLabelArrays(
      features, labels, tuple(f'word{i}' for i in range(num_features)),
      tuple(f'TAG_{i}' for i in range(num_labels)))


def write_mulan(folder, stem, arrays):
  arff.write_sparse_arff(str(folder / f'{stem}.arff'), stem, arrays)
  arff.write_label_xml(str(folder / f'{stem}.xml'), arrays.label_names)


def test_sparse_arff_round_trip(tmp_path):
  arrays = random_arrays(30, 12, 5)
  write_mulan(tmp_path, 'toy', arrays)
  text = (tmp_path / 'toy.arff').read_text()
  assert '@data\n{' in text   # Mulan's sparse rows
  back = arff.read_arff(str(tmp_path / 'toy.arff'),
                        arff.read_label_names(str(tmp_path / 'toy.xml')))
  np.testing.assert_array_equal(back.features, arrays.features)
  np.testing.assert_array_equal(back.labels, arrays.labels)
  assert back.label_names == arrays.label_names


def test_labels_are_found_by_name_wherever_they_are(tmp_path):
  (tmp_path / 'mixed.arff').write_text(
      '@relation mixed\n@attribute TAG_a {0,1}\n@attribute w {0,1}\n'
      '@attribute TAG_b {0,1}\n@data\n{0 1,1 1}\n1,0,1\n{}\n')
  arff.write_label_xml(str(tmp_path / 'mixed.xml'), ('TAG_a', 'TAG_b'))
  data = arff.read_arff(str(tmp_path / 'mixed.arff'),
                        arff.read_label_names(str(tmp_path / 'mixed.xml')))
  np.testing.assert_array_equal(data.features, [[1], [0], [0]])
  np.testing.assert_array_equal(data.labels, [[1, 0], [1, 1], [0, 0]])


@pytest.mark.parametrize('row, message', [
    ('{0 1,9 1}', ':7: attribute index 9 out of range'),
    ('{0 1,1}', ':7: sparse entry'),
    ('{0 1,1 x}', ":7: value 'x' is not a number"),
    ('{0 1', ':7: sparse row does not end'),
    ('1,0', ':7: 2 values, the header declares 3'),
])
def test_malformed_arff_names_the_line(tmp_path, row, message):
  path = tmp_path / 'bad.arff'
  path.write_text('@relation bad\n@attribute w {0,1}\n@attribute v {0,1}\n'
                  '@attribute TAG_a {0,1}\n@data\n{0 1}\n' + row + '\n')
  with pytest.raises(DataError, match=message):
    arff.read_arff(str(path), ('TAG_a',))


def test_missing_and_wrong_files_are_reported(tmp_path):
  with pytest.raises(DataError, match='data file not found'):
    arff.read_arff(str(tmp_path / 'none.arff'), ('TAG_a',))
  (tmp_path / 'no_data.arff').write_text('@relation x\n@attribute w {0,1}\n')
  with pytest.raises(DataError, match='no @data section'):
    arff.read_arff(str(tmp_path / 'no_data.arff'), ('w',))
  (tmp_path / 'x.xml').write_text('not xml <')
  with pytest.raises(DataError, match='not a Mulan label file'):
    arff.read_label_names(str(tmp_path / 'x.xml'))
  write_mulan(tmp_path, 'toy', random_arrays(4, 3, 2))
  with pytest.raises(DataError, match='labels of the XML file are not attributes'):
    arff.read_arff(str(tmp_path / 'toy.arff'), ('TAG_0', 'TAG_unknown'))


def test_embedded_bibtex_has_the_mulan_split():
  splits = multilabel.load_bibtex()
  sizes = {k: v.features.shape for k, v in splits.items()}
  assert sizes == {'train': (4636, 1836), 'val': (244, 1836),
                   'trainval': (4880, 1836), 'test': (2515, 1836)}
  assert splits['test'].labels.shape == (2515, 159)
  # Label cardinality as documented in ../shared/data/README.md.
  assert splits['trainval'].labels.sum(1).mean() == pytest.approx(2.380, abs=1e-3)
  assert splits['test'].labels.sum(1).mean() == pytest.approx(2.444, abs=1e-3)
  # train and val partition the train file.
  assert len(splits['train']) + len(splits['val']) == len(splits['trainval'])


def test_embedded_bibtex_equals_the_arff_files():
  folder = REPO.parent / 'shared' / 'data' / 'bibtex'
  if not folder.is_dir():
    pytest.skip('../shared/data/bibtex not present')
  embedded, from_arff = multilabel.load_bibtex(), multilabel.load_bibtex(str(folder))
  for name in embedded:
    np.testing.assert_array_equal(embedded[name].features,
                                  from_arff[name].features)
    np.testing.assert_array_equal(embedded[name].labels, from_arff[name].labels)


def test_bookmarks_loader_on_a_generated_mulan_file(tmp_path):
  write_mulan(tmp_path, 'bookmarks', random_arrays(200, 10, 4))
  splits = multilabel.load_bookmarks(str(tmp_path))
  train_file = round(200 * 60_000 / 87_856)
  assert len(splits['trainval']) == train_file
  assert len(splits['test']) == 200 - train_file
  assert len(splits['val']) == round(0.05 * train_file)
  with pytest.raises(DataError, match='download bookmarks.rar'):
    multilabel.load_bookmarks('')
  with pytest.raises(DataError, match='bookmarks.xml not found'):
    os.remove(tmp_path / 'bookmarks.xml')
    multilabel.load_bookmarks(str(tmp_path))


def test_zscore_uses_the_training_file_statistics():
  splits = {'trainval': multilabel.MultiLabelSplit(
      np.array([[0., 2.], [2., 2.]], np.float32), np.zeros((2, 1), np.uint8)),
            'test': multilabel.MultiLabelSplit(
      np.array([[4., 2.]], np.float32), np.zeros((1, 1), np.uint8))}
  out = multilabel.zscore(splits, 'trainval')
  np.testing.assert_allclose(out['trainval'].features[:, 0], [-1, 1], atol=1e-5)
  np.testing.assert_allclose(out['test'].features[0, 0], 3.0, atol=1e-5)
  assert np.all(np.isfinite(out['test'].features))   # constant column: no 0/0


def test_example_f1_and_the_empty_case():
  pred = np.array([[1, 1, 0, 0], [0, 0, 0, 0], [0, 0, 0, 0], [1, 0, 0, 0]])
  truth = np.array([[1, 0, 1, 0], [1, 0, 0, 0], [0, 0, 0, 0], [1, 0, 0, 0]])
  np.testing.assert_allclose(evaluate.per_example_f1(pred, truth),
                             [0.5, 0.0, 1.0, 1.0])
  metrics = evaluate.multilabel_metrics(pred, truth)
  assert metrics['f1'] == pytest.approx(62.5)
  assert metrics['precision'] == pytest.approx(100 * (0.5 + 0 + 1 + 1) / 4)


def test_value_net_is_linear_in_y_plus_a_global_term():
  model = models.MultiLabelValueNet(num_labels=5, feature_sizes=(7,))
  params = networks.init_for_shapes(model, jax.random.key(0), (3,), (5,))
  assert 'bias' not in params['global1']   # softplus(y W1) W2, as SPEN
  x = jax.random.normal(jax.random.key(1), (4, 3))
  y = jax.random.uniform(jax.random.key(2), (4, 5))
  logits = model.apply({'params': params}, x, y)
  assert logits.shape == (4,)
  # With the global term removed, the logit is linear in y.
  params['global2']['kernel'] = jnp.zeros_like(params['global2']['kernel'])
  f = lambda y: model.apply({'params': params}, x, y)
  np.testing.assert_allclose(f(2 * y) - f(jnp.zeros_like(y)),
                             2 * (f(y) - f(jnp.zeros_like(y))), rtol=1e-5)


def test_classifier_baselines_have_the_right_depth():
  for sizes, names in (((), {'out'}), ((6,), {'features', 'out'})):
    model = models.MultiLabelClassifier(num_labels=5, feature_sizes=sizes)
    params = networks.init_for_shapes(model, jax.random.key(0), (3,), (5,))
    assert set(k for k in params if params[k]) == names
    assert model.apply({'params': params}, jnp.ones((2, 3))).shape == (2, 5)


@pytest.mark.parametrize('config', [
    'configs/bibtex.py:smoke', 'configs/bibtex_baseline.py:logreg,smoke',
    'configs/bibtex_baseline.py:mlp,smoke'])
def test_bibtex_configs_train_and_evaluate(tmp_path, config):
  result = run_main(f'--config={config}', f'--workdir={tmp_path}')
  assert result.returncode == 0, result.stderr[-2000:]
  assert 'val: F1 ' in result.stdout
  result = run_main(f'--config={config}', f'--workdir={tmp_path}',
                    '--mode=evaluate', '--split=test')
  assert result.returncode == 0, result.stderr[-2000:]
  assert 'test: F1 ' in result.stdout


def test_bookmarks_config_runs_on_a_generated_file(tmp_path):
  data = tmp_path / 'data'
  data.mkdir()
  write_mulan(data, 'bookmarks', random_arrays(120, 2150, 208))
  result = run_main('--config=configs/bookmarks.py:smoke',
                    f'--config.data.path={data}', f'--workdir={tmp_path / "w"}')
  assert result.returncode == 0, result.stderr[-2000:]
  assert 'val: F1 ' in result.stdout


def test_bookmarks_without_data_says_where_to_get_it(tmp_path):
  result = run_main('--config=configs/bookmarks.py:smoke',
                    f'--workdir={tmp_path}')
  assert result.returncode == 1
  assert result.stderr.strip().splitlines()[-1].startswith(
      'error: Bookmarks is not embedded')
  assert 'Traceback' not in result.stderr


def test_label_count_mismatch_is_one_line(tmp_path):
  result = run_main('--config=configs/bibtex.py:smoke',
                    '--config.model.num_labels=10', f'--workdir={tmp_path}')
  assert result.returncode == 1
  assert 'model.num_labels is 10 but the bibtex data has 159' in result.stderr


def test_tfds_builders_round_trip_generated_mulan_files(tmp_path):
  import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top
  from dvn_jax.datasets import mulan_tfds  # pylint: disable=g-import-not-at-top
  manual = tmp_path / 'manual'
  manual.mkdir()
  write_mulan(manual, 'bookmarks', random_arrays(60, 2150, 208))
  data_dir = tmp_path / 'tfds'
  mulan_tfds.BookmarksBuilder(data_dir=data_dir).download_and_prepare(
      download_config=tfds.download.DownloadConfig(manual_dir=manual),
      file_format='array_record')
  from_tfds = multilabel.load_bookmarks(str(data_dir))
  from_arff = multilabel.load_bookmarks(str(manual))
  for name in ('train', 'val', 'trainval', 'test'):
    np.testing.assert_array_equal(from_tfds[name].features,
                                  from_arff[name].features)
    np.testing.assert_array_equal(from_tfds[name].labels,
                                  from_arff[name].labels)


def test_tfds_builder_rejects_files_of_the_wrong_size(tmp_path):
  import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top
  from dvn_jax.datasets import mulan_tfds  # pylint: disable=g-import-not-at-top
  write_mulan(tmp_path, 'bookmarks', random_arrays(20, 7, 3))
  with pytest.raises(DataError, match='7 features and 3 labels; bookmarks '
                     'has 2150 and 208'):
    mulan_tfds.BookmarksBuilder(data_dir=tmp_path / 'tfds').download_and_prepare(
        download_config=tfds.download.DownloadConfig(manual_dir=tmp_path),
        file_format='array_record')
