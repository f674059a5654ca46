"""The command-line layer: one-line errors and quiet library output
(dvn_jax/cli.py)."""

import asyncio
import logging
import types

from dvn_jax import cli


def test_orbax_read_task_reports_are_dropped_and_others_kept():
  """asyncio logs a failed orbax read task when it is collected, possibly
  after the one-line error was printed; that report must not reach stderr."""
  noise = cli.OrbaxReaderNoiseFilter()

  def record(message):
    return logging.LogRecord('asyncio', logging.ERROR, __file__, 1, message,
                             None, None)
  orbax_task = ('Task exception was never retrieved\nfuture: <Task finished '
                "coro=<async_deserialize() done, defined at /venv/orbax/"
                "checkpoint/serialization.py:400> exception=ValueError('x')>")
  other_task = ('Task exception was never retrieved\nfuture: <Task finished '
                "coro=<fetch() done, defined at /app/client.py:3>>")
  assert not noise.filter(record(orbax_task))
  assert noise.filter(record(other_task))
  assert noise.filter(record('Unclosed client session in orbax'))


def test_a_failed_restores_late_read_callback_is_recognised_and_nothing_else():
  """The 'Event loop is closed' report of a read finishing after a failed
  restore is dropped as noise; the same error raised elsewhere is not."""
  loop = asyncio.new_event_loop()
  loop.close()
  try:
    loop.call_soon_threadsafe(print)
  except RuntimeError as error:
    late = error
  report = lambda e: types.SimpleNamespace(
      exc_value=e, exc_traceback=e.__traceback__, object=None)
  assert cli._late_read_callback(report(late))
  for other in (RuntimeError('Event loop is closed'), ValueError('x')):
    try:
      raise other
    except Exception as error:  # pylint: disable=broad-except
      assert not cli._late_read_callback(report(error))
