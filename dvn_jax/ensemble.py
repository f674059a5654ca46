"""Command line: stack parameter files of one config into an ensemble file.

  python -m dvn_jax.main --config=configs/horses.py --workdir=/tmp/run1 \
      --mode=export --params=/tmp/run1.npz          # (and /tmp/run2.npz)
  python -m dvn_jax.ensemble --output=/tmp/ensemble.npz [--dtype=float16] \
      /tmp/run1.npz /tmp/run2.npz

A file named that is itself an ensemble adds each of its members.
The ensemble file is used wherever a parameter file is (`--mode=evaluate
--params=...`, `dvn_jax.predict`, `dvn_jax.figures`) with the members'
config: each member runs its own inference and their soft outputs are
averaged before the threshold (`train.averaged_over_members`).
"""

from __future__ import annotations

from absl import app
from absl import flags

from dvn_jax import checkpoints
from dvn_jax import cli

_OUTPUT = flags.DEFINE_string('output', None, 'The ensemble file to write.')
_DTYPE = flags.DEFINE_enum('dtype', 'float32', ['float32', 'float16'],
                           'Storage type of the ensemble file.')
flags.mark_flags_as_required(['output'])


def main(argv):
  paths = argv[1:]
  if len(paths) < 2:
    cli.fail('name two or more parameter files (--mode=export of each run)')
  with cli.reporting_errors():
    checkpoints.save_params(checkpoints.stack_params(paths), _OUTPUT.value,
                            _DTYPE.value)
  print(f'wrote {_OUTPUT.value} ({len(paths)} members)')


if __name__ == '__main__':
  app.run(main)
