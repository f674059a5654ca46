"""Command line: train, or evaluate a trained workdir.

  python -m dvn_jax.main --config=configs/horses.py --workdir=/tmp/horses
  python -m dvn_jax.main --config=configs/horses.py --workdir=/tmp/horses \
      --mode=evaluate
"""

from __future__ import annotations

import logging as py_logging
import sys

import jax
from absl import app
from absl import flags
from absl import logging
from ml_collections import config_flags

from dvn_jax import train
from dvn_jax.errors import DvnError

_CONFIG = config_flags.DEFINE_config_file(
    'config', None, 'Config file: path/to/config.py[:arg].', lock_config=True)
_WORKDIR = flags.DEFINE_string('workdir', None,
                               'Folder for checkpoints, metrics and config.')
_MODE = flags.DEFINE_enum('mode', 'train', ['train', 'evaluate'],
                          'train (resumes from --workdir if it holds a '
                          'checkpoint) or evaluate its latest checkpoint.')
_SPLIT = flags.DEFINE_string('split', 'test', 'Split that --mode=evaluate scores.')
flags.mark_flags_as_required(['config', 'workdir'])

# Libraries whose INFO lines drown the training log (orbax logs ~30 lines per
# checkpoint); their warnings and errors still show.
_QUIET_AT_INFO = ('/orbax/', '/jax/_src/xla_bridge.py')


class _QuietLibraries(py_logging.Filter):

  def filter(self, record: py_logging.LogRecord) -> bool:
    return record.levelno >= py_logging.WARNING or not any(
        part in record.pathname for part in _QUIET_AT_INFO)


def _fail(message: str) -> None:
  print(f'error: {message}', file=sys.stderr)
  sys.exit(2)


def parse_flags(argv: list[str]) -> list[str]:
  """absl flag parsing with one-line errors instead of tracebacks."""
  try:
    remaining = flags.FLAGS(argv)
    _CONFIG.value.to_dict()  # the config file loads lazily: fail here if bad
    return remaining
  except flags.Error as e:
    lines = [line.strip() for line in str(e).splitlines() if line.strip()]
    if any(line.startswith('Traceback') for line in lines):  # from get_config
      _fail(f'{lines[0].split(":")[0]}: {lines[-1]}')
    _fail(' '.join(lines))
  except OSError as e:  # the config file is missing or does not import
    lines = [line.strip() for line in str(e).splitlines() if line.strip()]
    _fail(f'cannot load --config: {lines[-1]}')
  except (AttributeError, KeyError) as e:  # a --config.<field> that is not there
    field = str(e).strip('"\'')
    overrides = [a.split('=')[0] for a in argv[1:] if a.startswith('--config.')]
    culprit = next((a for a in overrides if field in a.split('.')), None)
    _fail(f'unknown config field {field!r}'
          + (f' in {culprit}' if culprit else '')
          + '; check the name against the config file (its get_config)')
  except (ValueError, TypeError) as e:  # raised by the config file itself
    _fail(f'bad --config: {e}')
  return []  # unreachable


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f'unexpected arguments: {" ".join(argv[1:])}')
  logging.get_absl_handler().addFilter(_QuietLibraries())
  logging.info('JAX %s, process %d/%d, devices: %s', jax.__version__,
               jax.process_index(), jax.process_count(), jax.devices())
  try:
    if _MODE.value == 'train':
      metrics = train.train_and_evaluate(_CONFIG.value, _WORKDIR.value)
      split = _CONFIG.value.data.eval_split
    else:
      split = _SPLIT.value
      metrics = train.evaluate_checkpoint(_CONFIG.value, _WORKDIR.value, split)
  except DvnError as e:
    print(f'error: {e}', file=sys.stderr)
    sys.exit(1)
  if metrics:
    print(f'{split}: mean IoU {metrics["mean_iou"]:.2f}, '
          f'global IoU {metrics["global_iou"]:.2f}')


if __name__ == '__main__':
  app.run(main, flags_parser=parse_flags)
