"""Output paths checked before the work, folders removed after a refusal,
files written whole or not at all (dvn_jax/files.py)."""

import os
import stat

import pytest

from dvn_jax import files
from dvn_jax.errors import ConfigError


def tree(path) -> dict[str, bytes | None]:
  """Every file (its bytes) and folder (None) under `path`."""
  return {os.path.relpath(os.path.join(root, name), path):
          (open(os.path.join(root, name), 'rb').read() if name in names
           else None)
          for root, dirs, names in os.walk(path) for name in dirs + names}


def test_output_folders_are_checked_without_creating_anything(tmp_path):
  (tmp_path / 'file').write_text('kept')
  before = tree(tmp_path)
  files.check_output_dir(tmp_path / 'new' / 'deeper', '--output_dir')
  files.check_output_dir(tmp_path, '--output_dir')
  for path, needle in ((tmp_path / 'file', 'it is a file, not a folder'),
                       (tmp_path / 'file' / 'sub', 'file is a file'),
                       ('', '--output_dir is empty')):
    with pytest.raises(ConfigError, match=needle) as error:
      files.check_output_dir(path, '--output_dir')
    assert '\n' not in str(error.value)
  assert tree(tmp_path) == before


def test_output_files_are_checked_without_creating_anything(tmp_path):
  (tmp_path / 'file').write_text('kept')
  before = tree(tmp_path)
  files.check_output_file(tmp_path / 'new' / 'out.npz', '--params')
  files.check_output_file(tmp_path / 'file', '--params')   # replaced later
  for path, needle in ((tmp_path, 'names a folder'),
                       (f'{tmp_path / "new"}{os.sep}', 'names a folder'),
                       (tmp_path / 'file' / 'out.npz', 'is a file, not a'),
                       ('', 'is empty')):
    with pytest.raises(ConfigError, match=needle):
      files.check_output_file(path, '--params')
  assert tree(tmp_path) == before


def test_a_folder_that_refuses_writes_is_one_line(tmp_path, monkeypatch):
  # (Tests may run as root, whom chmod does not stop: the refusal is what
  # the operating system would answer.)
  def refuse(*args, **kwargs):
    raise PermissionError(13, 'Permission denied')
  monkeypatch.setattr(files.tempfile, 'TemporaryFile', refuse)
  with pytest.raises(ConfigError, match=(
      r"cannot write to --workdir '.*run' \(Permission denied in .*\)")):
    files.check_output_dir(tmp_path / 'run', '--workdir')
  assert list(tmp_path.iterdir()) == []


def test_a_failed_run_removes_only_the_folders_it_created(tmp_path):
  with pytest.raises(RuntimeError):
    with files.created_for_run(tmp_path / 'a' / 'b') as _:
      (tmp_path / 'a' / 'b' / 'partial.png').write_bytes(b'x')
      raise RuntimeError('refused')
  assert list(tmp_path.iterdir()) == []
  (tmp_path / 'old').mkdir()
  (tmp_path / 'old' / 'keep.txt').write_text('mine')
  with pytest.raises(KeyboardInterrupt):
    with files.created_for_run(tmp_path / 'old' / 'new'):
      raise KeyboardInterrupt
  assert tree(tmp_path) == {'old': None, 'old/keep.txt': b'mine'}
  with pytest.raises(RuntimeError):
    with files.created_for_run(tmp_path / 'kept') as keep:
      keep()     # e.g. after the first training step
      raise RuntimeError('diverged later')
  assert (tmp_path / 'kept').is_dir()


def test_atomic_writes_leave_the_old_file_or_nothing(tmp_path):
  target = tmp_path / 'out.npz'
  target.write_bytes(b'old')
  with pytest.raises(OSError):
    with files.atomic_write(target) as f:
      f.write(b'half')
      raise OSError('disk full')
  assert tree(tmp_path) == {'out.npz': b'old'}
  new = tmp_path / 'new' / 'out.npz'
  with pytest.raises(OSError):
    with files.atomic_write(new) as f:
      raise OSError('disk full')
  assert tree(tmp_path) == {'out.npz': b'old'}   # no folder left either
  (tmp_path / 'folder.json').mkdir()
  with pytest.raises(ConfigError, match='folder.json: a folder of that name'):
    with files.atomic_write(tmp_path / 'folder.json', 'w') as f:
      f.write('{}')
  assert tree(tmp_path / 'folder.json') == {}
  with files.atomic_write(new) as f:
    f.write(b'whole')
  assert tree(tmp_path / 'new') == {'out.npz': b'whole'}
  mode = stat.S_IMODE(os.stat(new).st_mode)
  umask = os.umask(0)
  os.umask(umask)
  assert mode == 0o666 & ~umask      # as open() makes files, not 0600
