"""Encoded text corpora: a text corpus encoded once (`encode_corpus`) into a directory of token
ids that training maps from disk, so a corpus of any size needs memory only for the model."""

from __future__ import annotations

import codecs
import hashlib
import io
import json
import os
import shutil
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Iterator

import numpy as np

from ..atomic import _UMASK, atomic_write_bytes
from ..errors import SeqgenError
from ..lock import Lock
from ..tokenizers import CharTokenizer, codepoints, id_dtype, tokenizer_from_dict, tokenizer_named
from .base import TEXT, Corpus, files_under
from .builtins import BUILTINS
from .midi import MidiCorpus
from .text import BINARY_SNIFF, BOM, LineEnds, TextCorpus, binary, converted_message, not_utf8


@dataclass(frozen=True)
class EncodedCorpus(Corpus):
    """A text corpus encoded by `encode_corpus`: its ids are a memory map of ids.bin, read only
    where training looks, and its tokenizer is the one it was encoded with."""

    directory: Path = Path()
    tokens: int = 0
    keep_line_endings: bool = True

    kind = TEXT
    options = TextCorpus.options

    @staticmethod
    def claims(path: Path) -> bool:
        return path.is_dir() and encoded_meta(path) is not None

    @classmethod
    def open(cls, path: Path, settings: dict) -> EncodedCorpus:
        meta = open_encoded(path)[2]
        keep = meta.get("keep_line_endings", True)  # encodings from before line ends were read as \n kept them
        if settings.get("keep_line_endings") and not keep:
            raise SeqgenError(f"{path}: an encoded corpus whose line ends were read as \\n when it was encoded; "
                              "encode it again with --keep-line-endings")
        return cls(meta["name"], str(path.resolve()), meta["source"], path.resolve(), meta["tokens"], keep)

    def _size(self) -> dict:
        return {"characters": self.tokens, "encoded": True, "keep_line_endings": self.keep_line_endings}

    def new_tokenizer(self, options: dict, log=None):
        tokenizer_named(options.get("tokenizer") or CharTokenizer.name, TEXT, self.spec)
        return tokenizer_from_dict(open_encoded(self.directory)[1])

    def _ids(self, tokenizer) -> tuple[np.ndarray, str]:
        """(the memory-mapped ids, their SHA-256), checked against `tokenizer`."""
        ids, vocabulary, meta = open_encoded(self.directory)
        if vocabulary != tokenizer.to_dict():
            raise SeqgenError(f"{self.spec}: encoded with a different character vocabulary from this model's "
                              "(an encoding fits its own); give the text itself instead")
        return ids, meta["sha256"]

    def dataset(self, tokenizer, cfg, *, strict=False, log=None):
        from ..data import TextData

        ids, sha256 = self._ids(tokenizer)
        return TextData(ids, cfg.val_fraction, sha256)

    def all_ids(self, tokenizer, *, log=None):
        return self._ids(tokenizer)[0]


ENCODED_FORMAT = "seqgen-encoded-corpus"
ENCODED_VERSION = 1
ENCODED_FILES = ("ids.bin", "tokenizer.json", "corpus.json")
READ_CHUNK = 1 << 24  # bytes of input that encode_corpus reads at a time: what bounds its memory
SCRATCH_MARK = ".seqgen-scratch"  # in the directory an encoding is written in, until it is complete


def encode_corpus(spec, out_dir, *, force: bool = False, keep_line_endings: bool = False, log=None) -> dict:
    """Encode a text corpus once into `out_dir` for training from disk; returns its corpus.json.

    `spec` is what load_corpus takes: a text file, a directory of text files or a built-in text
    corpus name. `out_dir` gets exactly three files:

      ids.bin         the token ids, one per character in corpus order: raw little-endian uint8
                      (a vocabulary of at most 256 characters) or uint16, no header
      tokenizer.json  the CharTokenizer's `to_dict()`, which `tokenizer_from_dict` rebuilds
      corpus.json     {"format": "seqgen-encoded-corpus", "version": 1, "name", "source",
                      "tokens", "dtype", "sha256", "keep_line_endings"}, where sha256 is that of
                      the UTF-8 bytes of load_corpus(spec).text, so a run on the encoding and one
                      on the text agree

    The input is read twice in chunks of READ_CHUNK bytes, first for the vocabulary, then for the
    ids, and never whole: memory stays at a few chunks whatever the corpus' size. The directory is
    written beside `out_dir` and renamed into place once complete; with `force` it replaces an
    earlier encoding there, which stays as it was if this one fails. Line ends are read as
    load_corpus reads them (as \n, unless `keep_line_endings`).
    """
    out = Path(out_dir)
    with Lock(out, beside=True, option="OUT_DIR"):  # one encoding into `out` at a time: each sweeps the other's scratch
        return _encode_corpus(spec, out, force, keep_line_endings, log or (lambda m: print(m, file=sys.stderr)))


def _encode_corpus(spec, out: Path, force: bool, keep_line_endings: bool, log) -> dict:
    source = _text_source(spec, keep_line_endings)
    _check_out_dir(out, source.path, force)
    size = source.size()

    seen = np.zeros(0x110000, dtype=bool)  # every Unicode code point: has the corpus one
    characters, blank = 0, True
    with _byte_bar(size, "Vocabulary") as bar:
        for text, n in source.pieces(LineEnds(keep_line_endings)):
            seen[codepoints(text)] = True
            characters += len(text)
            blank = blank and not text.strip()
            bar.update(n)
    if blank:
        raise SeqgenError(f"{spec}: the corpus is empty")
    try:
        tokenizer = CharTokenizer([chr(c) for c in np.flatnonzero(seen).tolist()])
    except SeqgenError as e:
        raise SeqgenError(f"{spec}: {e}") from None
    dtype = np.dtype(id_dtype(tokenizer.vocab_size)).newbyteorder("<")

    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        for stale in out.parent.glob(f".{out.name}-*/{SCRATCH_MARK}"):  # an encoding killed outright (SIGKILL)
            shutil.rmtree(stale.parent, ignore_errors=True)
        scratch = Path(tempfile.mkdtemp(prefix=f".{out.name}-", dir=out.parent))
        (scratch / SCRATCH_MARK).touch()  # only directories holding this are ever removed as leftovers
    except OSError as e:
        raise SeqgenError(f"could not write {out}: {e.strerror or e}") from None
    try:
        digest, tokens = hashlib.sha256(), 0
        with open(scratch / "ids.bin", "wb") as f, _byte_bar(size, "Encoding") as bar:
            ends = LineEnds(keep_line_endings)
            for text, n in source.pieces(ends):
                try:
                    ids = tokenizer.encode(text)
                except SeqgenError as e:
                    raise SeqgenError(f"{spec} changed while it was being encoded ({e}); run again") from None
                f.write(ids.astype(dtype, copy=False).data)
                digest.update(text.encode("utf-8"))
                tokens += len(text)
                bar.update(n)
            f.flush()
            os.fsync(f.fileno())
        if tokens != characters:
            raise SeqgenError(f"{spec} changed while it was being encoded; run again")
        meta = {"format": ENCODED_FORMAT, "version": ENCODED_VERSION, "name": source.name, "source": source.source,
                "tokens": tokens, "dtype": dtype.name, "sha256": digest.hexdigest(),
                "keep_line_endings": keep_line_endings}
        atomic_write_bytes(scratch / "tokenizer.json", json.dumps(tokenizer.to_dict()).encode())
        atomic_write_bytes(scratch / "corpus.json", (json.dumps(meta, indent=2) + "\n").encode())
        (scratch / SCRATCH_MARK).unlink()
        os.chmod(scratch, 0o777 & ~_UMASK)  # mkdtemp makes 0700; give the directory the usual mode
        _put_in_place(scratch, out)
    except OSError as e:
        raise SeqgenError(f"could not write {out}: {e.strerror or e} (nothing there was changed)") from None
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    log(f"Encoded {tokens:,} characters (vocabulary {tokenizer.vocab_size}) into {out}: "
        f"ids.bin {_bytes(tokens * dtype.itemsize)}")
    if ends.converted:
        log(converted_message(ends.converted))
    return meta


def _bytes(n: int) -> str:
    return next(f"{n / scale:,.1f} {unit}" for scale, unit in ((1e9, "GB"), (1e6, "MB"), (1e3, "kB"), (1, "bytes"))
                if n >= scale or scale == 1)


@dataclass(frozen=True)
class _TextSource:
    """What encode_corpus reads: the files of a text corpus, or a built-in corpus' text."""

    name: str
    source: str
    path: Path | None  # the file or directory given; None for a built-in corpus
    files: tuple[Path, ...] = ()
    data: bytes = b""  # a built-in corpus' text as UTF-8

    def size(self) -> int:
        try:
            return sum(f.stat().st_size for f in self.files) if self.path else len(self.data)
        except OSError as e:
            raise SeqgenError(f"{e.filename}: {e.strerror or e}") from None

    def pieces(self, ends: LineEnds) -> Iterator[tuple[str, int]]:
        """load_corpus(spec).text in pieces: (text, bytes of input it came from)."""
        if self.path is None:  # a built-in corpus' text, line ends already read by load_corpus
            yield from _decoded(io.BytesIO(self.data), self.name, LineEnds(keep=True), join=False, bom=False)
            return
        for file in self.files:
            try:
                handle = file.open("rb")
            except OSError as e:
                raise SeqgenError(f"{file}: {e.strerror or e}") from None
            with handle:
                file_ends = LineEnds(ends.keep)  # a CR that ends one file ends a line there
                yield from _decoded(handle, str(file), file_ends, join=self.path.is_dir())
                ends.converted += file_ends.converted


def _text_source(spec, keep_line_endings: bool) -> _TextSource:
    path = Path(spec)
    midi = SeqgenError(f"{spec} is a MIDI corpus; only text corpora are encoded (MIDI is cached on first use)")
    if not path.exists():
        builtin = BUILTINS.get(str(spec))
        if builtin is None:
            raise SeqgenError(f"{spec}: no such file, directory or built-in corpus (built-in: {', '.join(BUILTINS)})")
        if builtin.kind != TEXT:
            raise midi
        # A built-in text corpus, small enough for memory.
        corpus = builtin.open({"keep_line_endings": keep_line_endings})
        assert isinstance(corpus, TextCorpus)
        return _TextSource(corpus.name, corpus.source, None, data=corpus.text.encode("utf-8"))
    if not (path.is_dir() or path.is_file()):
        raise SeqgenError(f"{spec}: not a regular file or directory")
    if EncodedCorpus.claims(path):
        raise SeqgenError(f"{spec} is already an encoded corpus")
    if MidiCorpus.claims(path):
        raise midi
    files = files_under(path) if path.is_dir() else [path]
    if not files:
        raise SeqgenError(f"{path}: no files in this directory")
    name = path.resolve().name if path.is_dir() else path.stem
    return _TextSource(name, str(spec), path, tuple(files))


def _decoded(f: BinaryIO, where: str, ends: LineEnds, *, join: bool, bom: bool = True) -> Iterator[tuple[str, int]]:
    """A UTF-8 file's text in pieces of at most READ_CHUNK bytes, checked and with its byte-order
    mark dropped as decode_text does (a character split between reads completes in the next
    piece), its line ends read by `ends`. With `join`, a newline follows text that does not end
    with one, as load_corpus joins the files of a directory."""
    try:
        head = f.read(BINARY_SNIFF)
        f.seek(0)
    except OSError as e:
        raise SeqgenError(f"{where}: {e.strerror or e}") from None
    if b"\x00" in head:
        raise binary(where)
    decoder = codecs.getincrementaldecoder("utf-8")()
    offset, started, last = 0, False, ""
    while True:
        try:
            data = f.read(READ_CHUNK)
        except OSError as e:
            raise SeqgenError(f"{where}: {e.strerror or e}") from None
        pending = len(decoder.getstate()[0])  # bytes of an unfinished character from the last read
        try:
            text = decoder.decode(data, final=not data)
        except UnicodeDecodeError as e:  # e.object is the pending bytes followed by `data`
            raise not_utf8(where, e.object[e.start], offset - pending + e.start) from None
        if not data:
            tail = ends("", final=True)  # a CR held back from the last piece
            if tail:
                last = tail
                yield tail, 0
            break
        offset += len(data)
        if text and not started:
            started = True
            text = text[1:] if bom and text[0] == BOM else text
        text = ends(text, final=False)
        last = text[-1:] or last
        yield text, len(data)
    if join and last not in ("", "\n"):
        yield "\n", 0


def _byte_bar(total: int, desc: str):
    from tqdm import tqdm

    return tqdm(total=total, desc=desc, unit="B", unit_scale=True, unit_divisor=1024, leave=False,
                disable=None, file=sys.stderr)


def _check_out_dir(out: Path, source: Path | None, force: bool) -> None:
    if out.exists() and not out.is_dir():
        raise SeqgenError(f"{out} exists and is not a directory")
    if source is not None:
        src, dest = source.resolve(), out.resolve()
        if dest == src or src in dest.parents or dest in src.parents:
            raise SeqgenError(f"{out}: the encoding must go outside the corpus {source}, and the corpus outside it")
    if out.is_dir():
        present = {p.name for p in out.iterdir()}
        if present and not force:
            raise SeqgenError(f"{out} already exists and is not empty; --force replaces an earlier encoding there")
        if present - set(ENCODED_FILES):
            raise SeqgenError(f"{out} holds files other than an encoded corpus; not replacing it, even with --force")


def _put_in_place(new: Path, dest: Path) -> None:
    """Rename directory `new` to `dest`. An existing `dest` is moved aside first, put back if the
    rename fails, and deleted only once `new` stands in its place."""
    if not dest.exists():
        os.replace(new, dest)
        return
    old = Path(tempfile.mkdtemp(prefix=f".{dest.name}-old-", dir=dest.parent))
    os.replace(dest, old)  # onto the empty directory mkdtemp made
    try:
        os.replace(new, dest)
    except BaseException:
        os.replace(old, dest)
        raise
    shutil.rmtree(old, ignore_errors=True)


def encoded_meta(directory: Path) -> dict | None:
    """The corpus.json of a directory that is (or claims to be) an encoded corpus; None for an
    ordinary directory, which may hold a corpus.json of its own that is not seqgen's."""
    directory = Path(directory)
    try:
        meta = json.loads((directory / "corpus.json").read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except (OSError, ValueError):
        meta = None
    claims = isinstance(meta, dict) and str(meta.get("format", "")).startswith("seqgen")
    if not claims and not (directory / "ids.bin").exists():
        return None
    if not claims:
        raise SeqgenError(f"{directory}: corpus.json is not that of an encoded corpus")
    return meta


def open_encoded(directory) -> tuple[np.ndarray, dict, dict]:
    """(token ids, tokenizer dict, corpus.json) of a directory written by encode_corpus.

    The ids are a read-only np.memmap of ids.bin: nothing is read up front, and only the pages
    touched are read (and may be dropped again by the OS), so a corpus of any size costs
    memory only for the parts in use. Every inconsistency is a one-line SeqgenError naming the
    directory.
    """
    directory = Path(directory)
    meta = encoded_meta(directory)
    if meta is None:
        raise SeqgenError(f"{directory}: not an encoded corpus (no corpus.json); make one with `seqgen corpus encode`")
    if meta.get("format") != ENCODED_FORMAT or meta.get("version") != ENCODED_VERSION:
        raise SeqgenError(f"{directory}: an encoded corpus of format {meta.get('format')!r} version "
                          f"{meta.get('version')!r}; this seqgen reads {ENCODED_FORMAT!r} version {ENCODED_VERSION}")
    tokens, dtype = meta.get("tokens"), meta.get("dtype")
    if type(tokens) is not int or tokens < 1 or dtype not in ("uint8", "uint16") or not all(
            isinstance(meta.get(k), str) for k in ("name", "source", "sha256")):
        raise SeqgenError(f"{directory}: corpus.json lacks or garbles tokens, dtype, name, source or sha256")
    try:
        tokenizer = json.loads((directory / "tokenizer.json").read_text(encoding="utf-8"))
        if tokenizer.get("kind") != CharTokenizer.kind:
            raise ValueError(f"kind {tokenizer.get('kind')!r}, not {CharTokenizer.kind!r}")
        vocab = CharTokenizer.from_dict(tokenizer).vocab_size
    except (OSError, ValueError, KeyError, TypeError, AttributeError, SeqgenError) as e:
        reason = e.strerror if isinstance(e, OSError) else e
        raise SeqgenError(f"{directory}: unreadable tokenizer.json ({reason})") from None
    if np.dtype(id_dtype(vocab)).name != dtype:
        raise SeqgenError(f"{directory}: ids of dtype {dtype} do not fit a vocabulary of {vocab} characters")
    ids = directory / "ids.bin"
    expected = tokens * np.dtype(dtype).itemsize
    try:
        found = ids.stat().st_size
    except OSError as e:
        raise SeqgenError(f"{directory}: ids.bin: {e.strerror or e}") from None
    if found != expected:
        raise SeqgenError(f"{directory}: ids.bin has {found:,} bytes, corpus.json says {expected:,} "
                          f"({tokens:,} {dtype} ids); encode the corpus again")
    return np.memmap(ids, dtype=np.dtype(dtype).newbyteorder("<"), mode="r", shape=(tokens,)), tokenizer, meta


