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

`--member=K` with one ensemble file writes its member K alone (to continue
training that network: `--config.init_from=FILE`):

  python -m dvn_jax.ensemble --member=0 --output=/tmp/m0.npz \
      released/horses_dvn_long_pair.npz

Arguments MODEL=FILES write one file of several models instead, each the
ensemble of its FILES (one, or several named with commas), read back as
FILE:MODEL wherever a parameter file is named; e.g. the value nets and the
FCNs that start and join their ascent, as one file with int8 kernels (a
float32 scale per column, float16 for the rest):

  python -m dvn_jax.ensemble --dtype=int8 --output=/tmp/best.npz \
      dvn=/tmp/run1.npz,/tmp/run2.npz fcn=/tmp/fcns.npz
  python -m dvn_jax.main --config=configs/horses.py --mode=evaluate \
      --params=/tmp/best.npz:dvn --config.eval.fcn.params=/tmp/best.npz:fcn
"""

from __future__ import annotations

import os

from absl import app
from absl import flags

from dvn_jax import param_files
from dvn_jax import cli
from dvn_jax import files

_OUTPUT = flags.DEFINE_string('output', None, 'The ensemble file to write.')
_DTYPE = flags.DEFINE_enum(
    'dtype', 'float32', list(param_files.DTYPES), 'Storage type of the '
    'ensemble file (int8: kernels as int8 with a scale per column).')
_MEMBER = flags.DEFINE_integer(
    'member', None, 'Write this member (0, 1, ...) of one ensemble file '
    'alone, instead of stacking files.')
flags.mark_flags_as_required(['output'])


def is_section(arg: str) -> bool:
  """Whether `arg` is MODEL=FILES: a bare name before '=' (not an existing
  file, nor a path like /runs/lr=0.1/a.npz)."""
  return ('=' in arg and not os.path.exists(arg) and
          param_files.is_model_name(arg.split('=', 1)[0]))


def parse_sections(args: list[str]) -> dict[str, str] | None:
  """{model: files} of MODEL=FILES arguments; None when there are none
  (plain files to stack)."""
  named = [arg for arg in args if is_section(arg)]
  if not named:
    return None
  if len(named) != len(args):
    cli.fail('name every argument as MODEL=FILES, or none of them')
  sections = dict(arg.split('=', 1) for arg in args)
  if len(sections) != len(args):
    cli.fail(f'a model is named twice in {args}')
  empty = [name for name, files in sections.items() if not files]
  if empty:
    cli.fail(f'model {empty[0]!r} names no files; write it as '
             f'{empty[0]}=a.npz[,b.npz]')
  return sections


def main(argv):
  paths, member = argv[1:], _MEMBER.value
  with cli.reporting_errors():
    files.check_output_file(_OUTPUT.value, '--output')
  sections = parse_sections(paths)
  if sections is not None:
    if member is not None:
      cli.fail('MODEL=FILES arguments do not take --member')
    with cli.reporting_errors():
      param_files.save_sections(
          {name: param_files.read_params_list(files)
           for name, files in sections.items()}, _OUTPUT.value, _DTYPE.value)
    print(f'wrote {_OUTPUT.value} (models {", ".join(sections)})')
    return
  if member is not None and len(paths) != 1:
    cli.fail('--member takes one ensemble file')
  if member is None and len(paths) < 2:
    cli.fail('name two or more parameter files (--mode=export of each run)')
  with cli.reporting_errors():
    if member is not None:
      params = param_files.member_params(paths[0], member)
    else:
      params = param_files.stack_params(paths)
    param_files.save_params(params, _OUTPUT.value, _DTYPE.value)
  if member is not None:
    written = f'member {member} of {paths[0]}'
  else:
    written = f'{len(paths)} members'
  print(f'wrote {_OUTPUT.value} ({written})')


if __name__ == '__main__':
  app.run(main, flags_parser=cli.make_flags_parser())
