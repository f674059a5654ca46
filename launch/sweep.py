r"""Expands a sweep into one training command per variant.

  python launch/sweep.py --config=configs/horses.py \
      --sweep=configs/horses_sweep.py --workdir_root=/ckpt/horses_sweep
prints one `python -m dvn_jax.main ...` line per variant (run them however
you like: a shell loop, GNU parallel, one per machine);

  python launch/sweep.py ... --slurm_array=sweep.sbatch [--submit]
writes a SLURM job-array script, one array task per variant (each task
runs launch/slurm_gpu.sbatch's command on its own allocation), and submits
it with --submit. Every variant's overrides are checked against the config
first, so a typo fails here, not in the queue.

Common overrides for every variant: --set=eval.batch_size=40 (repeatable).
"""

from __future__ import annotations

import os
import shlex
import subprocess
import sys

from absl import app
from absl import flags

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)

from dvn_jax import cli  # noqa: E402  pylint: disable=g-import-not-at-top
from dvn_jax import files  # noqa: E402  pylint: disable=g-import-not-at-top
from dvn_jax import sweeps  # noqa: E402  pylint: disable=g-import-not-at-top

_CONFIG = flags.DEFINE_string('config', 'configs/horses.py',
                              'Base config file (path[:arg]).')
_SWEEP = flags.DEFINE_string('sweep', 'configs/horses_sweep.py',
                             'Sweep file (path[:arg]) with get_sweep(arg).')
_ROOT = flags.DEFINE_string('workdir_root', None,
                            'Each variant trains in <root>/<variant>.')
_SET = flags.DEFINE_multi_string('set', [], 'field=value for every variant.')
_SLURM_ARRAY = flags.DEFINE_string(
    'slurm_array', None, 'Write a SLURM job-array script here instead of '
    'printing the commands.')
_SUBMIT = flags.DEFINE_bool('submit', False, 'sbatch the --slurm_array script.')
_GPUS = flags.DEFINE_integer('gpus_per_variant', 1,
                             'GPUs (processes) per array task.', lower_bound=1)
_TIME = flags.DEFINE_string('time', '04:00:00', 'SLURM time limit per task.')
flags.mark_flags_as_required(['workdir_root'])


def variant_commands(config: str, sweep: dict[str, sweeps.Overrides],
                     root: str, common: sweeps.Overrides
                     ) -> dict[str, list[str]]:
  """Variant -> argv of its training command."""
  return {name: ['python', '-m', 'dvn_jax.main', f'--config={config}',
                 f'--workdir={os.path.join(root, name)}',
                 *sweeps.config_args({**common, **overrides})]
          for name, overrides in sweep.items()}


def slurm_array_script(commands: dict[str, list[str]], gpus: int,
                       time_limit: str) -> str:
  """A job array: task i runs variant i, one process per GPU via srun."""
  lines = [
      '#!/usr/bin/env bash',
      '#SBATCH --job-name=dvn_sweep',
      f'#SBATCH --array=0-{len(commands) - 1}',
      '#SBATCH --nodes=1',
      f'#SBATCH --ntasks-per-node={gpus}',
      f'#SBATCH --gres=gpu:{gpus}',
      f'#SBATCH --time={time_limit}',
      '#SBATCH --output=%x_%A_%a.log',
      '# Variants, in order: ' + ', '.join(commands),
      'set -euo pipefail',
      f'cd {shlex.quote(REPO)}',
      'commands=(',
      *[f'  {shlex.quote(shlex.join(argv))}' for argv in commands.values()],
      ')',
      '# One process per GPU; jax.distributed finds the others through SLURM.',
      'eval "srun ${commands[$SLURM_ARRAY_TASK_ID]}"',
  ]
  return '\n'.join(lines) + '\n'


def submit(script: str) -> None:
  """sbatch `script`; one error line if sbatch is missing or refuses it."""
  try:
    subprocess.run(['sbatch', script], check=True)
  except FileNotFoundError:
    cli.fail(f'sbatch not found: this machine has no SLURM; submit {script} '
             'from a login node')
  except subprocess.CalledProcessError as e:
    cli.fail(f'sbatch refused {script} (exit status {e.returncode}; its '
             'message is above)')


def main(argv):
  del argv
  with cli.reporting_errors():
    if _SLURM_ARRAY.value:
      files.check_output_file(_SLURM_ARRAY.value, '--slurm_array')
    config = sweeps.load_config(_CONFIG.value)
    sweep = sweeps.load_sweep(_SWEEP.value)
    common = sweeps.parse_sets(_SET.value)
    sweeps.check_overrides(config, common)
    for name, overrides in sweep.items():
      sweeps.check_overrides(config, overrides, name)
    commands = variant_commands(_CONFIG.value, sweep,
                                os.path.abspath(_ROOT.value), common)
    if not _SLURM_ARRAY.value:
      for argv in commands.values():
        print(shlex.join(argv))
      return
    with files.atomic_write(_SLURM_ARRAY.value, 'w') as f:
      f.write(slurm_array_script(commands, _GPUS.value, _TIME.value))
    print(f'wrote {_SLURM_ARRAY.value} ({len(commands)} array tasks)')
    if _SUBMIT.value:
      submit(_SLURM_ARRAY.value)
    else:
      print(f'submit with: sbatch {_SLURM_ARRAY.value}')


if __name__ == '__main__':
  app.run(main, flags_parser=cli.make_flags_parser())
