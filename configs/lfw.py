"""DVN on LFW Part Labels: face / hair / background (paper Sec. 5.3, Table 3).

The data is not embedded: download and unpack it (docs/lfw.md), then

  python -m dvn_jax.main --config=configs/lfw.py --workdir=/tmp/lfw \
    --config.data.path=/data/lfw_part_labels

trains on the official train list and scores the validation list; the
paper's final protocol adds --config.data.train_split=trainval on a second
command (as in configs/horses.py) and then --mode=evaluate (test list).
`data.path` is the folder of the unpacked official files or a TFDS data_dir
with the `lfw_part_labels` builder prepared (dvn_jax/datasets/
part_labels_tfds.py).

Outputs are one probability vector per pixel (K = 3 channels), projected
onto the per-pixel simplex after each ascent step; inference starts at the
uniform distribution (the projection of y = 0). The oracle is relaxed mean
pixel accuracy (the paper's choice); the reported metric is superpixel
accuracy at full size (250x250).

Hyperparameters are those chosen for horses (configs/horses.py) and have
not been tuned on LFW: tune them on the validation list.

A seconds-long run on the synthetic fixture (as CI does):
  python -m dvn_jax.datasets.make_part_labels_fixture --out=/tmp/lfw_fixture
  python -m dvn_jax.main --config=configs/lfw.py:smoke \
    --config.data.path=/tmp/lfw_fixture --workdir=/tmp/lfw_smoke
"""

import ml_collections

from configs import horses


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  """The horse setup on 3-class faces; `arg='smoke'` runs in seconds;
  'spen' takes the horse SPEN's val-chosen length (1000 steps) and
  prediction step (100), not tuned on faces."""
  c = horses.get_config(arg)
  c.data = ml_collections.ConfigDict(dict(
      name='lfw_part_labels', path='', train_split='train', eval_split='val',
      cv_folds=0, cv_fold=0))
  # K = 3 classes: the task's oracle is pixel accuracy and its output set
  # the per-pixel simplex (dvn_jax/tasks/segmentation.py).
  c.num_classes = 3
  c.flip = True           # faces are left-right symmetric, as are the labels
  return c
