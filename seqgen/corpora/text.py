"""Text corpora: a UTF-8 file, or a folder of them, read into memory as one sequence of characters."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

from ..errors import SeqgenError
from ..files import read_regular
from ..tokenizers import ENCODE_CHUNK, CharTokenizer, tokenizer_named
from .base import TEXT, Corpus, files_under

BOM = "\ufeff"
BINARY_SNIFF = 8192  # a NUL byte among a file's first bytes means it is not text


def decode_text(data: bytes, where: str) -> str:
    """UTF-8 (with or without a byte-order mark, which is dropped) or a clear error."""
    if b"\x00" in data[:BINARY_SNIFF]:
        raise binary(where)
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise not_utf8(where, data[e.start], e.start) from None
    return text[1:] if text.startswith(BOM) else text


def binary(where: str) -> SeqgenError:
    return SeqgenError(f"{where}: looks like a binary file, not UTF-8 text")


def not_utf8(where: str, byte: int, offset: int) -> SeqgenError:
    return SeqgenError(f"{where}: not valid UTF-8 (byte 0x{byte:02x} at offset {offset}); "
                       "convert it first, e.g. `iconv -f latin1 -t utf-8`")


def read_text(path: Path, limit: int | None = None, what: str = "a text file") -> str:
    """A UTF-8 text file: a regular file (a FIFO or /dev/zero is refused, not read forever), of at
    most `limit` bytes when given."""
    return decode_text(read_regular(path, limit, what), str(path))


def converted_message(count: int) -> str:
    return f"Read {count:,} CRLF or CR line ends as \\n (--keep-line-endings keeps them as they are)"


class LineEnds:
    """Reads CRLF (Windows) and CR (classic Mac OS) line ends as \n, as Python's universal newlines
    do, in pieces (a CRLF split between two pieces is one line end), counting what it converted.
    A model trained on raw CRs writes them, and on a terminal each line then overwrites the last."""

    def __init__(self, keep: bool = False):
        self.keep, self.converted, self._held = keep, 0, False

    def __call__(self, text: str, final: bool = True) -> str:
        if self.keep:
            return text
        if self._held:
            text, self._held = "\r" + text, False
        if text.endswith("\r") and not final:  # its \n may start the next piece
            text, self._held = text[:-1], True
        if "\r" not in text:
            return text
        self.converted += text.count("\r")
        return text.replace("\r\n", "\n").replace("\r", "\n")


@dataclass(frozen=True)
class TextCorpus(Corpus):
    """Text in memory: one long sequence of characters, cut into training streams and evenly
    spaced validation blocks (see `data.split`)."""

    text: str = ""
    keep_line_endings: bool = False  # CRLF and CR line ends kept as they are, not read as \n
    line_ends_converted: int = 0  # CRLF and CR line ends read as \n

    kind = TEXT
    options = frozenset({"keep_line_endings"})

    @classmethod
    def of(cls, text: str, name: str, spec: str, source: str, ends: LineEnds, given=None) -> TextCorpus:
        """The corpus of `text`, read with `ends`; an empty one is an error naming `given` (the
        path or name the user gave)."""
        if not text.strip():
            raise SeqgenError(f"{given or spec}: the corpus is empty")
        return cls(name, spec, source, text, ends.keep, ends.converted)

    @staticmethod
    def claims(path: Path) -> bool:
        return True  # whatever no other kind claims is read as text

    @classmethod
    def open(cls, path: Path, settings: dict) -> TextCorpus:
        """A text file, or every file under a directory (recursively, hidden ones skipped), joined
        with a newline between files so that one's last line never runs into the next."""
        ends = LineEnds(settings.get("keep_line_endings", False))
        if path.is_dir():
            files = files_under(path)
            if not files:
                raise SeqgenError(f"{path}: no files in this directory")
            parts = [ends(read_text(f)) for f in files]
            text = "".join(p if p.endswith("\n") else p + "\n" for p in parts if p)
        else:
            text = ends(read_text(path))
        name = path.resolve().name if path.is_dir() else path.stem
        return cls.of(text, name, str(path.resolve()), str(path), ends, given=path)

    def _size(self) -> dict:
        return {"characters": len(self.text), "keep_line_endings": self.keep_line_endings}

    def new_tokenizer(self, options: dict, log=None) -> CharTokenizer:
        tokenizer_named(options.get("tokenizer") or CharTokenizer.name, TEXT, self.spec)
        return CharTokenizer.fit(self.text)

    def dataset(self, tokenizer, cfg, *, strict=False, log=None):
        from ..data import TextData

        digest = hashlib.sha256()
        for start in range(0, len(self.text), ENCODE_CHUNK):  # in pieces: no second copy of a large corpus
            digest.update(self.text[start : start + ENCODE_CHUNK].encode("utf-8"))
        return TextData(tokenizer.encode(self.text), cfg.val_fraction, digest.hexdigest())

    def all_ids(self, tokenizer, *, log=None):
        return tokenizer.encode(self.text)

    def notices(self) -> list[str]:
        return [converted_message(self.line_ends_converted)] if self.line_ends_converted else []

    def reads(self, path: Path) -> bool:
        folder = Path(self.spec)
        if not folder.is_dir():
            return False
        folder, path = folder.resolve(), path.resolve()
        return path == folder or folder in path.parents
