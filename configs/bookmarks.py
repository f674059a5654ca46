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

from configs import bibtex
from configs import common

STEPS_PER_EPOCH = 2850  # 95% of 60,000 examples, batch 20


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  """The authors' released Bookmarks setup: configs/bibtex.py's, with
  Bookmarks' sizes, two feature layers, its schedule and step size;
  options as configs/bibtex.py's ('smoke' runs in seconds, 'spen')."""
  c = bibtex.get_config(arg)
  c.data.name = 'bookmarks'
  c.data.num_features = 2150
  # Two softplus feature layers (the authors' include_second_layer).
  c.model.num_labels = 208
  c.model.feature_sizes = (150, 150)
  c.eval.fcn.model.num_labels = 208
  c.optimizer.decay_steps = (250 * STEPS_PER_EPOCH,)   # then x0.1, 50 epochs
  c.optimizer.weight_decay = 1e-4
  c.tuples.inference = common.ascent(20, 0.75)
  c.tuples.adversarial = common.ascent(1, 0.75)
  c.eval.inference = common.ascent(20, 0.75)
  options = common.config_options(arg, ('smoke', 'spen'))
  if 'spen' in options:
    # Bibtex's val-chosen SPEN prediction (step 0.1, threshold 0.3) is not
    # carried over: the Bookmarks ascent and threshold above, untuned.
    c.spen = common.spen(20, c.eval.inference.step_size)
    c.eval.threshold = 0.5
  if 'smoke' in options:
    c.tuples.inference.num_steps = 2
    c.eval.inference.num_steps = 2
    c.eval.batch_size = 8
    if 'spen' in options:
      c.spen.ascent.num_steps = 2
  else:
    c.num_train_steps = 300 * STEPS_PER_EPOCH
    c.eval_every_steps = 5 * STEPS_PER_EPOCH
    c.checkpoint_every_steps = 5 * STEPS_PER_EPOCH
  return c
