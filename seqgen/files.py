"""Reading a whole file that the user names, safely: it must be a regular file of bounded size.

A FIFO would block the open (or the read) forever, and a device such as /dev/zero never ends;
both are refused at once, by what os.stat says, before the open.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

from .errors import SeqgenError

MAX_PRIME = 16 << 20  # bytes, of a --prime-file or --primer: far more than any prime or opening is a mistake
FILE_TYPES = ((stat.S_ISFIFO, "a named pipe (FIFO)"), (stat.S_ISCHR, "a character device"),
         (stat.S_ISBLK, "a block device"), (stat.S_ISSOCK, "a socket"), (stat.S_ISDIR, "a directory"))


def size_text(n: int) -> str:
    return f"{n / 2**30:g} GB" if n >= 2**30 else f"{n / 2**20:g} MB"


def _refuse_unless_regular(path: Path, st: os.stat_result, limit: int | None, what: str) -> None:
    rule = f"{what} must be a regular file" + (f" of at most {size_text(limit)}" if limit is not None else "")
    if not stat.S_ISREG(st.st_mode):
        kind = next((name for test, name in FILE_TYPES if test(st.st_mode)), "not a regular file")
        raise SeqgenError(f"{path}: {kind}; {rule}")
    if limit is not None and st.st_size > limit:
        raise SeqgenError(f"{path}: {size_text(st.st_size)}; {rule}")


def read_regular(path: Path, limit: int | None, what: str) -> bytes:
    """The bytes of `path`, a regular file (symbolic links followed) of at most `limit` bytes
    (None: any size); anything else is one SeqgenError naming `what` the file is for."""
    try:
        _refuse_unless_regular(path, os.stat(path), limit, what)
        # O_NONBLOCK: should the path become a FIFO after the stat, the open still returns at once,
        # and fstat (of what was opened) refuses it.
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_BINARY", 0))
        with os.fdopen(fd, "rb") as f:
            st = os.fstat(f.fileno())
            _refuse_unless_regular(path, st, limit, what)
            return f.read(st.st_size)  # at most what fstat said: a file that grows is not followed
    except OSError as e:
        raise SeqgenError(f"{path}: {e.strerror or e}") from None
