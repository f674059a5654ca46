"""Training methods (dvn_jax/methods/): the registry, what each takes from
the task, the one-network predictions."""

import jax
import numpy as np
import pytest

from configs import horses_fcn as fcn_config
from configs import lfw as lfw_config
from dvn_jax import builders
from dvn_jax import methods
from dvn_jax import tasks
from dvn_jax.errors import ConfigError
from dvn_jax.methods import baseline
from dvn_jax.methods import dvn
from dvn_jax.methods import spen


def test_the_config_names_the_method():
  config = lfw_config.get_config('smoke')
  assert methods.get(config) is dvn
  config.method = 'baseline'
  assert methods.get(config) is baseline
  config.method = 'spen'
  assert methods.get(config) is spen
  config.method = 'ssvm'
  with pytest.raises(ConfigError, match="unknown method 'ssvm'"):
    methods.get(config)


def test_the_tuple_spec_takes_the_tasks_oracle_and_output_set():
  config = lfw_config.get_config('smoke')
  spec = dvn.tuple_spec(tasks.get(config), config)
  assert spec.oracle == 'pixel_accuracy'
  assert spec.inference_ascent.projection == 'simplex'
  assert spec.adversarial_ascent.projection == 'simplex'
  assert dict(spec.mix) == {'inference': 0.5, 'adversarial': 0.5}


def test_a_baseline_has_its_own_prediction_and_no_trajectory():
  config = fcn_config.get_config('smoke')
  builders.check_config(config)
  task = tasks.get(config)
  model = builders.create_model(config)
  params = builders.init_model_params(model, config, jax.random.key(0))
  images = np.zeros((2, 32, 32, 3), np.uint8)
  masks = baseline.make_predict(task, model, config)(params, images)
  assert masks.shape == (2, 32, 32, 1)
  assert 0.0 < float(masks.min()) and float(masks.max()) < 1.0
  with pytest.raises(ConfigError, match='a baseline has no inference'):
    baseline.make_predict(task, model, config, return_trajectory=True)
  with pytest.raises(ConfigError, match='is a baseline network'):
    dvn.check(task, model, config)
