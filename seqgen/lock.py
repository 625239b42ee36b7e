"""An exclusive lock on a directory that seqgen writes, so that one process at a time writes it.

The lock is an `flock` on a lock file: the operating system releases it when the process ends,
however it ends, so a lock is never left stale.
"""

from __future__ import annotations

import errno
import fcntl
import os
import stat
from pathlib import Path

from .atomic import _UMASK
from .errors import SeqgenError

LOCK = ".seqgen.lock"


class Lock:
    """An exclusive lock on `directory` (made if missing) held through the file LOCK in it, or
    through `name` beside it in its parent (for a directory that is replaced whole, like an
    encoded corpus). A second process is refused at once, told which PID holds it."""

    def __init__(self, directory: Path, *, beside: bool = False, option: str = "--out"):
        directory = Path(directory)
        self.target = directory.parent if beside else directory  # where the lock file lives
        self.path = directory.parent / f".{directory.name}.seqgen.lock" if beside else directory / LOCK
        self.made: list[Path] = []  # directories made for the lock, removed again if nothing else came there
        self.fd: int | None = None
        try:
            self._acquire(directory, option)
        except BaseException:
            self._undo()
            raise

    def _make_directories(self) -> None:
        for parent in reversed([self.target, *self.target.parents]):
            if not parent.exists():
                try:
                    parent.mkdir()
                    self.made.append(parent)
                except FileExistsError:
                    pass
                except OSError as e:
                    raise SeqgenError(f"could not make {parent}: {e.strerror or e}") from None
        if not self.target.is_dir():
            raise SeqgenError(f"{self.target}: exists and is not a directory")

    def _acquire(self, directory: Path, option: str) -> None:
        for _ in range(100):
            self._make_directories()  # again after the last holder removed those it had made
            try:
                # Never through a link, nor into a FIFO: the lock file is seqgen's own, or refused.
                fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC | os.O_NOFOLLOW | os.O_NONBLOCK,
                             0o666 & ~_UMASK)
            except FileNotFoundError:
                continue  # its directory went with the last holder, just now
            except OSError as e:
                why = "a symbolic link" if e.errno == errno.ELOOP else (e.strerror or str(e))
                raise SeqgenError(f"could not take the lock {self.path}: {why}") from None
            if not stat.S_ISREG(os.fstat(fd).st_mode):
                os.close(fd)
                raise SeqgenError(f"could not take the lock {self.path}: not a regular file")
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError as e:
                holder = _read_pid(fd)
                os.close(fd)
                if e.errno not in (errno.EAGAIN, errno.EACCES, errno.EWOULDBLOCK):
                    raise SeqgenError(f"could not lock {self.path}: {e.strerror or e}") from None
                who = f"process {holder}" if holder else "another process"
                raise SeqgenError(f"{directory} is in use by seqgen {who}; wait for it to finish or stop it, "
                                  f"or choose another {option}") from None
            # The holder before us may have removed the file after we opened it: then we hold a
            # lock on a name no one else can find, and must take the new file's instead.
            try:
                same = os.path.samestat(os.fstat(fd), os.stat(self.path, follow_symlinks=False))
            except FileNotFoundError:
                same = False
            if same:
                os.ftruncate(fd, 0)
                os.write(fd, f"{os.getpid()}\n".encode())
                self.fd = fd
                return
            os.close(fd)
        raise SeqgenError(f"could not lock {self.path}: it kept changing")

    def release(self) -> None:
        """Let go of the lock, removing the lock file (and the directories made for it, when
        nothing else came there)."""
        if self.fd is None:
            return
        try:
            os.unlink(self.path)  # while still held: a process that opened it retries (see _acquire)
        except OSError:
            pass
        os.close(self.fd)
        self.fd = None
        self._undo()

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.release()

    def _undo(self) -> None:
        for directory in reversed(self.made):
            try:
                directory.rmdir()  # only when empty
            except OSError:
                break
        self.made = []


def _read_pid(fd: int) -> int | None:
    try:
        text = os.pread(fd, 32, 0).decode("ascii", "replace").strip()
    except OSError:
        return None
    return int(text) if text.isdigit() else None
