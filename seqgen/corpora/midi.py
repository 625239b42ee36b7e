"""MIDI corpora: a MIDI file or a folder of them, read once into performances (every note with its
instrument) and cached by the files' content; each tokenizer takes from them the pieces it encodes."""

from __future__ import annotations

import hashlib
import json
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..atomic import atomic_write_bytes
from ..config import MIDI_TRAIN_DEFAULTS, MultitrackConfig
from ..errors import SeqgenError
from ..midi_io import DRUMS, NOTE_DTYPE, PROGRAM_NOTE_DTYPE, instrument_counts, read_performance
from ..tokenizers import DurationTokenizer, MidiTokenizer, MusicTokenizer, tokenizer_named
from ..tokenizers.midi_events import MAX_SILENCE
from .base import MIDI, Corpus, cache_dir, files_under

MIDI_SUFFIXES = (".mid", ".midi")
Performance = tuple[str, "np.ndarray | None", str]  # (a file's name, its notes with their instruments, or None and why)


def is_midi(path: Path) -> bool:
    """A .mid or .midi file, or any file that starts as a standard MIDI file does."""
    if path.suffix.lower() in MIDI_SUFFIXES:
        return True
    if not path.is_file():  # never open a FIFO to look: the open would wait for a writer
        return False
    try:
        with path.open("rb") as f:
            return f.read(4) == b"MThd"
    except OSError:
        return False


@dataclass(frozen=True)
class MidiCorpus(Corpus):
    """MIDI files, each one or more pieces (see `midi_pieces`). Whole pieces are held out for
    validation, and training pieces are shuffled and augmented anew every epoch (`data.PieceData`)."""

    files: tuple[Path, ...] = ()
    root: Path | None = None  # the folder the files were found under: their names in the cache key are relative to it
    _read: dict = field(default_factory=dict, compare=False, repr=False)  # what `performances` read

    kind = MIDI
    options = frozenset({*MultitrackConfig.__dataclass_fields__, "transpose", "stretch"})
    train_defaults = MIDI_TRAIN_DEFAULTS

    @staticmethod
    def claims(path: Path) -> bool:
        return bool(files_under(path, MIDI_SUFFIXES)) if path.is_dir() else is_midi(path)

    @classmethod
    def open(cls, path: Path, settings: dict) -> MidiCorpus:
        files = files_under(path, MIDI_SUFFIXES) if path.is_dir() else [path]
        if not files:
            raise SeqgenError(f"{path}: no .mid or .midi files in this directory")
        name = path.resolve().name if path.is_dir() else path.stem
        return cls(name, str(path.resolve()), str(path), tuple(files), path.resolve() if path.is_dir() else None)

    def _size(self) -> dict:
        return {"files": len(self.files)}

    def performances(self, log=None) -> tuple[list[Performance], list[list[str]]]:
        """`read_performances`, read once for this corpus whatever asks for it."""
        if "performances" not in self._read:
            self._read["performances"] = read_performances(self, log)
        return self._read["performances"]

    def new_tokenizer(self, options: dict, log=None) -> MidiTokenizer:
        """`--tokenizer`'s, else duration (the instruments kept, each note with its length) when at
        least half the files hold more than one instrument or drums (a few cantata settings among
        387 chorales do not make them a band): with NOTE_OFFs to track across many instruments a
        model leaves notes droning (docs/music.md). Else performance: one part, Performance
        RNN's events, what a piano's performance needs."""
        name = options.get("tokenizer")
        if name is None:
            read = [notes for _, notes, _ in self.performances(log)[0] if notes is not None]
            several = sum(len(np.unique(n["program"])) > 1 or bool((n["program"] == DRUMS).any()) for n in read)
            name = DurationTokenizer.name if 2 * several >= max(len(read), 1) else MidiTokenizer.name
            if name == DurationTokenizer.name:
                (log or (lambda m: print(m, file=sys.stderr)))(
                    f"Tokenizer: duration (instruments kept, notes with their lengths), since {several:,} of "
                    f"{len(self.files):,} files hold several instruments or drums (--tokenizer performance merges "
                    "them into one part)")
        cls = tokenizer_named(name, MIDI, self.spec)
        fields = cls.config_class.__dataclass_fields__
        foreign = sorted(k for k in options.keys() & self.options - set(fields) - {"transpose", "stretch"})
        if foreign:
            raise SeqgenError(f"--{foreign[0].replace('_', '-')} does not apply to --tokenizer {name}")
        tokenizer = cls(cls.config_class(**{k: v for k, v in options.items() if k in fields}))
        tokenizer.fit(notes for _, notes, _ in self.performances(log)[0] if notes is not None)
        return tokenizer

    def dataset(self, tokenizer, cfg, *, strict=False, log=None):
        from ..data import PieceData

        pieces, sha256 = midi_pieces(self, tokenizer, strict=strict, log=log)

        def encode(notes, rng):
            if rng is None:
                return tokenizer.encode(notes)
            return tokenizer.augmented(notes, rng, cfg.transpose, cfg.stretch)

        controls = tokenizer.controls if tokenizer.control_size else None  # computed after augmentation
        return PieceData(pieces, encode, cfg.val_fraction, cfg.seed, sha256, controls)

    def all_ids(self, tokenizer, *, log=None):
        pieces, _ = midi_pieces(self, tokenizer, log=log)
        return np.concatenate([tokenizer.encode(p) for p in pieces])


MIDI_CACHE_VERSION = 4  # 4: every file's notes with their instruments, whatever the tokenizer
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


def read_performances(corpus: MidiCorpus, log=None) -> tuple[list[Performance], list[list[str]]]:
    """(every file's performance as midi_io.read_performance reads it, in file order; [name,
    SHA-256] of every file).

    Unreadable files are kept as (name, None, why), for the tokenizer's reader to skip and report.
    The result is cached under a SHA-256 of the files' content, so the second run on the same files
    starts at once, whatever its tokenizer.
    """
    from safetensors import SafetensorError, safe_open
    from safetensors.numpy import save as np_save

    log = log or (lambda message: print(message, file=sys.stderr))
    base = corpus.root
    names = [str(f.resolve().relative_to(base)) if base else f.name for f in corpus.files]
    contents = []
    for f in corpus.files:
        try:
            contents.append(f.read_bytes())
        except OSError as e:
            raise SeqgenError(f"{f}: {e.strerror or e}") from None
    digests = [[n, hashlib.sha256(c).hexdigest()] for n, c in zip(names, contents)]
    cached_as = hashlib.sha256(json.dumps({"cache": MIDI_CACHE_VERSION, "files": digests}).encode()).hexdigest()
    cache = cache_dir() / "midi" / f"{cached_as[:40]}.safetensors"
    if cache.parent.is_dir():
        sweep_stale_temp_files(cache.parent)

    if cache.exists():
        try:
            with safe_open(cache, "np") as f:
                unreadable = dict(json.loads(f.metadata()["unreadable"]))
                arrays = {k: f.get_tensor(k) for k in f.keys()}
            read = iter(_unpack(arrays))
            performances = [(n, None, unreadable[n]) if n in unreadable else (n, next(read), "") for n in names]
            log(f"Using the cached encoding of {corpus.name} ({cache})")
            return performances, digests
        except (OSError, SafetensorError, KeyError, ValueError, TypeError, StopIteration):
            log(f"Ignoring an unreadable cache file; reading {corpus.name} again")
    performances = []
    for name, data in zip(names, contents):
        try:
            performances.append((name, read_performance(data, name=name), ""))
        except SeqgenError as e:
            performances.append((name, None, str(e).split(": ", 1)[-1]))
    readable = [notes for _, notes, _ in performances if notes is not None]
    if readable:  # nothing readable is an error, and is read again next time
        offsets = np.cumsum([0] + [len(p) for p in readable])
        joined = np.concatenate(readable)
        tensors = {k: np.ascontiguousarray(joined[k]) for k in joined.dtype.names or ()}
        failed = [[n, why] for n, notes, why in performances if notes is None]
        try:
            cache.parent.mkdir(parents=True, exist_ok=True)
            atomic_write_bytes(cache, np_save({**tensors, "offsets": offsets}, metadata={"unreadable": json.dumps(failed)}))
        except (OSError, SeqgenError) as e:  # a cache is an optimisation: without it the run goes on
            log(f"Warning: {e}")
    return performances, digests


def midi_pieces(corpus: MidiCorpus, tokenizer: MusicTokenizer, *, strict: bool = False, log=None) -> tuple[list, str]:
    """(the notes of every piece as `tokenizer` reads them, a SHA-256 of the files' content and the
    tokenizer's settings: what a run records as its corpus).

    A file is one piece, or several when silences of over MAX_SILENCE split it (one message says
    how many files were split). Unreadable files and files without notes are skipped and
    summarised in one message (`strict` makes the first one an error), and one line says what
    the files held and what the tokenizer merged or left out.
    """
    log = log or (lambda message: print(message, file=sys.stderr))
    performances, digests = corpus.performances(log)
    # Its "version" stays 1, as runs recorded it before; the cache's own version names its file.
    key = hashlib.sha256(json.dumps({"version": 1, "tokenizer": tokenizer.to_dict(), "files": digests}).encode()).hexdigest()
    pieces, skipped, split, programs = [], [], [], set()
    read: Counter[str] = Counter()
    for name, performance, why in performances:
        if performance is None:
            skipped.append([name, why])
            continue
        notes, lost = tokenizer.performance(performance)
        if len(notes) == 0:
            skipped.append([name, tokenizer.no_notes()])
            continue
        read.update({"files": 1, **instrument_counts(performance), **lost})
        read["files_merged"] += bool(lost.get("merged"))
        programs.update(performance["program"].tolist())
        parts, _ = tokenizer.split(notes)
        if len(parts) > 1:
            split.append([name, len(parts)])
        pieces.extend(parts)
    read["programs"] = len(programs - {DRUMS})

    names = len(performances)
    if not pieces:
        why = f" ({skipped[0][0]}: {skipped[0][1]})" if skipped else ""
        raise SeqgenError(f"{corpus.spec}: no usable notes in {names} MIDI file{'s' * (names != 1)}{why}")
    log(read_message(read))
    if skipped:
        if strict:
            name, reason = skipped[0]
            raise SeqgenError(f"{name}: {reason} (--strict)")
        shown = "; ".join(f"{n}: {r}" for n, r in skipped[:5])
        more = f"; and {len(skipped) - 5} more" if len(skipped) > 5 else ""
        log(f"Skipped {len(skipped)} of {names} MIDI files: {shown}{more}")
    if split:
        shown = ", ".join(f"{n} ({k} pieces)" for n, k in split[:5])
        more = f", and {len(split) - 5} more" if len(split) > 5 else ""
        log(f"Split {len(split)} of {names} MIDI file{'s' * (names != 1)} at silences of over "
            f"{MAX_SILENCE:g} s: {shown}{more}")
    return pieces, key


def read_message(read: Counter) -> str:
    """The corpus summary: what the files held, and what the tokenizer merged or left out."""
    files = f"{read['files']:,} MIDI file{'s' * (read['files'] != 1)}"
    drums = " and drums" if read["drum_notes"] else ""
    message = (f"Read {files}: {read['notes']:,} notes in {read['instruments']:,} instrument parts "
               f"({read['programs']} General MIDI program{'s' * (read['programs'] != 1)}{drums})")
    lost = []
    if read["merged"]:
        lost.append(f"merged the {read['merged']:,} parts of {read['files_merged']:,} "
                    f"file{'s' * (read['files_merged'] != 1)} into one part each (--tokenizer duration keeps them)")
    if read["drum_notes_left_out"]:
        lost.append(f"left out {read['drum_notes_left_out']:,} drum notes (--keep-drums keeps them)")
    return message + ("; " + " and ".join(lost) if lost else "")


def _unpack(arrays: dict) -> list:
    offsets = arrays.pop("offsets")
    joined = np.zeros(int(offsets[-1]), dtype=PROGRAM_NOTE_DTYPE if "program" in arrays else NOTE_DTYPE)
    for k, v in arrays.items():
        joined[k] = v
    return [joined[a:b] for a, b in zip(offsets[:-1], offsets[1:])]
