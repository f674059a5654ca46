"""Shared command-line plumbing: one-line errors, quiet library output.

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
import traceback
import warnings
from collections.abc import Callable, Iterator
from typing import Any, NoReturn

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


class OrbaxReaderNoiseFilter(py_logging.Filter):
  """Drops asyncio's 'Task exception was never retrieved' reports of orbax's
  failed read tasks; they are logged (with a traceback) whenever the tasks
  are collected, which can be long after the failed restore."""

  def filter(self, record: py_logging.LogRecord) -> bool:
    if 'exception was never retrieved' not in str(record.msg):
      return True
    text = record.getMessage()
    if record.exc_info and record.exc_info[2] is not None:
      tb = record.exc_info[2]
      while tb is not None:
        text += tb.tb_frame.f_code.co_filename
        tb = tb.tb_next
    return 'orbax' not in text


def _late_read_callback(unraisable: Any) -> bool:
  """True for a failed restore's read finishing on a thread after its event
  loop closed: RuntimeError('Event loop is closed') from asyncio's
  call_soon_threadsafe, reported as 'Exception ignored in: None'."""
  error, trace = unraisable.exc_value, unraisable.exc_traceback
  if not isinstance(error, RuntimeError) or str(error) != 'Event loop is closed':
    return False
  frames = [frame.f_code.co_name for frame, _ in traceback.walk_tb(trace)]
  return 'call_soon_threadsafe' in frames


def _drop_orbax_reader_noise() -> None:
  """Silences the 'Exception ignored in <coroutine ...>' reports that orbax's
  unfinished read coroutines of a failed restore print when collected, and
  asyncio's reports of its failed read tasks (OrbaxReaderNoiseFilter)."""
  asyncio_logger = py_logging.getLogger('asyncio')
  if not any(isinstance(f, OrbaxReaderNoiseFilter)
             for f in asyncio_logger.filters):
    asyncio_logger.addFilter(OrbaxReaderNoiseFilter())
  previous = sys.unraisablehook

  def hook(unraisable):
    code = getattr(unraisable.object, 'cr_code', None)
    if code is not None and 'orbax' in code.co_filename:
      return
    if _late_read_callback(unraisable):
      return
    previous(unraisable)

  sys.unraisablehook = hook
  # Its read coroutines that never started warn when collected, maybe after
  # the one-line error: "coroutine ... was never awaited".
  warnings.filterwarnings('ignore', message='coroutine .* was never awaited',
                          category=RuntimeWarning)


def quiet_library_logs() -> None:
  """Every entry point calls this first: libraries' INFO lines filtered
  (`_QuietLibraries`), and the reports that orbax's reader threads and
  coroutines print after a failed restore of a damaged checkpoint dropped
  (`_drop_orbax_reader_noise`), so a fallback or refusal stays one line."""
  logging.get_absl_handler().addFilter(_QuietLibraries())
  _drop_orbax_reader_noise()


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
