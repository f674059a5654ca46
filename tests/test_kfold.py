"""k-fold cross-validation splits (dvn_jax/datasets/kfold.py) and their
config fields."""

import numpy as np
import pytest

from configs import bibtex as bibtex_config
from configs import horses as horses_config
from dvn_jax import builders
from dvn_jax import train
from dvn_jax.datasets import horses
from dvn_jax.datasets import kfold
from dvn_jax.errors import ConfigError


def _split(n: int) -> horses.SegmentationSplit:
  return horses.SegmentationSplit(
      images=np.arange(n)[:, None, None, None] * np.ones((1, 2, 2, 3),
                                                         np.uint8),
      masks=np.zeros((n, 2, 2), np.uint8),
      names=np.array([f'h{i}' for i in range(n)]))


def test_folds_partition_trainval_and_are_fixed():
  data = {'trainval': _split(23)}
  seen = []
  for fold in range(5):
    splits = kfold.fold_splits(data, 5, fold)
    train_names = set(splits['fold_train'].names)
    val_names = set(splits['fold_val'].names)
    assert not train_names & val_names
    assert len(train_names) + len(val_names) == 23
    assert len(val_names) in (4, 5)
    # Every field follows the same examples.
    index = [int(n[1:]) for n in splits['fold_val'].names]
    np.testing.assert_array_equal(splits['fold_val'].images[:, 0, 0, 0], index)
    seen += sorted(val_names)
  assert sorted(seen) == sorted(f'h{i}' for i in range(23))
  np.testing.assert_array_equal(kfold.fold_of(23, 5), kfold.fold_of(23, 5))
  assert len(set(kfold.fold_of(23, 5)[:5])) > 1   # shuffled, not blocks


def test_bad_folds_are_one_line_errors():
  with pytest.raises(ConfigError, match='needs a trainval split'):
    kfold.fold_splits({'train': _split(4)}, 2, 0)
  with pytest.raises(ConfigError, match=r'cv_folds must be in \[2, 4\]'):
    kfold.fold_splits({'trainval': _split(4)}, 5, 0)
  config = horses_config.get_config('smoke')
  config.data.cv_folds, config.data.cv_fold = 5, 5
  with pytest.raises(ConfigError, match=r'cv_fold must be in \[0, 5\)'):
    builders.check_config(config)
  config.data.cv_folds = 1
  with pytest.raises(ConfigError, match='cv_folds must be 0'):
    builders.check_config(config)


def test_load_data_adds_the_fold_splits():
  config = bibtex_config.get_config('smoke')
  assert 'fold_val' not in train.load_data(config)
  config.data.cv_folds, config.data.cv_fold = 4, 1
  data = train.load_data(config)
  assert len(data['fold_val']) + len(data['fold_train']) == len(
      data['trainval'])
  assert abs(len(data['fold_val']) - len(data['trainval']) / 4) <= 1
