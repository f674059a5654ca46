"""Training methods: how a network of a task is trained and how it predicts.

`config.method` names one:
- 'dvn' (methods/dvn.py): a value network regressed onto oracle values of
  generated (x, y, v*) tuples, predicting by gradient ascent (the paper);
- 'baseline' (methods/baseline.py): a network of per-output logits trained
  with per-output cross-entropy, predicting its probabilities (the FCN and
  the multi-label baselines);
- 'spen' (methods/spen.py): the same value network trained by SPEN's
  structured hinge on cost-augmented inference, predicting as the DVN.

Each method module defines:
- `check(task, model, config)`: ConfigError if the model or config does
  not suit the method;
- `init_chains(task, config)` and `init_replay(task, config)`: the
  method's state beside the parameters (persistent inference chains, a
  replay buffer of training tuples), or None;
- `make_train_step(task, model, tx, config)`: train_step(state, inputs,
  targets, indices) -> (state, metrics), to be jitted by the loop;
- `make_predict(task, model, config, return_trajectory)`: predict(params,
  inputs) of one network, for whole test inputs;
- methods that predict by gradient ascent ('dvn', 'spen') also define
  `bind(model, params)`: the network with fixed parameters as their
  prediction climbs it (an inference.ValueFn; dvn_jax/calibration.py).
"""

from __future__ import annotations

import importlib
from types import ModuleType

import ml_collections

from dvn_jax.errors import ConfigError

METHODS = {'dvn': 'dvn_jax.methods.dvn',
           'baseline': 'dvn_jax.methods.baseline',
           'spen': 'dvn_jax.methods.spen'}


def get(config: ml_collections.ConfigDict) -> ModuleType:
  """The method module `config.method` names."""
  if config.method not in METHODS:
    raise ConfigError(f'unknown method {config.method!r}; choose one of '
                      f'{sorted(METHODS)}')
  return importlib.import_module(METHODS[config.method])
