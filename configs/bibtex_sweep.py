"""A val sweep of the Bibtex value net, for benchmarks/sweep.py.

  python benchmarks/sweep.py --config=configs/bibtex.py \
      --sweep=configs/bibtex_sweep.py --metric=f1 --eval_every=2320 \
      --finetune_fraction=0.1 --root=/tmp/bibtex_sweep --output=sweep.md

Each variant changes one thing against the authors' setup (configs/bibtex.py);
the fine-tuning on the whole train file is 10% more steps, as the authors'
15 epochs after 375.
"""

from __future__ import annotations


def get_sweep(arg: str | None = None) -> dict[str, dict[str, object]]:
  """Variant name -> config overrides (dotted field -> value)."""
  if arg:
    raise ValueError(f'unknown sweep argument {arg!r}')
  return {
      'base': {},
      'hidden300': {'model.feature_sizes': (300,)},
      'dropout25': {'model.dropout_rate': 0.25},
      'wd3e-3': {'optimizer.weight_decay': 3e-3},
      'adv_loss': {'tuples.adversarial_objective': 'loss'},
      'inf_random': {'tuples.inference_pick': 'random'},
  }
