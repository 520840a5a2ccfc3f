"""Writing outputs without ever destroying what the suite did not write.

Shared by the grid runner (``experiments.store``) and the report (``analysis``), which must not import
``experiments``; hence it lives in the library. Four jobs:

- **Atomic, durable writes**: every file is written to a temporary sibling, flushed and ``fsync``-ed,
  renamed into place, and its directory ``fsync``-ed, so that after a crash or a power loss a reader
  sees the old file or the new one, never a torn one.
- **Permissions that follow the umask**: temporary files are created with mode ``0o666`` and
  directories with ``0o777``, both less the process's umask, as ``open`` and ``mkdir`` would (Python's
  ``tempfile`` would make them ``0600`` / ``0700``, unreadable by a colleague).
- **Owned output directories**: a directory is written into only when it is empty, absent, or holds the
  caller's marker file (it was written by that tool before); anything else is refused, never removed.
- **Leftover temporaries** of an interrupted write are recognised by their name pattern and removed.

Examples
--------
>>> import tempfile, pathlib
>>> root = pathlib.Path(tempfile.mkdtemp())
>>> write_atomic(root / "note.txt", "hello\\n")
>>> (root / "note.txt").read_text()
'hello\\n'
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import os
import re
import secrets
import shutil
import threading
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import BinaryIO

# A temporary sibling of ``name``: ``.<name>.<8 random characters>.tmp``. Python's ``tempfile`` names
# (``[a-z0-9_]{8}``, written by earlier versions) match as well as this module's (8 hex digits).
TEMP_FILE = re.compile(r"^\..+\.[a-z0-9_]{8}\.tmp$")
_umask_lock = threading.Lock()


class NotOurDirectoryError(ValueError):
    """An output directory holds files this tool did not write; nothing was written or removed."""


def current_umask() -> int:
    """The process's umask (read without changing it where ``/proc`` allows).

    Examples
    --------
    >>> 0 <= current_umask() <= 0o777
    True
    """
    with contextlib.suppress(OSError, ValueError):
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    with _umask_lock:  # the only portable way: set and restore (racy only against other umask setters)
        mask = os.umask(0o022)
        os.umask(mask)
    return mask


def temporary_name(path: Path) -> Path:
    """A fresh temporary sibling of ``path`` that :data:`TEMP_FILE` recognises."""
    return path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")


def fsync_directory(path: Path) -> None:
    """Flush a directory's entries (a rename into it) to disk; a no-op where directories cannot be opened."""
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    except OSError:
        return
    try:
        with contextlib.suppress(OSError):  # some file systems refuse fsync on a directory: nothing to do
            os.fsync(fd)
    finally:
        os.close(fd)


def make_directories(path: Path) -> None:
    """``mkdir -p`` with modes that follow the umask, flushing each new entry to its parent."""
    missing = [p for p in (path, *path.parents) if not p.exists()]
    path.mkdir(parents=True, exist_ok=True)
    for new in reversed(missing):
        fsync_directory(new.parent)


def write_atomic_with(path: Path, write: Callable[[BinaryIO], None]) -> None:
    """Let ``write`` fill a temporary sibling of ``path``, then make it ``path`` atomically and durably.

    Parameters
    ----------
    path : Path
        The final file. Its directory is created when missing.
    write : callable
        Called with a binary file object opened for writing; it must not close it.

    Raises
    ------
    OSError
        When the file cannot be written (disk full, no permission); the temporary file is removed and
        ``path`` keeps its old content.
    """
    make_directories(path.parent)
    tmp = temporary_name(path)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0), 0o666)
    try:
        with os.fdopen(fd, "wb") as fh:
            write(fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    fsync_directory(path.parent)


def write_atomic(path: Path, data: bytes | str) -> None:
    """Write ``data`` (text as UTF-8) to ``path`` atomically and durably (see :func:`write_atomic_with`)."""
    payload = data.encode() if isinstance(data, str) else data
    write_atomic_with(path, lambda fh: fh.write(payload))


def remove_leftover_temporaries(directories: Iterable[Path], pattern: re.Pattern = TEMP_FILE) -> int:
    """Remove the regular files named like ``pattern`` directly inside ``directories``; return the count.

    Only the caller's own temporary files match (by default :data:`TEMP_FILE`); directories, links and
    every other name are left alone. Call it only while no other writer can be mid-write there.
    """
    removed = 0
    for directory in directories:
        if not directory.is_dir():
            continue
        for entry in os.scandir(directory):
            if pattern.match(entry.name) and entry.is_file(follow_symlinks=False):
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(entry.path)
                    removed += 1
    return removed


def remove_leftover_staging(parent: Path, name: str) -> int:
    """Remove staging folders of ``parent/name`` that an interrupted publish left; return how many.

    Only folders named as :func:`make_staging_directory` and :func:`publish_directory` name them
    (``.<name>.<8 random characters>.tmp``, ``.<name>.old.<...>.tmp``) are removed, with their contents.
    Call it only while no other writer publishes ``name`` there.
    """
    pattern = re.compile(rf"^\.{re.escape(name)}(\.old)?\.[a-z0-9_]{{8}}\.tmp$")
    removed = 0
    if parent.is_dir():
        for entry in os.scandir(parent):
            if pattern.match(entry.name) and entry.is_dir(follow_symlinks=False):
                shutil.rmtree(entry.path, ignore_errors=True)
                removed += 1
    return removed


def is_empty_or_ours(directory: Path, marker: str) -> bool:
    """Whether ``directory`` is absent, empty, or holds the file ``marker`` (written by its owner).

    Examples
    --------
    >>> import tempfile, pathlib
    >>> d = pathlib.Path(tempfile.mkdtemp())
    >>> is_empty_or_ours(d, ".made-by-me")
    True
    >>> _ = (d / "thesis.tex").write_text("years of work")
    >>> is_empty_or_ours(d, ".made-by-me")
    False
    """
    if not directory.exists():
        return True
    if not directory.is_dir():
        return False
    return (directory / marker).is_file() or not any(directory.iterdir())


def claim_output_directory(directory: Path, marker: str, owner: str) -> None:
    """Create ``directory`` if needed and mark it as written by ``owner``; refuse a directory of others.

    Raises
    ------
    NotOurDirectoryError
        ``directory`` is a file, or a non-empty directory without ``marker``: it was not written by this
        tool, so nothing is written into it and nothing in it is removed.
    """
    if not is_empty_or_ours(directory, marker):
        kind = "is not a directory" if directory.exists() and not directory.is_dir() else "is not empty"
        raise NotOurDirectoryError(
            f"{directory} {kind} and was not written by {owner} (no {marker} file); "
            "give an empty or new directory, nothing was changed"
        )
    make_directories(directory)
    if not (directory / marker).is_file():
        write_atomic(directory / marker, f"written by {owner}; its contents may be replaced by it\n")


def make_staging_directory(parent: Path, name: str) -> Path:
    """A fresh hidden directory ``parent/.<name>.<random>.tmp`` whose mode follows the umask."""
    make_directories(parent)
    while True:
        path = temporary_name(parent / name)
        try:
            path.mkdir()
            return path
        except FileExistsError:
            continue


def publish_directory(staging: Path, target: Path, marker: str, owner: str) -> None:
    """Put the complete directory ``staging`` in the place of ``target``; remove the previous ``target``.

    ``target`` must be absent, empty or marked by ``marker`` (see :func:`claim_output_directory`), and
    ``staging`` (a sibling, from :func:`make_staging_directory`) gets the marker. Where the kernel can
    exchange two paths atomically (Linux ``renameat2``) there is no moment without a ``target``;
    elsewhere the old one is moved aside first. Only the replaced, marked directory is removed.

    Raises
    ------
    NotOurDirectoryError
        ``target`` holds files of others; ``staging`` is left as it is for the caller to remove.
    """
    if not is_empty_or_ours(target, marker):
        claim_output_directory(target, marker, owner)  # raises with the explanation
    if not (staging / marker).is_file():
        write_atomic(staging / marker, f"written by {owner}; its contents may be replaced by it\n")
    if target.exists() and _exchange(staging, target):
        old = staging  # the previous target now sits at the staging path
    else:
        old = None
        if target.exists():
            old = make_staging_directory(target.parent, f"{target.name}.old")
            os.replace(target, old)
        os.replace(staging, target)
    fsync_directory(target.parent)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def _exchange(a: Path, b: Path) -> bool:
    """Swap two paths atomically with Linux ``renameat2(RENAME_EXCHANGE)``; False where unsupported."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        renameat2 = libc.renameat2
    except (OSError, AttributeError):
        return False
    at_fdcwd, rename_exchange = -100, 2
    code = renameat2(at_fdcwd, os.fsencode(a), at_fdcwd, os.fsencode(b), rename_exchange)
    if code == 0:
        return True
    err = ctypes.get_errno()
    if err in (errno.ENOSYS, errno.EINVAL, errno.ENOTSUP, errno.EOPNOTSUPP):
        return False
    raise OSError(err, os.strerror(err), str(b))
