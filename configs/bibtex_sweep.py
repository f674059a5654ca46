"""A val sweep of the Bibtex value net, for benchmarks/sweep.py.

  python benchmarks/sweep.py --config=configs/bibtex.py \
      --sweep=configs/bibtex_sweep.py --metric=f1 --eval_every=2320 \
      --finetune_fraction=0.1 --root=/tmp/bibtex_sweep --output=sweep.md

Each variant changes one thing against the authors' setup (configs/bibtex.py);
the fine-tuning on the whole train file is 10% more steps, as the authors'
15 epochs after 375. `:baseline` sweeps the baselines' optimiser:

  python benchmarks/sweep.py --config=configs/bibtex_baseline.py:logreg \
      --sweep=configs/bibtex_sweep.py:baseline --metric=f1 --eval_every=232 \
      --steps=6960 --finetune_fraction=0.1 --root=/tmp/logreg_sweep
"""

from __future__ import annotations


def get_sweep(arg: str | None = None) -> dict[str, dict[str, object]]:
  """Variant name -> config overrides (dotted field -> value)."""
  if arg == 'baseline':   # for configs/bibtex_baseline.py (logreg or mlp)
    adam = lambda lr, wd: {'optimizer.learning_rate': lr,
                           'optimizer.weight_decay': wd}
    return {
        'adam1e-3': adam(1e-3, 1e-3),
        'adam1e-4': adam(1e-4, 1e-3),
        'adam1e-3_wd1e-2': adam(1e-3, 1e-2),
        'adam1e-3_wd1e-4': adam(1e-3, 1e-4),
        'adam1e-3_wd0': adam(1e-3, 0.0),
    }
  if arg:
    raise ValueError(f"unknown sweep argument {arg!r}; use 'baseline' or none")
  return {
      'base': {},
      'hidden300': {'model.feature_sizes': (300,)},
      'dropout25': {'model.dropout_rate': 0.25},
      'wd3e-3': {'optimizer.weight_decay': 3e-3},
      'adv_loss': {'tuples.adversarial_objective': 'loss'},
      'inf_random': {'tuples.inference_pick': 'random'},
  }
