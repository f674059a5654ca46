"""The worked example of a task of one's own (dvn_jax/tasks/digits.py),
trained and evaluated end to end."""

import numpy as np
import pytest

from configs import digits as digits_config
from dvn_jax import builders
from dvn_jax import tasks
from dvn_jax import train
from dvn_jax.errors import ConfigError
from dvn_jax.tasks import digits


def test_the_splits_are_disjoint_halves_of_the_shipped_digits():
  splits = digits.load_digits()
  sizes = {name: len(split) for name, split in splits.items()}
  assert sizes == {'test': 359, 'val': 143, 'train': 1295, 'trainval': 1438}
  for split in splits.values():
    assert split.features.shape[1] == split.labels.shape[1] == digits.HALF
    assert 0.0 <= split.features.min() and split.features.max() <= 1.0
    assert set(np.unique(split.labels)) == {0, 1}
  rows = lambda s: {r.tobytes() for r in np.concatenate(
      [s.features, s.labels.astype(np.float32)], axis=1)}
  assert not rows(splits['test']) & rows(splits['trainval'])
  assert rows(splits['trainval']) == rows(splits['train']) | rows(
      splits['val'])


@pytest.mark.parametrize('arg', ['smoke', 'baseline,smoke'])
def test_the_digits_configs_train_and_evaluate(tmp_path, arg):
  config = digits_config.get_config(arg)
  metrics = train.train_and_evaluate(config, str(tmp_path))
  assert set(metrics) >= {'mean_iou', 'global_iou', 'pixel_accuracy'}
  assert 0 <= metrics['pixel_accuracy'] <= 100
  test = train.evaluate_checkpoint(config, str(tmp_path), 'test')
  assert tasks.get(config).summary(test).startswith('mean IoU ')


def test_a_network_the_task_does_not_have_is_one_line():
  config = digits_config.get_config('smoke')
  config.model.name = 'value_net'
  with pytest.raises(ConfigError, match="unknown model 'value_net' for "
                     'digits'):
    builders.check_config(config)
