"""Characters: one token per Unicode character, as char-rnn reads text."""

from __future__ import annotations

import numpy as np

from ..errors import SeqgenError
from .base import id_dtype, register

ENCODE_CHUNK = 1 << 22  # characters
MAX_CHARS = 1 << 16  # a character vocabulary; CJK text needs a few thousand, a binary file far more


def codepoints(text: str) -> np.ndarray:
    # UTF-32 is one fixed-width unit per character, so numpy can look at the text without a loop.
    return np.frombuffer(text.encode("utf-32-le"), dtype=np.uint32)


@register
class CharTokenizer:
    """One token per Unicode character; the vocabulary is the sorted set of the corpus' characters."""

    kind = "char"
    name = "char"  # as `seqgen train --tokenizer` names it
    unit = "char"
    reads = "text"
    control_size = 0  # nothing beside the characters

    def __init__(self, chars: list[str]):
        if not chars or any(len(c) != 1 for c in chars) or len(set(chars)) != len(chars):
            raise SeqgenError("a character vocabulary must list distinct single characters")
        if len(chars) > MAX_CHARS:
            raise SeqgenError(f"{len(chars):,} distinct characters: a character model takes at most {MAX_CHARS:,} "
                              "(is this text?)")
        self.chars = sorted(chars)
        points = codepoints("".join(self.chars))
        # A dense code point -> id table (at most 4.4 MB for the whole of Unicode); -1 marks unknown.
        self._table = np.full(int(points.max()) + 1, -1, dtype=np.int32)
        self._table[points] = np.arange(len(points), dtype=np.int32)
        self._index = {c: i for i, c in enumerate(self.chars)}

    @classmethod
    def fit(cls, text: str) -> CharTokenizer:
        if not text:
            raise SeqgenError("cannot build a vocabulary from empty text")
        return cls(sorted(set(text)))

    @property
    def vocab_size(self) -> int:
        return len(self.chars)

    def describe(self) -> str:
        return f"characters, vocabulary {self.vocab_size}"

    def reading(self) -> dict:
        # A model trained keeping CR line ends knows \r; otherwise its corpus was read with \n.
        return {"keep_line_endings": "\r" in self._index}

    def unknown(self, text: str) -> list[str]:
        """The characters of `text` that are not in the vocabulary, sorted."""
        return sorted(set(text) - self._index.keys())

    def encode(self, text: str) -> np.ndarray:
        out = np.empty(len(text), dtype=id_dtype(self.vocab_size))
        # In pieces: the UTF-32 copy and the lookup's temporaries are 12 bytes per character,
        # which for a 100 MB corpus at once would be more than a gigabyte.
        for start in range(0, len(text), ENCODE_CHUNK):
            piece = text[start : start + ENCODE_CHUNK]
            points = codepoints(piece)
            ids = self._table[np.minimum(points, len(self._table) - 1)]
            if (ids < 0).any() or int(points.max(initial=0)) >= len(self._table):
                missing = "".join(self.unknown(text))
                raise SeqgenError(f"characters not in the model's vocabulary: {missing!r}")
            out[start : start + len(piece)] = ids
        return out

    def decode(self, ids) -> str:
        chars = self.chars
        return "".join(chars[i] for i in np.asarray(ids, dtype=np.int64).ravel().tolist())

    def options(self) -> dict:
        return {"tokenizer": self.name}  # the characters come from the corpus

    def extended(self, other) -> tuple[CharTokenizer, np.ndarray]:
        """Every character of both: a fine-tuning corpus's new characters join the vocabulary."""
        if not isinstance(other, CharTokenizer):
            raise SeqgenError(f"a character model cannot learn a {other.kind} tokenizer's tokens")
        union = CharTokenizer(sorted(set(self.chars) | set(other.chars)))
        return union, np.array([union._index[c] for c in self.chars], dtype=np.int64)

    def to_dict(self) -> dict:
        return {"kind": self.kind, "chars": "".join(self.chars)}

    @classmethod
    def from_dict(cls, data: dict) -> CharTokenizer:
        chars = data["chars"]
        if not isinstance(chars, str):
            raise TypeError("chars must be a string of the vocabulary's characters")
        return cls(list(chars))
