"""Configs written for earlier versions, read as today's
(dvn_jax/migration.py)."""

import ml_collections
import pytest

from configs import bibtex as bibtex_config
from configs import horses as horses_config
from dvn_jax import builders
from dvn_jax.errors import ConfigError


def old_horses_config() -> ml_collections.ConfigDict:
  """configs/horses.py:smoke as it was written before the task interface:
  no task, method, num_classes or data.name; the oracle and the projection
  in the config; the variants since removed, all off; the FCN of the
  hybrid under start.model."""
  c = horses_config.get_config('smoke')
  for field in ('task', 'method', 'num_classes'):
    del c[field]
  del c.data['name']
  c.oracle = 'iou'
  c.data.num_folds, c.data.held_out_fold = 0, -1
  c.augment = ml_collections.ConfigDict(dict(
      scale=0.0, brightness=0.0, contrast=0.0, saturation=0.0))
  c.init_layers = 'tower'
  c.start = ml_collections.ConfigDict(dict(
      params='', scale=1.0, folds=0, model=c.eval.fcn.model))
  del c.eval.fcn['model']
  c.eval.fcn.weight = 0.0
  c.eval.ensemble = 'outputs'
  c.tuples.mix.extrapolated = 0.0
  c.tuples.echo = 1
  for block in (c.tuples.inference, c.tuples.adversarial, c.eval.inference):
    block.projection, block.ascend = 'box', 'value'
  c.optimizer.warmup_steps = 0
  c.gradient_loss_weight, c.gradient_loss_stride = 0.0, 1
  c.tuples.chains_params = 'live'
  c.mask_loss_weight = 0.0
  return c


def test_an_old_config_reads_as_todays():
  old = old_horses_config()
  builders.check_config(old)
  new = horses_config.get_config('smoke')
  builders.check_config(new)
  assert old.to_dict() == new.to_dict()


@pytest.mark.parametrize('field,value', [
    ('tuples.echo', 2), ('tuples.mix.extrapolated', 0.25),
    ('eval.ensemble', 'values'), ('eval.fcn.weight', 0.4),
    ('augment.brightness', 0.2), ('start.folds', 5),
    ('start.params', '/tmp/fcn.npz'),
    ('tuples.inference.ascend', 'logit'),
    ('tuples.adversarial_start', 'ground_truth_or_inference'),
    ('gradient_loss_weight', 1.0),
    ('tuples.chains_params', 'average'),
    ('mask_loss_weight', 1.0),
])
def test_a_removed_variant_that_is_on_is_one_line(field, value):
  config = old_horses_config()
  config.update_from_flattened_dict({field: value})
  with pytest.raises(ConfigError, match=f'{field}={value!r} was removed'):
    builders.check_config(config)


def test_what_the_task_fixes_must_agree_with_an_old_config():
  config = old_horses_config()
  config.oracle = 'f1'
  with pytest.raises(ConfigError, match="oracle='f1', but the task fixes it "
                     "as 'iou'"):
    builders.check_config(config)
  config = old_horses_config()
  config.eval.inference.projection = 'simplex'
  with pytest.raises(ConfigError, match='eval.inference.projection'):
    builders.check_config(config)


def test_an_old_baseline_config_is_read_with_its_method():
  c = bibtex_config.get_config('smoke')
  del c['method']
  c.model = ml_collections.ConfigDict(dict(
      name='mlc_classifier', num_labels=159, feature_sizes=(),
      dropout_rate=0.0))
  builders.check_config(c)
  assert c.method == 'baseline'
