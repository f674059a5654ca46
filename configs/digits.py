"""DVN on digit completion (dvn_jax/tasks/digits.py; not in the paper): the
bottom half of a handwritten 8x8 digit from its top half.

  python -m dvn_jax.main --config=configs/digits.py --workdir=/tmp/digits
  python -m dvn_jax.main --config=configs/digits.py --workdir=/tmp/digits \
    --mode=evaluate
The per-pixel baseline: --config=configs/digits.py:baseline. A seconds-long
run: append ',smoke' (e.g. `:smoke`, `:baseline,smoke`). Step size, batch
and length were chosen on val (docs/digits.md).
"""

import ml_collections

from configs import common


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  options = common.config_options(arg, ('baseline', 'smoke'))
  c = ml_collections.ConfigDict()
  c.task = 'digits'
  c.method = 'dvn'
  c.seed = 0
  c.num_devices = 0
  c.data = ml_collections.ConfigDict(dict(train_split='train',
                                          eval_split='val', cv_folds=0,
                                          cv_fold=0))
  c.model = ml_collections.ConfigDict(dict(
      name='joint_value_net', hidden=(256, 128), dropout_rate=0.0))
  c.init_from = ''
  c.loss = 'cross_entropy'
  c.batch_size = 64
  c.num_train_steps = 10_000
  # Train steps per compiled call (a lax.scan on the device; train.py):
  # metrics, evaluations and checkpoints at call boundaries.
  c.steps_per_call = 1
  c.optimizer = common.optimizer('adam', 1e-3)
  c.ema_decay = 0.0
  c.tuples = ml_collections.ConfigDict(dict(
      mix=common.mix(inference=0.5, adversarial=0.5),
      inference=common.ascent(20, 5.0), inference_pick='final',
      inference_points=1, temperature=0.05,
      adversarial=common.ascent(1, 5.0),
      adversarial_start='ground_truth_or_zeros',
      adversarial_objective='value',
      inference_chains=False, chain_steps=1,
      replay_size=0, replay_share=0.0))
  c.eval = ml_collections.ConfigDict(dict(
      inference=common.ascent(20, 5.0), threshold=0.5, batch_size=512,
      score_live_params=True,
      calibration=False,
      fcn=common.hybrid_off(ml_collections.ConfigDict(dict(
          name='mlc_classifier', feature_sizes=(64,))))))
  c.log_every_steps = 500
  c.eval_every_steps = 2000
  c.checkpoint_every_steps = 2000
  c.max_checkpoints_to_keep = 3
  c.keep_best_checkpoints = 1
  if 'baseline' in options:
    c.method = 'baseline'
    c.model = ml_collections.ConfigDict(dict(
        name='mlc_classifier', feature_sizes=(64,), dropout_rate=0.0))
  if 'smoke' in options:
    c.num_train_steps = 6
    c.tuples.inference.num_steps = 2
    c.eval.inference.num_steps = 2
    c.log_every_steps = 2
    c.eval_every_steps = 3
    c.checkpoint_every_steps = 3
  return c
