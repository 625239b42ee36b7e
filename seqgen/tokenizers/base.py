"""What every tokenizer is, and the registry that rebuilds one from a checkpoint.

A tokenizer turns a corpus into integer ids and back, and saves itself as a JSON-able dict with a
`kind`, so a checkpoint can rebuild it with `tokenizer_from_dict`. A new tokenizer is one module
in this package: a class with the `Tokenizer` members, decorated with `@register`, and imported
by the package's __init__.
"""

from __future__ import annotations

from typing import Any, Protocol

import numpy as np

from ..errors import SeqgenError


class Tokenizer(Protocol):
    """The members every tokenizer has; the model, trainer and sampler only ever see its ids."""

    kind: str  # its name in checkpoints and the registry: "char", "midi"
    name: str  # its name on the command line (`seqgen train --tokenizer`): "char", "performance"
    unit: str  # what one token is, for reports: "char", "event"
    reads: str  # the kind of corpus it encodes, and of what it decodes to: "text" or "midi"

    @property
    def vocab_size(self) -> int: ...

    @property
    def control_size(self) -> int: ...  # numbers the model reads beside each token (seqgen.controls; 0: none)

    def encode(self, data: Any) -> np.ndarray: ...  # text, or a MIDI performance's notes -> (N,) ids

    def decode(self, ids: Any) -> Any: ...  # text, or (notes, what the decoder repaired)

    def describe(self) -> str: ...  # one line for `seqgen info`

    def reading(self) -> dict: ...  # how to read a corpus as its training read it (load_corpus settings)

    def to_dict(self) -> dict: ...  # JSON-able, with "kind"; from_dict (a classmethod) reads it back

    def options(self) -> dict: ...  # the `seqgen train` options that give its settings (fine-tuning reads with them)

    # (one that reads what both read, every id of this one's kept, each of its ids' id there):
    # what fine-tuning on a corpus that `other` was fitted to trains; one SeqgenError if none can
    def extended(self, other: Any) -> tuple[Any, np.ndarray]: ...


class TextTokenizer(Tokenizer, Protocol):
    """A tokenizer of text (reads "text"): what sampling from a text model needs besides."""

    chars: list[str]  # the vocabulary, in id order

    def unknown(self, text: str) -> list[str]: ...  # the characters of `text` it has no id for


class MusicTokenizer(Tokenizer, Protocol):
    """A tokenizer of MIDI performances (reads "midi"): what reading a MIDI corpus, priming and
    sampling need besides. Notes are a structured array of midi_io.NOTE_DTYPE."""

    token_seconds: np.ndarray  # (V,) seconds each token moves the clock

    # notes -> ids, up to `until` s, announcing the parts of `ensemble` (default: the notes' own)
    def encode(self, data: Any, *, until: float | None = None, ensemble: Any = None) -> np.ndarray: ...

    def read_notes(self, source: Any, name: str | None = None) -> np.ndarray: ...  # a MIDI file's notes

    # (the notes it encodes of a performance that midi_io.read_performance read, with its instruments,
    # and the counts of what it leaves out, for the corpus summary: "merged", "drum_notes_left_out")
    def performance(self, notes: np.ndarray) -> tuple[np.ndarray, dict]: ...

    def split(self, notes: np.ndarray) -> tuple[list[np.ndarray], list[float]]: ...  # pieces at long silences

    def duration(self, notes: np.ndarray) -> float: ...  # seconds, as encoded

    def augmented(self, notes: np.ndarray, rng: np.random.Generator, transpose: int, stretch: float) -> np.ndarray: ...

    def chord(self, pitches: Any, velocity: int = 80, ensemble: Any = None) -> np.ndarray: ...  # ids of a primer chord

    def seconds(self, ids: Any) -> float: ...  # the time `ids` take

    def played(self, ids: Any) -> np.ndarray: ...  # the parts that strike a note in `ids`

    def controls(self, ids: Any) -> np.ndarray: ...  # (N, control_size) float32: the control values at each id

    # (K, control_size): what each of K samples is told: the controls asked for (a sampling option -> its value),
    # the rest drawn from the data's, or a primer's (its ids) own
    def control_inputs(self, asked: dict, num_samples: int, seed: int | None = None, primer: Any = None) -> np.ndarray: ...

    def controls_told(self, vector: np.ndarray) -> dict: ...  # what a sample's (control_size,) inputs ask for

    # the parts each of `num_samples` may play (None: any): named by `instruments`, else the corpus's ensembles
    def ensembles_for(self, prime: Any, num_samples: int, instruments: str | None = None,
                      seed: int | None = None) -> list[frozenset[int] | None]: ...

    def rules(self, valid_only: bool = True, parts: Any = None) -> Any: ...  # sampling's event rules

    def no_notes(self) -> str: ...  # what to say of a file in which it finds no notes


TOKENIZERS: dict[str, Any] = {}  # kind -> class, filled by @register


def register(cls):
    """Make a tokenizer class known to `tokenizer_from_dict` under its `kind`."""
    TOKENIZERS[cls.kind] = cls
    return cls


def tokenizer_from_dict(data: dict) -> Tokenizer:
    """The tokenizer a checkpoint's settings describe, or one SeqgenError saying what is wrong."""
    if not isinstance(data, dict):
        raise SeqgenError("the tokenizer settings are not a table")
    kind = data.get("kind")
    if not isinstance(kind, str) or kind not in TOKENIZERS:
        raise SeqgenError(f"unknown tokenizer kind {kind!r:.40}; this seqgen knows {', '.join(TOKENIZERS)}")
    try:
        return TOKENIZERS[kind].from_dict(data)
    except (KeyError, TypeError, ValueError) as e:
        raise SeqgenError(f"bad {kind} tokenizer settings ({e})") from None


def tokenizer_named(name: str, reads: str, corpus: str) -> Any:
    """The tokenizer class `--tokenizer NAME` means, for a corpus of kind `reads` (named `corpus`)."""
    cls = next((c for c in TOKENIZERS.values() if c.name == name), None)
    if cls is None:
        raise SeqgenError(f"unknown tokenizer {name!r}; this seqgen knows {', '.join(c.name for c in TOKENIZERS.values())}")
    if cls.reads != reads:
        raise SeqgenError(f"--tokenizer {name} reads {cls.reads} corpora, and {corpus} is a {reads} corpus")
    return cls


def id_dtype(vocab_size: int):
    """The smallest unsigned dtype that holds every id: corpora stay 1-2 bytes per token."""
    return np.uint8 if vocab_size <= 1 << 8 else np.uint16 if vocab_size <= 1 << 16 else np.uint32
