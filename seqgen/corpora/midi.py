"""MIDI corpora: a MIDI file or a folder of them, read once into the notes of separate pieces and
cached, keyed by the content of the files and the tokenizer's reading settings."""

from __future__ import annotations

import hashlib
import json
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..atomic import atomic_write_bytes
from ..config import MIDI_TRAIN_DEFAULTS, MidiConfig
from ..errors import SeqgenError
from ..midi_io import NOTE_DTYPE
from ..tokenizers import MidiTokenizer, MusicTokenizer
from ..tokenizers.midi_events import MAX_SILENCE
from .base import MIDI, Corpus, cache_dir, files_under

MIDI_SUFFIXES = (".mid", ".midi")


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

    kind = MIDI
    options = frozenset({*MidiConfig.__dataclass_fields__, "transpose", "stretch"})
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

    def new_tokenizer(self, options: dict) -> MidiTokenizer:
        return MidiTokenizer(MidiConfig(**{k: v for k, v in options.items() if k in MidiConfig.__dataclass_fields__}))

    def dataset(self, tokenizer, cfg, *, strict=False, log=None):
        from ..data import PieceData

        pieces, sha256 = midi_pieces(self, tokenizer, strict=strict, log=log)

        def encode(notes, rng):
            if rng is None:
                return tokenizer.encode(notes)
            return tokenizer.augmented(notes, rng, cfg.transpose, cfg.stretch)

        return PieceData(pieces, encode, cfg.val_fraction, cfg.seed, sha256)

    def all_ids(self, tokenizer, *, log=None):
        pieces, _ = midi_pieces(self, tokenizer, log=log)
        return np.concatenate([tokenizer.encode(p) for p in pieces])


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


def midi_pieces(corpus: MidiCorpus, tokenizer: MusicTokenizer, *, strict: bool = False, log=None) -> tuple[list, str]:
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
    base = corpus.root
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
                arrays = {k: f.get_tensor(k) for k in ("pitch", "velocity", "start", "end", "offsets")}
            log(f"Using the cached encoding of {corpus.name} ({cache})")
            pieces = _unpack(arrays)
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
                skipped.append([name, tokenizer.no_notes()])
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
