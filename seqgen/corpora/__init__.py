"""Corpora: where the data comes from, and the only code besides the tokenizers that knows its kind.

One module per job: `base` (the Corpus interface every kind has), one per kind of corpus (`text`:
text in memory; `encoded`: a text corpus encoded once to token ids on disk; `midi`: MIDI files,
read once into pieces and cached), `builtins` (the built-in corpora, listed in the manifest
corpora/manifest.json) and `loading` (from a path or name to a corpus of the right kind).
"""

from .base import LABELS, MIDI, TEXT, Corpus, cache_dir
from .builtins import BUILTINS, DEFAULT_CORPUS, Builtin, builtin_directory, download, tree_sha256
from .encoded import EncodedCorpus, encode_corpus, open_encoded
from .loading import CORPUS_KINDS, check_kind, check_options, kind_of, load_corpus
from .midi import MidiCorpus, midi_pieces
from .text import LineEnds, TextCorpus, converted_message, read_text

__all__ = ["BUILTINS", "CORPUS_KINDS", "DEFAULT_CORPUS", "LABELS", "MIDI", "TEXT", "Builtin", "Corpus",
           "EncodedCorpus", "LineEnds", "MidiCorpus", "TextCorpus", "builtin_directory", "cache_dir", "check_kind",
           "check_options", "converted_message", "download", "encode_corpus", "kind_of", "load_corpus",
           "midi_pieces", "open_encoded", "read_text", "tree_sha256"]
