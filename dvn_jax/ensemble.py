"""Command line: stack parameter files of one config into an ensemble file.

  python -m dvn_jax.main --config=configs/horses.py --workdir=/tmp/run1 \
      --mode=export --params=/tmp/run1.npz          # (and /tmp/run2.npz)
  python -m dvn_jax.ensemble --output=/tmp/ensemble.npz [--dtype=float16] \
      /tmp/run1.npz /tmp/run2.npz

A file named that is itself an ensemble adds each of its members.
The ensemble file is used wherever a parameter file is (`--mode=evaluate
--params=...`, `dvn_jax.predict`, `dvn_jax.figures`) with the members'
config: each member runs its own inference and their soft outputs are
averaged before the threshold (`stacked.averaged_over_members`). Naming
the files with commas instead (`--params=/tmp/run1.npz,/tmp/run2.npz`,
also `eval.fcn.params` and `start.params`) loads the same ensemble without
writing it.

`--average` writes the mean of the files' parameters instead, one network:
checkpoint averaging of snapshots of one run (each exported from a copy of
the workdir that holds only that step's checkpoint):

  python -m dvn_jax.ensemble --average --output=/tmp/avg.npz \
      /tmp/step12000.npz /tmp/step13000.npz /tmp/step14000.npz

`--member=K` with one ensemble file writes its member K alone (to continue
training that network: `--config.init_from=FILE --config.init_layers=all`):

  python -m dvn_jax.ensemble --member=0 --output=/tmp/m0.npz \
      released/horses_dvn_long_pair.npz
"""

from __future__ import annotations

from absl import app
from absl import flags

from dvn_jax import checkpoints
from dvn_jax import cli

_OUTPUT = flags.DEFINE_string('output', None, 'The ensemble file to write.')
_DTYPE = flags.DEFINE_enum('dtype', 'float32', ['float32', 'float16'],
                           'Storage type of the ensemble file.')
_MEMBER = flags.DEFINE_integer(
    'member', None, 'Write this member (0, 1, ...) of one ensemble file '
    'alone, instead of stacking files.')
_AVERAGE = flags.DEFINE_bool(
    'average', False, "Write the mean of the files' parameters (snapshots of "
    'one run) instead of stacking them.')
flags.mark_flags_as_required(['output'])


def main(argv):
  paths, member = argv[1:], _MEMBER.value
  if member is not None and (len(paths) != 1 or _AVERAGE.value):
    cli.fail('--member takes one ensemble file, without --average')
  if member is None and len(paths) < 2:
    cli.fail('name two or more parameter files (--mode=export of each run)')
  with cli.reporting_errors():
    if member is not None:
      params = checkpoints.member_params(paths[0], member)
    elif _AVERAGE.value:
      params = checkpoints.average_params(paths)
    else:
      params = checkpoints.stack_params(paths)
    checkpoints.save_params(params, _OUTPUT.value, _DTYPE.value)
  if member is not None:
    written = f'member {member} of {paths[0]}'
  else:
    written = f"{len(paths)} {'averaged' if _AVERAGE.value else 'members'}"
  print(f'wrote {_OUTPUT.value} ({written})')


if __name__ == '__main__':
  app.run(main)
