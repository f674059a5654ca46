"""Command line: train, or evaluate a trained workdir.

  python -m dvn_jax.main --config=configs/horses.py --workdir=/tmp/horses
  python -m dvn_jax.main --config=configs/horses.py --workdir=/tmp/horses \
      --mode=evaluate

Training and evaluation are data parallel over every device of every process
(dvn_jax/parallel.py). Under SLURM, Open MPI or on a Cloud TPU pod slice,
start one process per host (or per GPU) with the same command; JAX finds the
others. Elsewhere, pass --coordinator_address=HOST:PORT --num_processes=N
--process_id=I to each process (launch/ has examples).
"""

from __future__ import annotations

import jax
from absl import app
from absl import flags
from absl import logging
from ml_collections import config_flags

from dvn_jax import param_files
from dvn_jax import cli
from dvn_jax import parallel
from dvn_jax import train

_CONFIG = config_flags.DEFINE_config_file(
    'config', None, 'Config file: path/to/config.py[:arg].', lock_config=True)
_WORKDIR = flags.DEFINE_string('workdir', None,
                               'Folder for checkpoints, metrics and config.')
_MODE = flags.DEFINE_enum(
    'mode', 'train', ['train', 'evaluate', 'export'],
    'train (resumes from --workdir if it holds a checkpoint); evaluate the '
    'latest checkpoint of --workdir, or the file --params; export the '
    'latest checkpoint\'s parameters to the file --params.')
_SPLIT = flags.DEFINE_string('split', 'test', 'Split that --mode=evaluate scores.')
_PARAMS = flags.DEFINE_string(
    'params', None, 'A parameter file (.npz) to evaluate or to export to; '
    'to evaluate, also several (a.npz,b.npz): their members as one ensemble; '
    'FILE:model is one model of a file of several (dvn_jax.ensemble).')
_DTYPE = flags.DEFINE_enum(
    'dtype', 'float32', list(param_files.DTYPES), 'Storage type of '
    '--mode=export (int8: kernels as int8 with a scale per column).')
_COORDINATOR = flags.DEFINE_string(
    'coordinator_address', None,
    'Multi-process runs outside SLURM/MPI/Cloud TPU: HOST:PORT of process 0.')
_NUM_PROCESSES = flags.DEFINE_integer(
    'num_processes', None, 'With --coordinator_address: how many processes.')
_PROCESS_ID = flags.DEFINE_integer(
    'process_id', None, 'With --coordinator_address: this process, 0..N-1.')
flags.mark_flags_as_required(['config'])


def main(argv):
  if len(argv) > 1:
    cli.fail(f'unexpected arguments: {" ".join(argv[1:])} (every option is '
             'a --flag)')
  cli.quiet_library_logs()
  if _COORDINATOR.value and (_NUM_PROCESSES.value is None or
                             _PROCESS_ID.value is None):
    cli.fail('--coordinator_address needs --num_processes and --process_id')
  parallel.initialize_distributed(_COORDINATOR.value, _NUM_PROCESSES.value,
                                  _PROCESS_ID.value)
  logging.info('JAX %s, process %d/%d, devices: %s', jax.__version__,
               jax.process_index(), jax.process_count(), jax.devices())
  if not _WORKDIR.value and not (_MODE.value == 'evaluate'
                                 and _PARAMS.value):
    cli.fail(f'--mode={_MODE.value} needs --workdir')
  if _MODE.value == 'export' and not _PARAMS.value:
    cli.fail('--mode=export needs --params=<file.npz> to write')
  if _MODE.value == 'export':
    model = param_files.split_section(_PARAMS.value)[1]
    if model is not None:
      cli.fail(f"--mode=export writes one model's file; name it without "
               f"':{model}' (python -m dvn_jax.ensemble MODEL=FILES joins "
               'files into one of several models)')
  with cli.reporting_errors():
    if _MODE.value == 'train':
      metrics = train.train_and_evaluate(_CONFIG.value, _WORKDIR.value)
      split = _CONFIG.value.data.eval_split
    elif _MODE.value == 'evaluate':
      split = _SPLIT.value
      if split == 'test':
        logging.warning('scoring the TEST split; while choosing '
                        'hyperparameters pass --split=val (paper protocol).')
      metrics = train.evaluate_checkpoint(_CONFIG.value, _WORKDIR.value, split,
                                          _PARAMS.value)
    else:
      train.export_params(_CONFIG.value, _WORKDIR.value, _PARAMS.value,
                          _DTYPE.value)
      print(f'wrote {_PARAMS.value}')
      return
  if metrics and jax.process_index() == 0:
    print(f'{split}: {train.format_metrics(metrics, _CONFIG.value)}')


if __name__ == '__main__':
  app.run(main, flags_parser=cli.make_flags_parser(_CONFIG))
