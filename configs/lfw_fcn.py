"""FCN baseline on LFW Part Labels, 3 classes (paper Table 3: 95.36).

The value network's convolutional layers trained per pixel with softmax
cross-entropy over face / hair / background on random 24x24 crops; at test
the class probabilities of 36 crops are averaged, resized to 250x250 and
scored by superpixel accuracy.

  python -m dvn_jax.main --config=configs/lfw_fcn.py --workdir=/tmp/lfw_fcn \
    --config.data.path=/data/lfw_part_labels

Smoke run on the fixture: configs/lfw.py's docstring, with lfw_fcn.py.
"""

import ml_collections

from configs import horses_fcn
from configs import lfw


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  c = lfw.get_config(arg)
  fcn = horses_fcn.get_config(arg)
  for field in ('method', 'model', 'batch_size', 'optimizer',
                'num_train_steps', 'eval_every_steps'):
    c[field] = fcn[field]
  c.eval.batch_size = fcn.eval.batch_size
  return c
