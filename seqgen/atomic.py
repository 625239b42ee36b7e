"""Atomic file writes: every file seqgen writes appears whole or not at all."""

from __future__ import annotations

import errno
import os
import tempfile
from pathlib import Path

from .errors import SeqgenError


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write via a temporary file in the same directory, fsync, then rename over `path`.

    A crash at any moment leaves either the old file or the new one, never half a file. A failed
    write (a full disk, say) is a SeqgenError naming `path`, with `path` as it was.
    """
    path = Path(path)
    try:
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    except OSError as e:
        raise _write_error(path, e) from None
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o666 & ~_UMASK)  # mkstemp makes 0600; give the file the usual mode
        os.replace(tmp, path)
        _sync_directory(path.parent)
    except BaseException as e:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        if isinstance(e, OSError):
            raise _write_error(path, e) from None
        raise


def atomic_link(source: Path, path: Path) -> None:
    """Make `path` another name for the file `source` (a hard link: no data is copied, and
    replacing `source` later leaves `path` as it was), or an atomic copy where links fail."""
    path = Path(path)
    if path.exists() and os.path.samefile(source, path):
        return  # already so (a run resumed after linking): renaming a link onto itself would leave tmp
    tmp = path.with_name(f".{path.name}.link.tmp")
    try:
        tmp.unlink(missing_ok=True)
        os.link(source, tmp)
        os.replace(tmp, path)
        _sync_directory(path.parent)
    except OSError:
        tmp.unlink(missing_ok=True)
        atomic_write_bytes(path, Path(source).read_bytes())


def _sync_directory(directory: Path) -> None:
    # The rename itself reaches the disk only when the directory does (POSIX; not on Windows).
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _write_error(path: Path, e: OSError) -> SeqgenError:
    reason = "no space left on the device" if e.errno == errno.ENOSPC else (e.strerror or str(e))
    return SeqgenError(f"could not write {path}: {reason} (what was there before is unchanged)")


def atomic_write_text(path: Path, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def _read_umask() -> int:
    mask = os.umask(0)  # the only way to read it is to set it: done once, at import
    os.umask(mask)
    return mask


_UMASK = _read_umask()
