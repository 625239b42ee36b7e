"""From what a user names (a path, or a built-in corpus' name) to a Corpus of the right kind."""

from __future__ import annotations

import os
from pathlib import Path

from ..errors import SeqgenError
from .base import LABELS, MIDI, TEXT, Corpus
from .builtins import BUILTINS, DEFAULT_CORPUS
from .encoded import EncodedCorpus
from .midi import MidiCorpus
from .text import TextCorpus

# Every kind of corpus, asked in this order whether a path holds theirs; text takes what no other
# claims. An encoded corpus is a directory seqgen wrote, never read as anything else.
CORPUS_KINDS: tuple[type[Corpus], ...] = (EncodedCorpus, MidiCorpus, TextCorpus)
DEFINITE: tuple[type[Corpus], ...] = (EncodedCorpus,)
HOLDS = {TEXT: "is text, not MIDI", MIDI: "holds MIDI files"}


def corpus_class(path: Path, kind: str | None = None) -> type[Corpus]:
    """The kind of corpus that reads `path`: the first that claims it, of `kind` when given (a
    path any kind would read is then read as that kind)."""
    for cls in CORPUS_KINDS:
        if cls.claims(path):
            if kind is None or cls.kind == kind:
                return cls
            if cls in DEFINITE:
                raise SeqgenError(f"{path}: an encoded {LABELS[cls.kind]} corpus, not {LABELS[kind]}")
    return next(cls for cls in reversed(CORPUS_KINDS) if cls.kind == kind)


def kind_of(spec) -> str | None:
    """text or midi: what load_corpus would read `spec` as (None when it names nothing)."""
    path = Path(spec)
    if path.is_dir() or path.is_file():  # else load_corpus says what is wrong with it
        return corpus_class(path).kind
    builtin = BUILTINS.get(str(spec))
    return builtin.kind if builtin is not None else None


def check_kind(spec, kind: str, what: str) -> None:
    """One clear line when `spec` holds the other kind of data than `what` (say "this is a text
    model") needs, instead of the reader's complaint about the first file."""
    found = kind_of(spec)
    if found is not None and found != kind:
        raise SeqgenError(f"{what}; {spec} {HOLDS[found]}")


def check_options(corpus: Corpus, given: set[str]) -> None:
    """One clear line for a `seqgen train` option that only another kind of corpus takes."""
    for cls in CORPUS_KINDS:
        misplaced = given & cls.options - corpus.options
        if misplaced:
            flag = "--" + sorted(misplaced)[0].replace("_", "-")
            raise SeqgenError(f"{flag} is a {LABELS[cls.kind]} option, and {corpus.spec} is a "
                              f"{LABELS[corpus.kind]} corpus")


def load_corpus(spec: str | os.PathLike | None, kind: str | None = None, **settings) -> Corpus:
    """A path to a file or directory, or a built-in corpus name (None means the default).

    `kind` (text or midi) overrides what the path looks like. `settings` are reading options a
    kind of corpus may take (text: `keep_line_endings`, see text.LineEnds).
    """
    spec = DEFAULT_CORPUS if spec is None else spec
    path = Path(spec)
    if path.exists() and not (path.is_dir() or path.is_file()):
        raise SeqgenError(f"{spec}: not a regular file or directory")
    if path.exists():
        return corpus_class(path, kind).open(path, settings)
    builtin = BUILTINS.get(str(spec))
    if builtin is None:
        raise SeqgenError(f"{spec}: no such file, directory or built-in corpus (built-in: {', '.join(BUILTINS)})")
    if kind and kind != builtin.kind:
        raise SeqgenError(f"{spec} is a built-in {builtin.kind} corpus, not {kind}")
    return builtin.open(settings)
