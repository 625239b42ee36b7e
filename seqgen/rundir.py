"""A directory seqgen writes into: which files in it are seqgen's, and the lock that makes one
process its only writer.

A run directory may hold the user's own files too (notes, plots, a README); seqgen touches only
the names it writes itself, and refuses to start a run among files it did not write unless told
to (`--force`). Two processes writing one directory would mix their checkpoints and metrics, so a
writer holds an exclusive `flock` on a lock file: the operating system releases it when the
process ends, however it ends, so a lock is never left stale.
"""

from __future__ import annotations

import errno
import fcntl
import os
import re
import stat
from pathlib import Path

from .atomic import _UMASK
from .errors import SeqgenError

LOCK = ".seqgen.lock"
METRICS = "metrics.csv"
METRIC_FIELDS = ["step", "epoch", "tokens", "elapsed_s", "lr", "loss", "val_loss", "val_bpc"]
CHECKPOINTS = ("best.safetensors", "last.safetensors")
_OWN = r"(?:best|last|step-\d{8})\.safetensors|metrics\.csv"
OWN = re.compile(_OWN)
# What atomic.py writes on the way to those names: `.NAME.<random>.tmp` and `.NAME.link.tmp`.
OWN_TEMP = re.compile(rf"\.(?:{_OWN})\.[^/]+\.tmp")


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


def is_own(path: Path) -> bool:
    """Whether `path` in a run directory is a file seqgen writes: a checkpoint or the metrics log
    (by their content, so a user's own file of that name is not mistaken for one), a temporary
    file on the way to one of them, or the lock."""
    name = path.name
    if name == LOCK or OWN_TEMP.fullmatch(name):
        return True
    if not OWN.fullmatch(name) or not path.is_file() or path.is_symlink():
        return False
    try:
        with path.open("rb") as f:
            if name == METRICS:
                return f.readline().strip() == ",".join(METRIC_FIELDS).encode()
            # A safetensors file: an 8-byte header length, then the JSON header, where the
            # metadata names the format (see checkpoint.py). Only the header's start is read.
            return f.read(8 + 4096).find(b"seqgen-checkpoint") > 8
    except OSError:
        return False


def foreign(directory: Path) -> list[Path]:
    """The entries of `directory` that seqgen did not write, sorted."""
    try:
        return sorted(p for p in Path(directory).iterdir() if not is_own(p))
    except FileNotFoundError:
        return []


def sweep_temps(directory: Path) -> None:
    """Remove the half-written files a killed run left; only seqgen's own temporary names (and
    only by the lock holder: another writer's temporary file is in use)."""
    for path in Path(directory).glob(".*.tmp"):
        if OWN_TEMP.fullmatch(path.name):
            path.unlink(missing_ok=True)


def check_new_run(directory: Path, force: bool) -> None:
    """Refuse to start a run over another one (without --force) or among files seqgen did not
    write (without --force; and never where a name seqgen writes is taken by the user's file)."""
    directory = Path(directory)
    others = foreign(directory)
    taken = [p for p in others if OWN.fullmatch(p.name)]
    if taken:
        raise SeqgenError(f"{taken[0]} is not a file seqgen wrote, and a run would write there; "
                          "move it, or choose another --out (not even --force replaces it)")
    if any(is_own(directory / name) for name in CHECKPOINTS) and not force:
        raise SeqgenError(f"{directory} already holds a run; continue it with --resume, or start over with --force")
    if not others:
        return
    if not force:
        more = f" and {len(others) - 1} more" if len(others) > 1 else ""
        raise SeqgenError(f"{directory} holds files that are not a seqgen run ({others[0].name}{more}); choose a new "
                          "or empty --out, or add --force to train there (only seqgen's own files are ever replaced)")


def clear_run(directory: Path) -> None:
    """Start over (--force): remove the files of the run before, and only those."""
    for path in Path(directory).iterdir():
        if path.name != LOCK and is_own(path):
            path.unlink(missing_ok=True)
