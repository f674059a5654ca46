"""Output files and folders that a refused or failed command leaves as it
found them.

- `check_output_dir` / `check_output_file`: before the slow part, whether a
  folder can be created and written, or a file written; one-line
  ConfigError if not. Nothing is created.
- `created_for_run`: creates a folder; if the block fails before the run
  calls `keep()`, the folder is removed again with what the run wrote in it
  (only a folder this run created: an existing one is never touched).
- `atomic_write`: writes a file under a temporary name beside it and
  renames it when complete, so a crash never leaves half a file.
"""

from __future__ import annotations

import contextlib
import os
import pathlib
import shutil
import tempfile
from collections.abc import Callable, Iterator
from typing import IO

from dvn_jax.errors import ConfigError

PathLike = str | os.PathLike


def _read_umask() -> int:
  mask = os.umask(0o022)   # (read once, at import: os.umask sets it too)
  os.umask(mask)
  return mask


_UMASK = _read_umask()


def _nearest_existing(path: pathlib.Path) -> pathlib.Path:
  """`path` or its nearest ancestor that exists (a link counts, even a
  broken one)."""
  while not os.path.lexists(path) and path != path.parent:
    path = path.parent
  return path


def check_output_dir(path: PathLike, flag: str) -> None:
  """ConfigError unless `path` is a writable folder or can be created as
  one (its nearest existing ancestor is a writable folder)."""
  _check_writable(path, os.fspath(path), flag)


def check_output_file(path: PathLike, flag: str) -> None:
  """ConfigError unless a file can be written at `path` (not a folder; its
  folder writable or creatable)."""
  name = os.fspath(path)
  if name.endswith(os.sep) or os.path.isdir(name):
    raise ConfigError(f'{flag} {name!r} names a folder; name the file to '
                      'write')
  _check_writable(os.path.dirname(os.path.abspath(name)) if name else '',
                  name, flag)


def _check_writable(folder: PathLike, named: str, flag: str) -> None:
  """ConfigError naming `flag` and `named` (the path as given) unless
  `folder` is a writable folder or can be created."""
  if not named:
    raise ConfigError(f'{flag} is empty; name a path')
  target = pathlib.Path(os.path.abspath(folder))
  existing = _nearest_existing(target)
  if not existing.is_dir():
    what = 'it' if existing == pathlib.Path(os.path.abspath(named)) else existing
    raise ConfigError(f'cannot write to {flag} {named!r}: {what} is a file, '
                      'not a folder')
  try:
    with tempfile.TemporaryFile(dir=existing):
      pass
  except OSError as e:
    raise ConfigError(f'cannot write to {flag} {named!r} '
                      f'({e.strerror or type(e).__name__} in {existing}); '
                      'pass a path you can write to') from None


@contextlib.contextmanager
def created_for_run(path: PathLike) -> Iterator[Callable[[], None]]:
  """Creates folder `path` (and its parents); yields `keep()`. If the
  block raises before `keep()` was called, whatever of `path` this call
  created is removed, its contents included."""
  target = pathlib.Path(os.path.abspath(path))
  top = _nearest_existing(target)
  created = None if top == target else target
  while created is not None and created.parent != top:
    created = created.parent   # the outermost folder made here
  kept = False

  def keep() -> None:
    nonlocal kept
    kept = True

  target.mkdir(parents=True, exist_ok=True)
  try:
    yield keep
  except BaseException:
    if created is not None and not kept:
      shutil.rmtree(created, ignore_errors=True)
    raise


@contextlib.contextmanager
def atomic_write(path: PathLike, mode: str = 'wb') -> Iterator[IO]:
  """A file object writing `path` under a temporary name in its folder
  (created if need be), renamed to `path` when the block ends; on an error
  the temporary file (and any folder made for it) is removed. ConfigError
  if a folder stands at `path`."""
  path = os.path.abspath(path)
  if os.path.isdir(path):
    raise ConfigError(f'cannot write {path}: a folder of that name is in the '
                      'way; move it')
  with created_for_run(os.path.dirname(path)) as keep_folder:
    handle, temporary = tempfile.mkstemp(
        dir=os.path.dirname(path), prefix=f'.{os.path.basename(path)}.',
        suffix='.partial')
    try:
      with os.fdopen(handle, mode) as f:
        yield f
      os.chmod(temporary, 0o666 & ~_UMASK)   # as open() would have made it
      os.replace(temporary, path)
    except BaseException:
      with contextlib.suppress(OSError):
        os.remove(temporary)
      raise
    keep_folder()
