"""Atomic file writes, used for everything snnsim saves (model files, checkpoints, metrics).

The content goes to a temporary file in the destination's directory, which is flushed,
fsync'ed and renamed over the target (``os.replace``); the directory is then fsync'ed so the
rename is durable. A crash or an error leaves either the old file or the new one, never a torn
one, and no temporary file behind. The new file keeps the permission bits of the file it
replaces (else ``0o666`` less the umask, not mkstemp's ``0o600``).
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path
from typing import IO, Any, Callable

__all__ = ["atomic_write"]


def atomic_write(
    path: str | os.PathLike[str], write: Callable[[IO[Any]], object], mode: str = "wb"
) -> None:
    """Call ``write(f)`` on a temporary file opened with ``mode`` next to ``path``, then
    rename it to ``path``. Parent directories are created; ``write``'s return value is ignored
    (so ``f.write`` itself may be passed)."""
    target = Path(os.path.abspath(os.fspath(path)))
    target.parent.mkdir(parents=True, exist_ok=True)
    perms = _file_mode(target)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    try:
        with os.fdopen(fd, mode) as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, perms)
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    _fsync_dir(target.parent)


def _file_mode(target: Path) -> int:
    try:
        return os.stat(target).st_mode & 0o777
    except OSError:
        umask = os.umask(0)
        os.umask(umask)
        return 0o666 & ~umask


def _fsync_dir(directory: Path) -> None:
    """Best effort: not every platform can fsync a directory."""
    try:
        dfd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(dfd)
    except OSError:
        pass
    finally:
        os.close(dfd)
