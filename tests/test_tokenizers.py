import numpy as np
import pytest

from seqgen.errors import SeqgenError
from seqgen.tokenizers import CharTokenizer, tokenizer_from_dict


def test_round_trip_any_unicode(corpus_text):
    tok = CharTokenizer.fit(corpus_text)
    ids = tok.encode(corpus_text)
    assert tok.decode(ids) == corpus_text
    assert len(ids) == len(corpus_text)  # one token per character, astral ones (🎵) included


def test_ids_are_compact():
    assert CharTokenizer.fit("abc").encode("abc").dtype == np.uint8
    wide = "".join(chr(0x4E00 + i) for i in range(300))
    assert CharTokenizer.fit(wide).encode(wide).dtype == np.uint16


def test_vocabulary_is_sorted_and_ids_stable():
    tok = CharTokenizer.fit("cabbage")
    assert tok.chars == ["a", "b", "c", "e", "g"]
    assert tok.encode("bag").tolist() == [1, 0, 4]


def test_unknown_characters_are_named():
    tok = CharTokenizer.fit("hello")
    with pytest.raises(SeqgenError, match="'xz'"):
        tok.encode("hxlzo")
    with pytest.raises(SeqgenError, match="vocabulary"):
        tok.encode("\U0010FFFF")  # beyond the lookup table's range
    assert tok.unknown("hxlzo") == ["x", "z"]


def test_saved_and_restored_from_dict():
    tok = CharTokenizer.fit("naïve 🎵 text")
    again = tokenizer_from_dict(tok.to_dict())
    assert again.chars == tok.chars
    assert again.encode("naïve").tolist() == tok.encode("naïve").tolist()


def test_unknown_kind_is_refused():
    with pytest.raises(SeqgenError, match="unknown tokenizer kind"):
        tokenizer_from_dict({"kind": "bpe"})


def test_encoding_in_pieces_matches_encoding_at_once(corpus_text, monkeypatch):
    from seqgen import tokenizers

    tok = CharTokenizer.fit(corpus_text)
    whole = tok.encode(corpus_text)
    monkeypatch.setattr(tokenizers, "ENCODE_CHUNK", 7)
    assert (tok.encode(corpus_text) == whole).all()
    with pytest.raises(SeqgenError, match="'∑'"):  # an unknown character in a later piece
        tok.encode(corpus_text[:50] + "∑")
