"""DVN on Bookmarks multi-label tagging (paper Sec. 5.1, Table 1).

Bookmarks is not embedded: download Mulan's bookmarks.rar from
http://mulan.sourceforge.net/datasets-mlc.html, unpack it (bookmarks.arff,
bookmarks.xml) and pass its folder:

  python -m dvn_jax.main --config=configs/bookmarks.py --workdir=/tmp/bookmarks \
    --config.data.path=/path/to/bookmarks
  (final protocol: rerun the workdir with --config.data.train_split=trainval
  and more steps, then --mode=evaluate)
A seconds-long run on a small file in Mulan's format (the tests make one):
  python -m dvn_jax.main --config=configs/bookmarks.py:smoke \
    --config.data.path=DIR --workdir=/tmp/smoke

The split (datasets/multilabel.py): rows permuted with seed 0, the first
60,000 are the train file (5% of it held out as val), the other 27,856 test;
SPEN's split files, used by the paper, are no longer online.
"""

import ml_collections

STEPS_PER_EPOCH = 2850  # 95% of 60,000 examples, batch 20


def ascent(num_steps: int, step_size: float) -> ml_collections.ConfigDict:
  """Settings of gradient ascent in y (inference.AscentSpec), on the value."""
  return ml_collections.ConfigDict(dict(
      num_steps=num_steps, step_size=step_size, projection='box',
      ascend='value', unroll=0, noise_std=0.0))


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  """The authors' released Bookmarks setup; `arg='smoke'` runs in seconds."""
  c = ml_collections.ConfigDict()
  c.task = 'multilabel'
  c.seed = 0
  # Data-parallel devices: 0 = every device of every host (the batch is split
  # over them; batch_size must be a multiple of their number).
  c.num_devices = 0
  c.data = ml_collections.ConfigDict(dict(
      name='bookmarks', path='', num_features=2150, train_split='train',
      eval_split='val'))
  # Two softplus feature layers (the authors' include_second_layer).
  c.model = ml_collections.ConfigDict(dict(
      name='mlc_value_net', num_labels=208, feature_sizes=(150, 150),
      global_hidden=16, dropout_rate=0.0))
  c.init_from = ''
  c.oracle = 'f1'
  c.loss = 'cross_entropy'
  c.batch_size = 20
  c.num_train_steps = 300 * STEPS_PER_EPOCH  # 250 epochs, x0.1, 50 epochs
  c.optimizer = ml_collections.ConfigDict(dict(
      name='sgd', learning_rate=0.1, momentum=0.0, schedule='piecewise',
      decay_steps=(250 * STEPS_PER_EPOCH,), decay_factor=0.1, warmup_steps=0,
      weight_decay=1e-4, grad_clip_norm=0.0))
  c.ema_decay = 0.0   # a moving average of the parameters (train.py)
  c.tuples = ml_collections.ConfigDict(dict(
      mix=ml_collections.ConfigDict(dict(
          ground_truth=0.0, inference=0.5, stratified=0.0, adversarial=0.5,
          interpolated=0.0, extrapolated=0.0)),
      inference=ascent(20, 0.75), inference_pick='final', inference_points=1,
      temperature=0.05, adversarial=ascent(1, 0.75),
      adversarial_start='ground_truth_or_zeros', adversarial_objective='value',
      inference_chains=False, chain_steps=1, echo=1))
  c.eval = ml_collections.ConfigDict(dict(
      inference=ascent(20, 0.75), threshold=0.5, batch_size=512))
  c.log_every_steps = 1000
  c.eval_every_steps = 5 * STEPS_PER_EPOCH
  c.checkpoint_every_steps = 5 * STEPS_PER_EPOCH
  # Checkpoints kept: the last 3 plus the 1 with the best val score (every
  # eval step is saved; see README, Runs that survive).
  c.max_checkpoints_to_keep = 3
  c.keep_best_checkpoints = 1
  if arg == 'smoke':
    c.num_train_steps = 6
    c.tuples.inference.num_steps = 2
    c.eval.inference.num_steps = 2
    c.eval.batch_size = 8
    c.log_every_steps = 2
    c.eval_every_steps = 3
    c.checkpoint_every_steps = 3
  elif arg:
    raise ValueError(f"unknown config argument {arg!r}; use 'smoke' or none")
  return c
