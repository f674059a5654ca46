"""The task registry (dvn_jax/tasks/__init__.py) and what every task gives
the core (dvn_jax/tasks/base.py)."""

import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from configs import bibtex as bibtex_config
from configs import digits as digits_config
from configs import horses as horses_config
from configs import lfw as lfw_config
from dvn_jax import builders
from dvn_jax import tasks
from dvn_jax.errors import ConfigError
from dvn_jax.tasks import base
from dvn_jax.tasks import digits


@pytest.mark.parametrize('config,output_set,oracle,headline,shapes', [
    (horses_config.get_config('smoke'), 'box', 'iou', 'mean_iou',
     ((24, 24, 3), (24, 24, 1))),
    (lfw_config.get_config('smoke'), 'simplex', 'pixel_accuracy',
     'superpixel_accuracy', ((24, 24, 3), (24, 24, 3))),
    (bibtex_config.get_config('smoke'), 'box', 'f1', 'f1',
     ((1836,), (159,))),
    (digits_config.get_config('smoke'), 'box', 'iou', 'mean_iou',
     ((32,), (32,))),
])
def test_each_task_fixes_its_output_set_oracle_and_shapes(
    config, output_set, oracle, headline, shapes):
  task = tasks.get(config)
  assert isinstance(task, base.Task)
  assert (task.output_set, task.oracle, task.headline) == (
      output_set, oracle, headline)
  assert task.example_shapes == shapes


def test_probabilities_and_baseline_loss_follow_the_output_set():
  box = tasks.get(horses_config.get_config('smoke'))
  simplex = tasks.get(lfw_config.get_config('smoke'))
  logits = jnp.array([[0.0, 2.0, -1.0]])
  np.testing.assert_allclose(box.probabilities(logits),
                             jax.nn.sigmoid(logits))
  np.testing.assert_allclose(simplex.probabilities(logits).sum(-1), 1.0,
                             rtol=1e-6)
  one_hot = jnp.array([[0.0, 1.0, 0.0]])
  np.testing.assert_allclose(simplex.baseline_loss(logits, one_hot),
                             -jnp.log(jax.nn.softmax(logits)[0, 1]),
                             rtol=1e-6)
  assert float(box.baseline_loss(logits, one_hot)) > 0


def test_a_task_of_ones_own_is_named_by_its_module(tmp_path, monkeypatch):
  """config.task = a dotted module path: the module's build(config)."""
  (tmp_path / 'my_completion.py').write_text(
      'from dvn_jax.tasks import digits\n'
      'def build(config):\n'
      '  return digits.DigitCompletion(config)\n')
  monkeypatch.syspath_prepend(str(tmp_path))
  config = digits_config.get_config('smoke')
  config.task = 'my_completion'
  builders.check_config(config)
  assert isinstance(tasks.get(config), digits.DigitCompletion)
  sys.modules.pop('my_completion', None)


def test_a_module_that_is_not_a_task_is_one_line(tmp_path, monkeypatch):
  (tmp_path / 'no_build.py').write_text('x = 1\n')
  (tmp_path / 'wrong_build.py').write_text('def build(config):\n  return 3\n')
  monkeypatch.syspath_prepend(str(tmp_path))
  config = digits_config.get_config('smoke')
  for name, needle in (('no_build', 'defines no build'),
                       ('wrong_build', 'returned int, not a'),
                       ('not.a.module', "unknown task 'not.a.module'")):
    config.task = name
    with pytest.raises(ConfigError, match=needle):
      tasks.get(config)
