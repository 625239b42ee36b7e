"""The built-in corpora: what `seqgen train NAME` can name. They are listed as data, in the
manifest corpora/manifest.json (shipped in the wheel as seqgen/bundled/), with their kind, source,
SHA-256, licence and provenance; this module only knows how to get each kind of source."""

from __future__ import annotations

import hashlib
import http.client
import io
import json
import os
import shutil
import sys
import tempfile
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from ..atomic import atomic_write_bytes
from ..errors import SeqgenError
from .base import MIDI, TEXT, Corpus, cache_dir, files_under
from .midi import MIDI_SUFFIXES, MidiCorpus
from .text import LineEnds, TextCorpus, read_text

DEFAULT_CORPUS = "python-docs"
MANIFEST_FORMAT = "seqgen-corpora"


def bundled_root() -> Path:
    """The folder of the manifest and the bundled samples: seqgen/bundled in an installed wheel,
    corpora/ at the top of a source checkout (or an editable install)."""
    package = Path(__file__).resolve().parent.parent
    installed = package / "bundled"
    return installed if installed.is_dir() else package.parent / "corpora"


@dataclass(frozen=True)
class Builtin:
    """A built-in corpus: what `seqgen corpus list` shows, and how to get it (from Python, by
    converting a dependency's data, by a verified download, or bundled with seqgen)."""

    name: str
    description: str
    provenance: str
    licence: str
    approx_size: str
    kind: str = TEXT
    load: Callable[[], str] | None = None  # text that ships with Python: nothing to fetch
    convert: Callable[[Path], None] | None = None  # or MIDI written once from a dependency's data
    url: str | None = None  # or downloaded once, verified and cached
    sha256: str | None = None
    time_budget: float | None = None  # seconds `seqgen train NAME` runs when given no limit
    bundled: Path | None = None  # or a file or folder bundled with seqgen

    @property
    def cache_path(self) -> Path:
        """The cached file (text) or directory of files (MIDI)."""
        return cache_dir() / "corpora" / (self.name if self.kind == MIDI else f"{self.name}.txt")

    @property
    def available(self) -> bool:
        return self.load is not None or self.bundled is not None or self.cache_path.exists()

    @property
    def where(self) -> str:
        if self.load is not None:
            return "ships with Python"
        if self.bundled is not None:
            return "bundled with seqgen"
        if self.convert is not None:
            return "converted" if self.available else "converted on first use"
        return "downloaded" if self.available else "download on first use"

    def fetch(self, url: str | None = None) -> Path:
        """Where the corpus is on disk, downloading or converting it first if need be."""
        if self.bundled is not None:
            return self.bundled
        return builtin_directory(self) if self.convert is not None else download(self, url=url)

    def open(self, settings: dict) -> Corpus:
        """The corpus, fetched on first use; `spec` is the name, so a resumed run finds it again."""
        if self.kind == MIDI:
            folder = self.bundled or builtin_directory(self)
            return MidiCorpus(self.name, self.name, self.provenance, tuple(files_under(folder, MIDI_SUFFIXES)))
        ends = LineEnds(settings.get("keep_line_endings", False))
        return TextCorpus.of(ends(builtin_text(self)), self.name, self.name, self.provenance, ends)


def _python_docs() -> str:
    # pydoc_data.topics holds the text of the Python Language Reference that `help()` shows:
    # about half a megabyte of English prose and code examples, on every Python install.
    from pydoc_data.topics import topics

    return "\n\n".join(topics[key].strip("\n") for key in sorted(topics)) + "\n"


def _music21_corpus(name: str):
    try:
        from music21 import corpus
    except ImportError:
        raise SeqgenError(f"the {name} corpus is made from the music21 package: pip install music21") from None
    return corpus


def _bach_chorales(dest: Path) -> None:
    """Write the Bach chorales that ship with music21 as MIDI files in `dest`."""
    sources = [p for p in _music21_corpus("bach-chorales").getComposer("bach") if p.suffix in (".mxl", ".xml", ".krn")]
    if not sources:
        raise SeqgenError("this music21 installation has no Bach chorales in its corpus")
    _convert(dest, sources, _chorale_midi, lambda source: source.stem, "chorales")


QUARTET_COMPOSERS = ("haydn", "mozart", "beethoven")


def _string_quartets(dest: Path) -> None:
    """Write the string quartets that ship with music21 (MusicXML movements by Haydn, Mozart and
    Beethoven) as MIDI files in `dest`, each part on its own General MIDI instrument."""
    m21 = _music21_corpus("string-quartets")
    sources = [p for c in QUARTET_COMPOSERS for p in m21.getComposer(c) if p.suffix == ".mxl" and "k545" not in p.parts]
    if not sources:
        raise SeqgenError("this music21 installation has no string quartets in its corpus")
    root = Path(m21.__file__).resolve().parent  # music21/corpus: name each movement by its path there

    def named(source: Path) -> str:
        parts = source.resolve().relative_to(root).with_suffix("").parts
        return "-".join(parts[parts.index(next(c for c in QUARTET_COMPOSERS if c in parts)):])

    _convert(dest, sources, _quartet_midi, named, "quartet movements")


def _convert(dest: Path, sources: list[Path], convert: Callable, name: Callable[[Path], str], what: str) -> None:
    """Write `convert(source)`'s MIDI files for every source into `dest` (in parallel), as
    name(source).mid (-2, -3, ... for a source of several pieces), and say what failed."""
    from concurrent.futures import ProcessPoolExecutor

    from tqdm import tqdm

    failed = []
    with ProcessPoolExecutor(max_workers=min(4, os.cpu_count() or 1)) as pool:
        jobs = pool.map(convert, sources, chunksize=8)
        for source, (pieces, error) in tqdm(zip(sources, jobs), total=len(sources), desc=f"Converting {what}",
                                            unit="file", disable=None, file=sys.stderr):
            if error:
                failed.append(f"{source.name} ({error})")
            for i, data in enumerate(pieces, 1):
                suffix = "" if len(pieces) == 1 else f"-{i}"
                (dest / f"{name(source)}{suffix}.mid").write_bytes(data)
    if failed:
        print(f"Left out {len(failed)} of {len(sources)} {what} music21 could not write as MIDI: "
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


def _quartet_midi(path: Path) -> tuple[list[bytes], str | None]:
    """One movement as MIDI, or the reason it could not be converted. Each part plays the General
    MIDI program its name says ("Violin I": 40, "Viola": 41, "Violoncello": 42); notes take their
    velocity from the score's dynamics, and their times from its metronome marks (100 quarters a
    minute where there are none). Written with pretty_midi, without music21's MIDI writer: that
    one expands repeats, which fails on a third of these scores, and its 10,080 ticks a quarter
    put long movements past what MIDI readers accept."""
    import bisect

    import pretty_midi
    from music21 import converter, instrument, tempo

    try:
        score = converter.parse(path).stripTies()
        marks = sorted((float(m.offset), m.getQuarterBPM() or 100.0)
                       for m in score.flatten().getElementsByClass(tempo.MetronomeMark))
        if not marks or marks[0][0] > 0:
            marks.insert(0, (0.0, marks[0][1] if marks else 100.0))
        quarters = [q for q, _ in marks]
        at = [0.0]  # the second each tempo starts
        for (q0, bpm), q1 in zip(marks, quarters[1:]):
            at.append(at[-1] + (q1 - q0) * 60 / bpm)

        def seconds(q: float) -> float:
            i = bisect.bisect_right(quarters, q) - 1
            return at[i] + (q - quarters[i]) * 60 / marks[i][1]

        pm = pretty_midi.PrettyMIDI(initial_tempo=marks[0][1])
        for part in getattr(score, "parts", [score]):
            try:
                program = instrument.fromString(part.partName or "").midiProgram
            except Exception:  # a part name music21 does not know
                program = None
            played = pretty_midi.Instrument(48 if program is None else program, name=part.partName or "")
            for note in part.flatten().notes:  # notes and chords
                start, end = seconds(float(note.offset)), seconds(float(note.offset + note.quarterLength))
                velocity = min(127, max(1, round(127 * note.volume.getRealized())))
                played.notes += [pretty_midi.Note(velocity, p.midi, start, end) for p in note.pitches if end > start]
            pm.instruments.append(played)
        buffer = io.BytesIO()
        pm.write(buffer)
        return [buffer.getvalue()], None
    except Exception as e:  # music21 raises its own types for encodings it cannot read
        return [], f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}"


LOADERS = {"python:pydoc_data.topics": _python_docs}
CONVERTERS = {"music21:bach": _bach_chorales, "music21:quartets": _string_quartets}


def tree_sha256(path: Path) -> str:
    """A file's SHA-256, or a folder's: that of `sha256sum` lines for its files, sorted by path."""
    if path.is_file():
        return hashlib.sha256(path.read_bytes()).hexdigest()
    lines = "".join(f"{hashlib.sha256(p.read_bytes()).hexdigest()}  {p.relative_to(path).as_posix()}\n"
                    for p in sorted(path.rglob("*")) if p.is_file())
    return hashlib.sha256(lines.encode()).hexdigest()


def read_manifest(root: Path) -> dict[str, Builtin]:
    """The built-in corpora that root/manifest.json lists, by name."""
    manifest = json.loads((root / "manifest.json").read_text(encoding="utf-8"))
    if manifest.get("format") != MANIFEST_FORMAT or manifest.get("version") != 1:
        raise SeqgenError(f"{root / 'manifest.json'}: not a version 1 {MANIFEST_FORMAT} manifest")
    builtins = {}
    for entry in manifest["corpora"]:
        source = entry["source"]
        how: dict = {}
        if source.startswith("https://"):
            how["url"] = source
        elif source in LOADERS:
            how["load"] = LOADERS[source]
        elif source in CONVERTERS:
            how["convert"] = CONVERTERS[source]
        else:
            how["bundled"] = root / source
        builtins[entry["name"]] = Builtin(
            name=entry["name"], description=entry["description"], provenance=entry["provenance"],
            licence=entry["licence"], approx_size=entry["approx_size"], kind=entry["kind"], sha256=entry["sha256"],
            time_budget=entry.get("time_budget"), **how)
    return builtins


BUILTINS = read_manifest(bundled_root())


def builtin_text(builtin: Builtin) -> str:
    if builtin.load is not None:
        return builtin.load()
    if builtin.bundled is not None:
        return read_text(builtin.bundled)
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


