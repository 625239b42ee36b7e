"""Where corpora come from: a file, a directory of files, or a built-in corpus by name.

A corpus is text or MIDI. Built-in corpora either ship with Python or a dependency (so they work
offline right after install) or are downloaded once, checked against a SHA-256 and cached under
the seqgen cache directory. MIDI corpora are read once into notes and cached, keyed by the
content of their files and the reading settings. A text corpus too large for memory can be
encoded once (`encode_corpus`) into a directory of token ids that training maps from disk.
"""

from __future__ import annotations

import codecs
import hashlib
import http.client
import io
import json
import os
import shutil
import sys
import tempfile
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Callable, Iterator

import numpy as np

from .atomic import _UMASK, atomic_write_bytes
from .errors import SeqgenError
from .files import read_regular
from .lock import Lock
from .midi_io import NOTE_DTYPE
from .tokenizers import CharTokenizer, codepoints, id_dtype
from .tokenizers.midi_events import MAX_SILENCE

DEFAULT_CORPUS = "python-docs"
BOM = "\ufeff"


MIDI_SUFFIXES = (".mid", ".midi")


@dataclass(frozen=True)
class Corpus:
    """What a run trains on, as load_corpus found it: text in memory, an encoded text corpus on
    disk, or MIDI files; `spec` reloads it (a resume), `describe()` is what checkpoints record."""

    name: str
    text: str  # a text corpus' text ("" for MIDI)
    spec: str  # what reloads it: an absolute path, or a built-in corpus name
    source: str  # a path, or the provenance of a built-in corpus
    kind: str = "text"
    files: tuple[Path, ...] = ()  # a MIDI corpus' files
    encoded: Path | None = None  # the directory of an encoded text corpus (`encode_corpus`); text is then ""
    keep_line_endings: bool = False  # text: CRLF and CR line ends kept as they are, not read as \n
    line_ends_converted: int = 0  # text: CRLF and CR line ends read as \n

    def describe(self) -> dict:
        if self.encoded is not None:
            meta = _encoded_meta(self.encoded)
            assert meta is not None  # load_corpus made this Corpus from it
            size = {"characters": meta["tokens"], "encoded": True}
        else:
            size = {"characters": len(self.text)} if self.kind == "text" else {"files": len(self.files)}
        text = {"keep_line_endings": self.keep_line_endings} if self.kind == "text" else {}
        return {"name": self.name, "kind": self.kind, "spec": self.spec, "source": self.source, **size, **text}


@dataclass(frozen=True)
class Builtin:
    """A built-in corpus: what `seqgen corpus list` shows, and how to get it (from Python, by
    converting a dependency's data, or by a verified download)."""

    name: str
    description: str
    provenance: str
    licence: str
    approx_size: str
    kind: str = "text"
    load: Callable[[], str] | None = None  # text that ships with Python: nothing to fetch
    convert: Callable[[Path], None] | None = None  # or MIDI written once from a dependency's data
    url: str | None = None  # or downloaded once, verified and cached
    sha256: str | None = None
    time_budget: float | None = None  # seconds `seqgen train NAME` runs when given no limit

    @property
    def cache_path(self) -> Path:
        """The cached file (text) or directory of files (MIDI)."""
        return cache_dir() / "corpora" / (self.name if self.kind == "midi" else f"{self.name}.txt")

    @property
    def available(self) -> bool:
        return self.load is not None or self.cache_path.exists()

    @property
    def where(self) -> str:
        if self.load is not None:
            return "ships with Python"
        if self.convert is not None:
            return "converted" if self.available else "converted on first use"
        return "downloaded" if self.available else "download on first use"


def _python_docs() -> str:
    # pydoc_data.topics holds the text of the Python Language Reference that `help()` shows:
    # about half a megabyte of English prose and code examples, on every Python install.
    from pydoc_data.topics import topics

    return "\n\n".join(topics[key].strip("\n") for key in sorted(topics)) + "\n"


def _bach_chorales(dest: Path) -> None:
    """Write the Bach chorales that ship with music21 as MIDI files in `dest`."""
    try:
        from music21 import corpus as m21
    except ImportError:
        raise SeqgenError("the bach-chorales corpus is made from the music21 package: pip install music21") from None
    sources = [p for p in m21.getComposer("bach") if p.suffix in (".mxl", ".xml", ".krn")]
    if not sources:
        raise SeqgenError("this music21 installation has no Bach chorales in its corpus")
    from concurrent.futures import ProcessPoolExecutor

    from tqdm import tqdm

    failed = []
    with ProcessPoolExecutor(max_workers=min(4, os.cpu_count() or 1)) as pool:
        jobs = pool.map(_chorale_midi, sources, chunksize=8)
        for source, (pieces, error) in tqdm(zip(sources, jobs), total=len(sources), desc="Converting chorales",
                                            unit="file", disable=None, file=sys.stderr):
            if error:
                failed.append(f"{source.name} ({error})")
            for i, data in enumerate(pieces, 1):
                suffix = "" if len(pieces) == 1 else f"-{i}"
                (dest / f"{source.stem}{suffix}.mid").write_bytes(data)
    if failed:
        print(f"Left out {len(failed)} of {len(sources)} chorales music21 could not write as MIDI: "
              + "; ".join(failed), file=sys.stderr)


def _chorale_midi(path: Path) -> tuple[list[bytes], str | None]:
    """One music21 corpus file as MIDI files (a file may hold several versions of a chorale),
    or the reason music21 could not convert it."""
    from music21 import converter, midi, stream

    try:
        score = converter.parse(path)
        scores = list(score.scores) if isinstance(score, stream.Opus) else [score]
        return [midi.translate.streamToMidiFile(s).writestr() for s in scores], None
    except Exception as e:  # music21 raises its own types for encodings it cannot expand
        return [], f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}"


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
            time_budget=120.0,  # the quick start's run: two minutes on any machine, busy or not
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
        Builtin(
            name="bach-chorales",
            description="About 410 four-part chorales by J. S. Bach as MIDI (score timing, one voice per track)",
            provenance="the Bach chorale encodings in the corpus of the music21 package, written to MIDI once with music21",
            licence="public domain music; the encodings are distributed with music21 (BSD) by permission of their encoders",
            approx_size="about 2 MB of MIDI",
            kind="midi",
            convert=_bach_chorales,
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
    if b"\x00" in data[:BINARY_SNIFF]:
        raise _binary(where)
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise _not_utf8(where, data[e.start], e.start) from None
    return text[1:] if text.startswith(BOM) else text


BINARY_SNIFF = 8192  # a NUL byte among a file's first bytes means it is not text


def _binary(where: str) -> SeqgenError:
    return SeqgenError(f"{where}: looks like a binary file, not UTF-8 text")


def _not_utf8(where: str, byte: int, offset: int) -> SeqgenError:
    return SeqgenError(f"{where}: not valid UTF-8 (byte 0x{byte:02x} at offset {offset}); "
                       "convert it first, e.g. `iconv -f latin1 -t utf-8`")


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


def read_text(path: Path, limit: int | None = None, what: str = "a text file") -> str:
    """A UTF-8 text file: a regular file (a FIFO or /dev/zero is refused, not read forever), of at
    most `limit` bytes when given."""
    return decode_text(read_regular(path, limit, what), str(path))


def _files(directory: Path, suffixes: tuple[str, ...] | None = None) -> list[Path]:
    """Files under `directory` (recursively, hidden ones skipped), optionally by suffix."""
    return [
        p
        for p in sorted(directory.rglob("*"))
        if p.is_file()
        and not any(part.startswith(".") for part in p.relative_to(directory).parts)
        and (suffixes is None or p.suffix.lower() in suffixes)
    ]


def _is_midi(path: Path) -> bool:
    if path.suffix.lower() in MIDI_SUFFIXES:
        return True
    if not path.is_file():  # never open a FIFO to look: the open would wait for a writer
        return False
    try:
        with path.open("rb") as f:
            return f.read(4) == b"MThd"
    except OSError:
        return False


def detect_kind(path: Path) -> str:
    """midi for a MIDI file or a directory holding any .mid/.midi file; text otherwise."""
    if path.is_dir():
        return "midi" if _files(path, MIDI_SUFFIXES) else "text"
    return "midi" if _is_midi(path) else "text"


def kind_of(spec) -> str | None:
    """text or midi: what load_corpus would read `spec` as (None when it names nothing)."""
    path = Path(spec)
    if path.is_dir() or path.is_file():  # else load_corpus says what is wrong with it
        return "text" if path.is_dir() and _encoded_meta(path) is not None else detect_kind(path)
    builtin = BUILTINS.get(str(spec))
    return builtin.kind if builtin is not None else None


def check_kind(spec, kind: str, what: str) -> None:
    """One clear line when `spec` holds the other kind of data than `what` (say "this is a text
    model") needs, instead of the reader's complaint about the first file."""
    found = kind_of(spec)
    if found is not None and found != kind:
        holds = "holds MIDI files" if found == "midi" else "is text, not MIDI"
        raise SeqgenError(f"{what}; {spec} {holds}")


def load_corpus(spec: str | os.PathLike | None, kind: str | None = None, *,
                keep_line_endings: bool = False) -> Corpus:
    """A path to a file or directory, or a built-in corpus name (None means the default).

    `kind` (text or midi) overrides what the path looks like. Text is read with \n line ends
    unless `keep_line_endings` (see LineEnds).
    """
    ends = LineEnds(keep_line_endings)
    spec = DEFAULT_CORPUS if spec is None else spec
    path = Path(spec)
    if path.exists() and not (path.is_dir() or path.is_file()):
        raise SeqgenError(f"{spec}: not a regular file or directory")
    if not path.exists():
        if str(spec) not in BUILTINS:
            raise SeqgenError(
                f"{spec}: no such file, directory or built-in corpus (built-in: {', '.join(BUILTINS)})"
            )
        builtin = BUILTINS[str(spec)]
        if kind and kind != builtin.kind:
            raise SeqgenError(f"{spec} is a built-in {builtin.kind} corpus, not {kind}")
        if builtin.kind == "midi":
            files = _files(builtin_directory(builtin), MIDI_SUFFIXES)
            return Corpus(builtin.name, "", builtin.name, builtin.provenance, "midi", tuple(files))
        text = ends(builtin_text(builtin))
        return _checked(Corpus(builtin.name, text, builtin.name, builtin.provenance, keep_line_endings=keep_line_endings,
                               line_ends_converted=ends.converted), spec)

    if path.is_dir() and _encoded_meta(path) is not None:
        if kind == "midi":
            raise SeqgenError(f"{spec}: an encoded text corpus, not MIDI")
        meta = open_encoded(path)[2]
        if keep_line_endings and not meta.get("keep_line_endings", True):
            raise SeqgenError(f"{spec}: an encoded corpus whose line ends were read as \\n when it was encoded; "
                              "encode it again with --keep-line-endings")
        return Corpus(meta["name"], "", str(path.resolve()), meta["source"], "text", (), path.resolve(),
                      keep_line_endings=meta.get("keep_line_endings", True))
    kind = kind or detect_kind(path)
    name = path.resolve().name if path.is_dir() else path.stem
    if kind == "midi":
        files = _files(path, MIDI_SUFFIXES) if path.is_dir() else [path]
        if not files:
            raise SeqgenError(f"{spec}: no .mid or .midi files in this directory")
        return Corpus(name, "", str(path.resolve()), str(path), "midi", tuple(files))
    if path.is_dir():
        files = _files(path)
        if not files:
            raise SeqgenError(f"{path}: no files in this directory")
        parts = [ends(read_text(f)) for f in files]
        # Files are joined with a newline between them, so one's last line never runs into the next.
        text = "".join(p if p.endswith("\n") else p + "\n" for p in parts if p)
    else:
        text = ends(read_text(path))
    return _checked(Corpus(name, text, str(path.resolve()), str(path), keep_line_endings=keep_line_endings,
                           line_ends_converted=ends.converted), spec)


def _checked(corpus: Corpus, spec) -> Corpus:
    if not corpus.text.strip():
        raise SeqgenError(f"{spec}: the corpus is empty")
    return corpus


def builtin_text(builtin: Builtin) -> str:
    if builtin.load is not None:
        return builtin.load()
    if not builtin.cache_path.exists():
        download(builtin)
    return read_text(builtin.cache_path)


def builtin_directory(builtin: Builtin) -> Path:
    """The directory of a converted built-in MIDI corpus, converting it on first use."""
    dest = builtin.cache_path
    if not dest.is_dir():
        dest.parent.mkdir(parents=True, exist_ok=True)
        # Converted into a scratch directory renamed into place at the end: an interrupted
        # conversion leaves nothing that could pass for the corpus.
        scratch = Path(tempfile.mkdtemp(prefix=f".{builtin.name}-", dir=dest.parent))
        try:
            assert builtin.convert is not None  # a MIDI built-in: converted from a dependency's data
            builtin.convert(scratch)
            os.replace(scratch, dest)
        except OSError:
            if not dest.is_dir():  # else another process (a rank of the same run) got there first
                raise
        finally:
            shutil.rmtree(scratch, ignore_errors=True)
    return dest


def download(builtin: Builtin, url: str | None = None, timeout: float = 60.0) -> Path:
    """Fetch a built-in corpus into the cache, verifying its SHA-256; returns the cached path.

    The file appears under its final name only once it is complete and verified.
    """
    if builtin.url is None:
        raise SeqgenError(f"{builtin.name} ships with Python; there is nothing to download")
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


# -- Encoded text corpora: token ids on disk ----------------------------------------------------
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
        if builtin is not None and builtin.kind != "text":
            raise midi
        # A built-in text corpus, small enough for memory (else load_corpus's own error).
        corpus = load_corpus(spec, keep_line_endings=keep_line_endings)
        return _TextSource(corpus.name, corpus.source, None, data=corpus.text.encode("utf-8"))
    if not (path.is_dir() or path.is_file()):
        raise SeqgenError(f"{spec}: not a regular file or directory")
    if path.is_dir() and _encoded_meta(path) is not None:
        raise SeqgenError(f"{spec} is already an encoded corpus")
    if detect_kind(path) == "midi":
        raise midi
    files = _files(path) if path.is_dir() else [path]
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
        raise _binary(where)
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
            raise _not_utf8(where, e.object[e.start], offset - pending + e.start) from None
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


def _encoded_meta(directory: Path) -> dict | None:
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
    meta = _encoded_meta(directory)
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


# -- MIDI ----------------------------------------------------------------------------------------
MIDI_CACHE_VERSION = 2  # 2: files split at silences of over midi.MAX_SILENCE
STALE_TEMP_SECONDS = 3600  # a temp file this old in the cache is left by a killed process, not being written


def sweep_stale_temp_files(directory: Path, older_than: float = STALE_TEMP_SECONDS) -> None:
    """Remove the temp files (`.NAME.RANDOM.tmp`, see atomic_write_bytes) a process killed while
    writing the cache left behind; a newer one may be another process' write in progress."""
    now = time.time()
    for path in directory.glob(".*.tmp"):
        try:
            if now - path.lstat().st_mtime > older_than:
                path.unlink()
        except OSError:  # gone already (another sweep), or not ours to remove: the cache still works
            pass


def midi_pieces(corpus: Corpus, tokenizer, *, strict: bool = False, log=None) -> tuple[list, str]:
    """(the notes of every piece, a SHA-256 of the files' content and the tokenizer settings).

    A file is one piece, or several when silences of over MAX_SILENCE split it (see
    `midi.split_at_silences`; one message says how many files were split). Unreadable files and
    files without notes are skipped and summarised in one message (`strict` makes the first one
    an error). The result is cached under that SHA-256, so the second run on the same files
    starts at once.
    """
    from safetensors import SafetensorError, safe_open
    from safetensors.numpy import save as np_save

    log = log or (lambda message: print(message, file=sys.stderr))
    base = Path(corpus.spec) if Path(corpus.spec).is_dir() else None
    names = [str(f.resolve().relative_to(base)) if base else f.name for f in corpus.files]
    contents = []
    for f in corpus.files:
        try:
            contents.append(f.read_bytes())
        except OSError as e:
            raise SeqgenError(f"{f}: {e.strerror or e}") from None
    # What the run records as its corpus (a resume compares it): the files and the reading settings.
    # Its "version" stays 1, as runs recorded it before; the cache's own version names the file.
    key = hashlib.sha256(json.dumps({
        "version": 1, "tokenizer": tokenizer.to_dict(),
        "files": [[n, hashlib.sha256(c).hexdigest()] for n, c in zip(names, contents)],
    }).encode()).hexdigest()
    cached_as = key if MIDI_CACHE_VERSION == 1 else hashlib.sha256(f"{MIDI_CACHE_VERSION}:{key}".encode()).hexdigest()
    cache = cache_dir() / "midi" / f"{cached_as[:40]}.safetensors"
    if cache.parent.is_dir():
        sweep_stale_temp_files(cache.parent)

    pieces, skipped, split = None, [], []
    if cache.exists():
        try:
            with safe_open(cache, "np") as f:
                skipped = json.loads(f.metadata()["skipped"])
                split = json.loads(f.metadata()["split"])
                notes = {k: f.get_tensor(k) for k in ("pitch", "velocity", "start", "end", "offsets")}
            log(f"Using the cached encoding of {corpus.name} ({cache})")
            pieces = _unpack(notes)
        except (OSError, SafetensorError, KeyError, ValueError):
            log(f"Ignoring an unreadable cache file; reading {corpus.name} again")
            pieces, skipped, split = None, [], []
    if pieces is None:
        pieces = []
        for name, data in zip(names, contents):
            try:
                notes = tokenizer.read_notes(data)
            except SeqgenError as e:
                skipped.append([name, str(e).split(": ", 1)[-1]])
                continue
            if len(notes) == 0:
                skipped.append([name, "no notes" + ("" if tokenizer.config.keep_drums else " (drums are left out)")])
                continue
            parts, _ = tokenizer.split(notes)
            if len(parts) > 1:
                split.append([name, len(parts)])
            pieces.extend(parts)
        if pieces:  # a corpus with nothing usable is an error, and is read again next time
            offsets = np.cumsum([0] + [len(p) for p in pieces])
            joined = np.concatenate(pieces)
            tensors = {k: np.ascontiguousarray(joined[k]) for k in ("pitch", "velocity", "start", "end")}
            try:
                cache.parent.mkdir(parents=True, exist_ok=True)
                metadata = {"skipped": json.dumps(skipped), "split": json.dumps(split)}
                atomic_write_bytes(cache, np_save({**tensors, "offsets": offsets}, metadata=metadata))
            except (OSError, SeqgenError) as e:  # a cache is an optimisation: without it the run goes on
                log(f"Warning: {e}")

    if skipped and pieces:
        if strict:
            name, reason = skipped[0]
            raise SeqgenError(f"{name}: {reason} (--strict)")
        shown = "; ".join(f"{n}: {r}" for n, r in skipped[:5])
        more = f"; and {len(skipped) - 5} more" if len(skipped) > 5 else ""
        log(f"Skipped {len(skipped)} of {len(names)} MIDI files: {shown}{more}")
    if split:
        shown = ", ".join(f"{n} ({k} pieces)" for n, k in split[:5])
        more = f", and {len(split) - 5} more" if len(split) > 5 else ""
        log(f"Split {len(split)} of {len(names)} MIDI file{'s' * (len(names) != 1)} at silences of over "
            f"{MAX_SILENCE:g} s: {shown}{more}")
    if not pieces:
        why = f" ({skipped[0][0]}: {skipped[0][1]})" if skipped else ""
        raise SeqgenError(f"{corpus.spec}: no usable notes in {len(names)} MIDI file{'s' * (len(names) != 1)}{why}")
    return pieces, key


def _unpack(arrays: dict) -> list:
    offsets = arrays.pop("offsets")
    joined = np.zeros(int(offsets[-1]), dtype=NOTE_DTYPE)
    for k, v in arrays.items():
        joined[k] = v
    return [joined[a:b] for a, b in zip(offsets[:-1], offsets[1:])]
