"""Atomic file writes: every file seqgen writes appears whole or not at all."""

from __future__ import annotations

import contextlib
import errno
import os
import re
import signal
import stat
import tempfile
import threading
from pathlib import Path

from .errors import SeqgenError


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write via a temporary file in the same directory, fsync, then rename over `path`.

    A crash at any moment leaves either the old file or the new one, never half a file. A failed
    write (a full disk, say) is a SeqgenError naming `path`, with `path` as it was. Only a
    regular file is ever replaced (through a symbolic link, the file it points to): a character
    device or a FIFO (/dev/null, /dev/stdout, a named pipe) is written in place, as a shell's
    `>` would, and anything else (a directory, a socket, a disk) is refused.
    """
    path = Path(path)
    kind = refuse_other(path)
    if kind == "stream":
        return _write_in_place(path, data)
    if kind == "file" and path.is_symlink():
        path = Path(os.path.realpath(path))  # replace the file the link names, and keep the link
    tmp = None
    try:
        with _signals_held():  # Ctrl-C or SIGTERM raise only once `tmp` is known, so it is removed
            fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o666 & ~_UMASK)  # mkstemp makes 0600; give the file the usual mode
        os.replace(tmp, path)
        _sync_directory(path.parent)
    except BaseException as e:
        if tmp is not None:
            try:
                os.unlink(tmp)
            except FileNotFoundError:
                pass
        if isinstance(e, OSError):
            raise _write_error(path, e) from None
        raise


def output_kind(path: Path) -> str:
    """What writing to `path` means: "new" (nothing there), "file" (a regular file, replaced
    whole), "stream" (a character device or FIFO, written in place) or "other" (refused)."""
    try:
        st = os.stat(path)  # through symbolic links: /dev/stdout -> /proc/self/fd/1 -> a pipe
    except FileNotFoundError:
        return "other" if os.path.islink(path) else "new"  # a dangling link: where would it go?
    except OSError:
        return "new"  # unreadable: the write itself gives the reason
    if stat.S_ISREG(st.st_mode):
        # A regular file behind a file descriptor (/dev/stdout redirected to a file) is written
        # in place: the shell holds that file open, and a rename would leave it behind.
        return "stream" if _through_descriptor(path) else "file"
    return "stream" if stat.S_ISCHR(st.st_mode) or stat.S_ISFIFO(st.st_mode) else "other"


_DESCRIPTOR = re.compile(r"/(?:proc/(?:self|thread-self|\d+)|dev)/fd/\d+")


@contextlib.contextmanager
def _signals_held():
    """Hold SIGINT and SIGTERM back (POSIX) while the block runs: their handlers run after it."""
    held = {signal.SIGINT, signal.SIGTERM}
    if not hasattr(signal, "pthread_sigmask") or threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.pthread_sigmask(signal.SIG_BLOCK, held)
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)


def refuse_other(path: Path) -> str:
    """`output_kind(path)`, unless it is "other": then a SeqgenError."""
    kind = output_kind(path)
    if kind == "other":
        raise SeqgenError(f"{path}: not a regular file, a device or a pipe; not writing there")
    return kind


def _through_descriptor(path: Path) -> bool:
    """Whether `path`, or a symbolic link on the way from it, names an open file descriptor
    (/dev/stdout -> /proc/self/fd/1 -> the file the shell redirected it to)."""
    current = os.path.abspath(path)
    for _ in range(40):  # the kernel's own limit on links followed
        if _DESCRIPTOR.fullmatch(current):
            return True
        if not os.path.islink(current):
            return False
        current = os.path.join(os.path.dirname(current), os.readlink(current))
    return False


def _write_in_place(path: Path, data: bytes) -> None:
    try:
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CLOEXEC)  # append: after what a redirected stdout holds
        try:
            write_all(fd, data)
        finally:
            os.close(fd)
    except OSError as e:
        if e.errno == errno.EPIPE:
            raise  # the reader left: exit 141, as on stdout
        raise _write_error(path, e, replaced=False) from None


def write_all(fd: int, data: bytes) -> None:
    """All of `data` to a file descriptor, or an OSError: a write that a signal or a closing pipe
    cuts short is continued (or fails), never silently dropped."""
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


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


def _write_error(path: Path, e: OSError, replaced: bool = True) -> SeqgenError:
    reason = "no space left on the device" if e.errno == errno.ENOSPC else (e.strerror or str(e))
    unchanged = " (what was there before is unchanged)" if replaced else ""
    return SeqgenError(f"could not write {path}: {reason}{unchanged}")


def atomic_write_text(path: Path, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def _read_umask() -> int:
    mask = os.umask(0)  # the only way to read it is to set it: done once, at import
    os.umask(mask)
    return mask


_UMASK = _read_umask()
