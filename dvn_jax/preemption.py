"""SIGTERM and Ctrl-C during training: finish the step, checkpoint, stop.

Preemptible TPUs and shared GPU schedulers send SIGTERM before killing a
job. `stop_requests()` turns SIGTERM and SIGINT into a flag that the
training loop polls between steps; the loop then saves a checkpoint at the
current step and raises `Preempted`, and the command line exits with
128 + the signal's number (143 for SIGTERM, 130 for Ctrl-C), the usual
"killed by a signal" status, so schedulers and scripts see that the run did
not finish. A second Ctrl-C interrupts at once.
"""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Callable, Iterator

from dvn_jax.errors import DvnError

SIGNALS = (signal.SIGTERM, signal.SIGINT)


class Preempted(DvnError):
  """Training stopped on a signal after saving a checkpoint."""

  def __init__(self, signal_number: int, step: int):
    name = signal.Signals(signal_number).name
    super().__init__(f'{name} received: stopped after step {step} and saved '
                     'a checkpoint there; rerun the same command to resume')
    self.exit_status = 128 + signal_number


@contextlib.contextmanager
def stop_requests() -> Iterator[Callable[[], int | None]]:
  """Yields a function returning the signal received so far, or None.

  Handlers are installed only in the main thread (Python's rule) and the
  previous ones are restored on exit.
  """
  received: list[int] = []

  def handler(signal_number, frame):
    del frame
    if received and signal_number == signal.SIGINT:
      raise KeyboardInterrupt   # a second Ctrl-C: stop now
    received.append(signal_number)

  previous = {}
  if threading.current_thread() is threading.main_thread():
    previous = {sig: signal.signal(sig, handler) for sig in SIGNALS}
  try:
    yield lambda: received[0] if received else None
  finally:
    for sig, old in previous.items():
      signal.signal(sig, old)
