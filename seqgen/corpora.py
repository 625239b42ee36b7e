"""Where text comes from: a file, a directory of files, or a built-in corpus by name.

Built-in corpora either ship with Python itself (so they work offline right after install) or are
downloaded once, checked against a SHA-256 and cached under the seqgen cache directory.
"""

from __future__ import annotations

import hashlib
import http.client
import os
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from .atomic import atomic_write_bytes
from .errors import SeqgenError

DEFAULT_CORPUS = "python-docs"
BOM = "\ufeff"


@dataclass(frozen=True)
class Corpus:
    name: str
    text: str
    spec: str  # what reloads it: an absolute path, or a built-in corpus name
    source: str  # a path, or the provenance of a built-in corpus

    def describe(self) -> dict:
        return {"name": self.name, "spec": self.spec, "source": self.source, "characters": len(self.text)}


@dataclass(frozen=True)
class Builtin:
    name: str
    description: str
    provenance: str
    licence: str
    approx_size: str
    load: Callable[[], str] | None = None  # ships with Python or seqgen: no download
    url: str | None = None  # or downloaded once, verified and cached
    sha256: str | None = None

    @property
    def cache_path(self) -> Path:
        return cache_dir() / "corpora" / f"{self.name}.txt"

    @property
    def available(self) -> bool:
        return self.load is not None or self.cache_path.exists()


def _python_docs() -> str:
    # pydoc_data.topics holds the text of the Python Language Reference that `help()` shows:
    # about half a megabyte of English prose and code examples, on every Python install.
    from pydoc_data.topics import topics

    return "\n\n".join(topics[key].strip("\n") for key in sorted(topics)) + "\n"


BUILTINS = {
    b.name: b
    for b in (
        Builtin(
            name="python-docs",
            description="The Python Language Reference topics that help() shows (English prose and code)",
            provenance="pydoc_data.topics from the running Python's standard library",
            licence="Python Software Foundation License (ships with CPython)",
            approx_size="about 0.5 MB",
            load=_python_docs,
        ),
        Builtin(
            name="tinyshakespeare",
            description="40,000 lines of Shakespeare's plays, the classic char-rnn benchmark",
            provenance="data/tinyshakespeare/input.txt of Andrej Karpathy's char-rnn repository",
            licence="public domain (the plays); downloaded on first use",
            approx_size="1.1 MB",
            url="https://raw.githubusercontent.com/karpathy/char-rnn/master/data/tinyshakespeare/input.txt",
            sha256="86c4e6aa9db7c042ec79f339dcb96d42b0075e16b8fc2e86bf0ca57e2dc565ed",
        ),
    )
}


def cache_dir() -> Path:
    if os.environ.get("SEQGEN_CACHE_DIR"):
        return Path(os.environ["SEQGEN_CACHE_DIR"])
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "seqgen"


def decode_text(data: bytes, where: str) -> str:
    """UTF-8 (with or without a byte-order mark, which is dropped) or a clear error."""
    if b"\x00" in data[:8192]:
        raise SeqgenError(f"{where}: looks like a binary file, not UTF-8 text")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise SeqgenError(
            f"{where}: not valid UTF-8 (byte 0x{data[e.start]:02x} at offset {e.start}); "
            "convert it first, e.g. `iconv -f latin1 -t utf-8`"
        ) from None
    return text[1:] if text.startswith(BOM) else text


def read_text(path: Path) -> str:
    try:
        data = path.read_bytes()
    except OSError as e:
        raise SeqgenError(f"{path}: {e.strerror or e}") from None
    return decode_text(data, str(path))


def _text_files(directory: Path) -> list[Path]:
    files = [
        p
        for p in sorted(directory.rglob("*"))
        if p.is_file() and not any(part.startswith(".") for part in p.relative_to(directory).parts)
    ]
    if not files:
        raise SeqgenError(f"{directory}: no files in this directory")
    return files


def load_corpus(spec: str | os.PathLike | None) -> Corpus:
    """A path to a file or directory, or a built-in corpus name (None means the default)."""
    spec = DEFAULT_CORPUS if spec is None else spec
    path = Path(spec)
    if path.is_dir():
        parts = [read_text(f) for f in _text_files(path)]
        # Files are joined with a newline between them, so one's last line never runs into the next.
        text = "".join(p if p.endswith("\n") else p + "\n" for p in parts if p)
        corpus = Corpus(path.resolve().name, text, str(path.resolve()), str(path))
    elif path.is_file():
        corpus = Corpus(path.stem, read_text(path), str(path.resolve()), str(path))
    elif str(spec) in BUILTINS:
        builtin = BUILTINS[str(spec)]
        corpus = Corpus(builtin.name, builtin_text(builtin), builtin.name, builtin.provenance)
    elif path.exists():
        raise SeqgenError(f"{spec}: not a regular file or directory")
    else:
        raise SeqgenError(
            f"{spec}: no such file, directory or built-in corpus (built-in: {', '.join(BUILTINS)})"
        )
    if not corpus.text.strip():
        raise SeqgenError(f"{spec}: the corpus is empty")
    return corpus


def builtin_text(builtin: Builtin) -> str:
    if builtin.load is not None:
        return builtin.load()
    if not builtin.cache_path.exists():
        download(builtin)
    return read_text(builtin.cache_path)


def download(builtin: Builtin, url: str | None = None, timeout: float = 60.0) -> Path:
    """Fetch a built-in corpus into the cache, verifying its SHA-256; returns the cached path.

    The file appears under its final name only once it is complete and verified.
    """
    if builtin.url is None:
        raise SeqgenError(f"{builtin.name} ships with seqgen; there is nothing to download")
    url = url or builtin.url
    dest = builtin.cache_path
    dest.parent.mkdir(parents=True, exist_ok=True)
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            data = response.read()
    except (urllib.error.URLError, http.client.HTTPException, ValueError, OSError) as e:
        reason = getattr(e, "reason", None) or e
        raise SeqgenError(f"could not download {builtin.name} from {url}: {reason}") from None
    digest = hashlib.sha256(data).hexdigest()
    if digest != builtin.sha256:
        raise SeqgenError(
            f"{builtin.name}: downloaded file has SHA-256 {digest}, expected {builtin.sha256}; not saved"
        )
    atomic_write_bytes(dest, data)
    return dest
