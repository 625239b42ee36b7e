"""Tokenizers: the only code that knows what a token means.

One module per tokenizer (`char`: characters; `midi_events`: Performance RNN's MIDI events), each
registered under its `kind` (see `base`), so a checkpoint names the one that rebuilds it.
"""

from .base import TOKENIZERS, MusicTokenizer, TextTokenizer, Tokenizer, id_dtype, register, tokenizer_from_dict
from .char import ENCODE_CHUNK, CharTokenizer, codepoints
from .midi_events import MidiTokenizer

__all__ = ["TOKENIZERS", "ENCODE_CHUNK", "CharTokenizer", "MidiTokenizer", "MusicTokenizer", "TextTokenizer",
           "Tokenizer", "codepoints", "id_dtype", "register", "tokenizer_from_dict"]
