"""Table 1's baselines on Bibtex: per-label logistic regression and a
two-layer network, trained with per-label cross-entropy (no inference).

  python -m dvn_jax.main --config=configs/bibtex_baseline.py:logreg --workdir=/tmp/lr
  python -m dvn_jax.main --config=configs/bibtex_baseline.py:mlp --workdir=/tmp/mlp
Final protocol: rerun the workdir with --config.data.train_split=trainval
--config.num_train_steps=<10% more> (logreg 1531, mlp 2297), then
--mode=evaluate. Append ',smoke' to the argument, e.g. ':mlp,smoke', for a
seconds-long run. The optimiser and step counts were chosen on val
(docs/multilabel.md).
"""

import ml_collections

from configs import common

STEPS_PER_EPOCH = 232  # ceil(4636 / 20)


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  """arg: 'logreg' or 'mlp' (default), optionally followed by ',smoke'."""
  parts = (arg or 'mlp').split(',')
  kind, smoke = parts[0], parts[1:] == ['smoke']
  if kind not in ('logreg', 'mlp') or parts[1:] not in ([], ['smoke']):
    raise ValueError(f"unknown config argument {arg!r}; use 'logreg' or "
                     "'mlp', optionally with ',smoke'")
  c = ml_collections.ConfigDict()
  c.task = 'multilabel'
  c.method = 'baseline'   # per-label cross-entropy (methods/baseline.py)
  c.seed = 0
  # Data-parallel devices: 0 = every device of every host (the batch is split
  # over them; batch_size must be a multiple of their number).
  c.num_devices = 0
  c.data = ml_collections.ConfigDict(dict(
      name='bibtex', path='', num_features=1836, train_split='train',
      eval_split='val', cv_folds=0, cv_fold=0))
  c.model = ml_collections.ConfigDict(dict(
      name='mlc_classifier', num_labels=159,
      feature_sizes=() if kind == 'logreg' else (150,), dropout_rate=0.0))
  c.init_from = ''
  c.batch_size = 20
  # Chosen on val (configs/bibtex_sweep.py:baseline): the step with the best
  # val F1, and weight decay 1e-3 for logreg, none for the network.
  c.num_train_steps = 1392 if kind == 'logreg' else 2088
  # Train steps per compiled call (a lax.scan on the device; train.py):
  # metrics, evaluations and checkpoints at call boundaries.
  c.steps_per_call = 1
  c.optimizer = common.optimizer(
      'adam', 1e-3, momentum=0.0,
      weight_decay=1e-3 if kind == 'logreg' else 0.0)
  c.ema_decay = 0.0   # a moving average of the parameters (train.py)
  c.eval = ml_collections.ConfigDict(dict(threshold=0.5, batch_size=512))
  c.log_every_steps = 1000
  c.eval_every_steps = STEPS_PER_EPOCH
  c.checkpoint_every_steps = STEPS_PER_EPOCH
  # Checkpoints kept: the last 3 plus the 1 with the best val score (every
  # eval step is saved; see README, Runs that survive).
  c.max_checkpoints_to_keep = 3
  c.keep_best_checkpoints = 1
  if smoke:
    c.num_train_steps = 6
    c.log_every_steps = 2
    c.eval_every_steps = 3
    c.checkpoint_every_steps = 3
  return c
