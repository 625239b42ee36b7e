"""Tokenizers: the only code that knows what a token means.

One module per tokenizer (`char`: characters; `midi_events`: Performance RNN's MIDI events, one
part; `midi_multitrack`: the same with the instruments kept; `midi_duration`: multitrack notes with
durations instead of NOTE_OFFs), each registered under its `kind`
(see `base`), so a checkpoint names the one that rebuilds it.
"""

from .base import (
    TOKENIZERS,
    MusicTokenizer,
    TextTokenizer,
    Tokenizer,
    id_dtype,
    register,
    tokenizer_from_dict,
    tokenizer_named,
)
from .char import ENCODE_CHUNK, CharTokenizer, codepoints
from .midi_duration import DurationTokenizer
from .midi_events import MidiTokenizer
from .midi_multitrack import MultitrackTokenizer

__all__ = ["TOKENIZERS", "ENCODE_CHUNK", "CharTokenizer", "DurationTokenizer", "MidiTokenizer", "MultitrackTokenizer",
           "MusicTokenizer", "TextTokenizer", "Tokenizer", "codepoints", "id_dtype", "register", "tokenizer_from_dict",
           "tokenizer_named"]
