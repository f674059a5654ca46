"""Shared command-line plumbing: one-line errors, quiet library logs.

Every entry point (`main`, `predict`) parses its flags with
`make_flags_parser` and runs its work inside `reporting_errors`, so a bad
flag, config field, file or value ends the program with one line starting
`error:` and a non-zero exit status, never a traceback.
"""

from __future__ import annotations

import contextlib
import logging as py_logging
import os
import sys
from collections.abc import Callable, Iterator
from typing import NoReturn

from absl import flags
from absl import logging

from dvn_jax import preemption
from dvn_jax.errors import DvnError

# Libraries whose INFO lines drown the training log (orbax logs ~30 lines per
# checkpoint); their warnings and errors still show.
_QUIET_AT_INFO = ('/orbax/', '/jax/_src/xla_bridge.py')


class _QuietLibraries(py_logging.Filter):

  def filter(self, record: py_logging.LogRecord) -> bool:
    return record.levelno >= py_logging.WARNING or not any(
        part in record.pathname for part in _QUIET_AT_INFO)


def quiet_library_logs() -> None:
  logging.get_absl_handler().addFilter(_QuietLibraries())


def fail(message: str, status: int = 2) -> NoReturn:
  """Prints `error: message` as the last line of stderr and exits."""
  print(f'error: {message}', file=sys.stderr, flush=True)
  _silence_stderr()
  sys.exit(status)


def _silence_stderr() -> None:
  """Points file descriptor 2 at /dev/null, so that what library threads
  print as the process exits (orbax's readers of a damaged checkpoint,
  tensorstore, asyncio reports) cannot follow the one-line error."""
  try:
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 2)
    os.close(devnull)
  except OSError:
    pass


def make_flags_parser(*config_flags: flags.FlagHolder
                      ) -> Callable[[list[str]], list[str]]:
  """An absl `flags_parser` that reports bad flags and configs in one line
  (of each of `config_flags` that was given; none for a program without a
  config)."""

  def parse(argv: list[str]) -> list[str]:
    loading = config_flags[0].name if config_flags else 'config'
    try:
      remaining = flags.FLAGS(argv)
      # The configs load lazily: fail here if one is bad.
      for holder in config_flags:
        loading = holder.name
        if holder.value is not None:
          holder.value.to_dict()
      return remaining
    except flags.Error as e:
      lines = [line.strip() for line in str(e).splitlines() if line.strip()]
      if any(line.startswith('Traceback') for line in lines):  # get_config
        # lines[0]: 'flag --config=FILE[:arg]: Error whilst parsing ...';
        # keep the flag with its `:arg` (the colon there has no space).
        fail(f'{lines[0].split(": ")[0]}: {lines[-1]}')
      fail(' '.join(lines))
    except OSError as e:  # the config file is missing or does not import
      lines = [line.strip() for line in str(e).splitlines() if line.strip()]
      fail(f'cannot load --{loading}: {lines[-1]}')
    except (AttributeError, KeyError) as e:  # --config.<field> not there
      # ml_collections' message: the field, then maybe 'Did you mean ...'.
      # (An AttributeError wraps the KeyError.)
      while e.args and isinstance(e.args[0], BaseException):
        e = e.args[0]
      message = str(e.args[0]) if e.args else str(e)
      field, *hint = [line.strip().strip('"\'')
                      for line in message.splitlines() if line.strip()]
      overrides = [a.split('=')[0] for a in argv[1:]
                   if a.startswith('--config.')]
      culprit = next((a for a in overrides if field in a.split('.')), None)
      fail(f'unknown config field {field!r}'
           + (f' in {culprit}' if culprit else '')
           + (f' ({" ".join(hint)})' if hint else '')
           + '; check the name against the config file (its get_config)')
    except (ValueError, TypeError) as e:  # raised by the config file itself
      fail(f'bad --config: {e}')

  return parse


def check_whole_numbers(holder: flags.FlagHolder, minimum: int = 1,
                        words: tuple[str, ...] = ()) -> None:
  """Makes parsing refuse, in one line, a list flag with an entry that is
  neither a whole number >= `minimum` nor one of `words`."""

  def valid(values: list[str]) -> bool:
    return all(v in words or (v.lstrip('-').isdigit() and int(v) >= minimum)
               for v in values)

  also = ''.join(f" or '{w}'" for w in words)
  flags.register_validator(
      holder.name, valid,
      message=f'--{holder.name} takes whole numbers >= {minimum}{also}')


@contextlib.contextmanager
def reporting_errors() -> Iterator[None]:
  """Turns a DvnError into one `error:` line and exit status 1."""
  try:
    yield
  except preemption.Preempted as e:
    print(str(e), file=sys.stderr)
    sys.exit(e.exit_status)
  except DvnError as e:
    fail(str(e), status=1)
