"""MIDI corpora: detection, skipping bad files, the encoding cache, pieces as training data."""

from pathlib import Path

import numpy as np
import pytest

from seqgen import corpora
from seqgen.config import MidiConfig, TrainConfig
from seqgen.corpora import BUILTINS, Builtin, builtin_directory, load_corpus, midi_pieces
from seqgen.data import PieceData
from seqgen.errors import SeqgenError
from seqgen.tokenizers import MidiTokenizer

from .midi_helpers import midi_file, tune


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("SEQGEN_CACHE_DIR", str(tmp_path / "cache"))
    return tmp_path / "cache"


@pytest.fixture
def folder(tmp_path):
    root = tmp_path / "songs"
    (root / "more").mkdir(parents=True)
    for i in range(4):
        (root / f"tune{i}.mid").write_bytes(midi_file(tune(transpose=i)))
    (root / "more" / "deep.MIDI").write_bytes(midi_file(tune(transpose=5)))
    (root / "README.txt").write_text("not music")
    return root


def test_kind_is_detected_and_can_be_overridden(folder, tmp_path):
    corpus = load_corpus(folder)
    assert corpus.kind == "midi" and len(corpus.files) == 5  # recursive, any case, text left out
    assert load_corpus(folder / "tune1.mid").kind == "midi"
    noext = tmp_path / "song"
    noext.write_bytes(midi_file(tune()))
    assert load_corpus(noext).kind == "midi"  # by its MThd header
    assert load_corpus(folder / "README.txt").kind == "text"
    (tmp_path / "texts").mkdir()
    (tmp_path / "texts" / "a.txt").write_text("words")
    assert load_corpus(tmp_path / "texts").kind == "text"
    with pytest.raises(SeqgenError, match="no .mid or .midi files"):
        load_corpus(tmp_path / "texts", kind="midi")


def test_unreadable_and_empty_files_are_skipped_in_one_summary_or_fail_with_strict(folder, cache):
    (folder / "broken.mid").write_bytes(b"MThd\x00\x00\x00\x06garbage")
    (folder / "silent.mid").write_bytes(midi_file([]))
    messages = []
    pieces, _ = midi_pieces(load_corpus(folder), MidiTokenizer(), log=messages.append)
    assert len(pieces) == 5
    assert messages[0] == "Read 5 MIDI files: 135 notes in 5 instrument parts (1 General MIDI program)"
    assert len(messages) == 2 and messages[1].startswith("Skipped 2 of 7 MIDI files: broken.mid: not a readable")
    assert "silent.mid: no notes" in messages[1]
    with pytest.raises(SeqgenError, match=r"broken.mid: not a readable MIDI file .*\(--strict\)"):
        midi_pieces(load_corpus(folder), MidiTokenizer(), strict=True, log=messages.append)


def test_a_corpus_without_notes_is_an_error(tmp_path, cache):
    (tmp_path / "a.mid").write_bytes(midi_file([]))
    (tmp_path / "b.mid").write_bytes(midi_file([], drums=[(36, 100, 0.0, 0.5)]))
    with pytest.raises(SeqgenError, match="no usable notes in 2 MIDI files"):
        midi_pieces(load_corpus(tmp_path), MidiTokenizer(), log=lambda m: None)
    pieces, _ = midi_pieces(load_corpus(tmp_path), MidiTokenizer(MidiConfig(keep_drums=True)), log=lambda m: None)
    assert len(pieces) == 1


def test_the_cache_is_used_the_second_time_and_keyed_by_content(folder, cache):
    messages = []

    def cached():
        return sum(m.startswith("Using the cached encoding") for m in messages)

    first, key = midi_pieces(load_corpus(folder), MidiTokenizer(), log=messages.append)
    assert cached() == 0 and len(list((cache / "midi").iterdir())) == 1
    again, key2 = midi_pieces(load_corpus(folder), MidiTokenizer(), log=messages.append)
    assert cached() == 1 and messages[-2].startswith("Using the cached encoding")  # then the summary
    assert key2 == key and all((a == b).all() for a, b in zip(first, again))
    (folder / "tune0.mid").write_bytes(midi_file(tune(transpose=7)))  # new content: read again
    _, key3 = midi_pieces(load_corpus(folder), MidiTokenizer(), log=messages.append)
    assert cached() == 1 and len(list((cache / "midi").iterdir())) == 2
    # Other tokenizer settings: the same files, read from the cache; another corpus digest for the run.
    _, key4 = midi_pieces(load_corpus(folder), MidiTokenizer(MidiConfig(keep_drums=True)), log=messages.append)
    assert len({key, key3, key4}) == 3 and cached() == 2
    for f in (cache / "midi").iterdir():  # a damaged cache file is read around, not trusted
        f.write_bytes(b"junk")
    messages.clear()
    pieces, _ = midi_pieces(load_corpus(folder), MidiTokenizer(), log=messages.append)
    assert len(pieces) == 5 and "Ignoring an unreadable cache file" in messages[0]


def test_piece_data_holds_out_whole_pieces_and_augments_each_epoch_reproducibly(folder, cache):
    tok = MidiTokenizer()
    cfg = TrainConfig(val_fraction=0.2, transpose=3, stretch=0.05)
    data = load_corpus(folder).dataset(tok, cfg, log=lambda m: None)
    assert isinstance(data, PieceData) and len(data._pieces) == 4
    assert int((data.val == tok.boundary).sum()) == 1  # one whole piece, unaugmented
    epoch1, epoch2 = data.train(1).copy(), data.train(2).copy()
    assert int((epoch1 == tok.boundary).sum()) == 4
    assert not (len(epoch1) == len(epoch2) and bool((epoch1 == epoch2).all()))
    again = load_corpus(folder).dataset(tok, cfg, log=lambda m: None)
    assert (again.train(2) == epoch2).all() and (again.train(1) == epoch1).all()
    plain = load_corpus(folder).dataset(tok, TrainConfig(val_fraction=0.2, transpose=0, stretch=0.0), log=lambda m: None)
    assert sorted(np.diff(np.flatnonzero(plain.train(1) == tok.boundary)).tolist()) == sorted(
        np.diff(np.flatnonzero(plain.train(2) == tok.boundary)).tolist())  # only the order changes


def test_one_piece_is_not_enough(tmp_path, cache):
    (tmp_path / "a.mid").write_bytes(midi_file(tune()))
    with pytest.raises(SeqgenError, match="at least two"):
        load_corpus(tmp_path).dataset(MidiTokenizer(), TrainConfig(), log=lambda m: None)


def test_a_converted_builtin_appears_whole_or_not_at_all(cache, monkeypatch):
    def convert(dest: Path):
        (dest / "one.mid").write_bytes(midi_file(tune()))
        raise RuntimeError("interrupted half way")

    broken = Builtin("fake-midi", "d", "p", "l", "1 kB", kind="midi", convert=convert)
    with pytest.raises(RuntimeError):
        builtin_directory(broken)
    assert not broken.cache_path.exists() and not list(broken.cache_path.parent.iterdir())

    def good(dest: Path):
        for i in range(2):
            (dest / f"{i}.mid").write_bytes(midi_file(tune(i)))

    monkeypatch.setitem(BUILTINS, "fake-midi", Builtin("fake-midi", "d", "p", "l", "1 kB", kind="midi", convert=good))
    corpus = load_corpus("fake-midi")
    assert corpus.kind == "midi" and len(corpus.files) == 2 and BUILTINS["fake-midi"].where == "converted"
    with pytest.raises(SeqgenError, match="built-in midi corpus, not text"):
        load_corpus("fake-midi", kind="text")


def test_bach_chorales_come_from_music21():
    music21 = pytest.importorskip("music21")
    builtin = BUILTINS["bach-chorales"]
    assert builtin.kind == "midi" and "music21" in builtin.provenance and builtin.licence
    source = next(p for p in music21.corpus.getComposer("bach") if p.name == "bwv66.6.mxl")
    (data,), error = corpora.builtins._chorale_midi(source)
    assert error is None
    notes = MidiTokenizer().read_notes(data)
    assert len(notes) > 100 and 40 <= notes["pitch"].min() and notes["pitch"].max() <= 81


def test_files_are_split_at_long_silences_said_in_one_line_and_cached(tmp_path, cache):
    from .midi_helpers import years_gap_file

    (tmp_path / "a.mid").write_bytes(years_gap_file())
    (tmp_path / "b.mid").write_bytes(midi_file(tune()))
    for expected in ("", "Using the cached encoding"):
        messages = []
        pieces, _ = midi_pieces(load_corpus(tmp_path), MidiTokenizer(), log=messages.append)
        assert [len(p) for p in pieces] == [1, 1, 27] and pieces[1]["start"].tolist() == [0.0]
        assert messages[-1] == "Split 1 of 2 MIDI files at silences of over 60 s: a.mid (2 pieces)"
        assert messages[0].startswith(expected)


def test_the_corpus_digest_a_run_records_is_the_one_runs_recorded_before(tmp_path, cache):
    """A resume compares it: a new cache format must not make an old run's corpus look changed.
    (The digest of these two files as seqgen 0.1.0 before the cache's version 2 recorded it.)"""
    (tmp_path / "songs").mkdir()
    (tmp_path / "songs" / "a.mid").write_bytes(midi_file(tune()))
    (tmp_path / "songs" / "b.mid").write_bytes(midi_file(tune(transpose=2)))
    _, digest = midi_pieces(load_corpus(tmp_path / "songs"), MidiTokenizer(), log=lambda m: None)
    assert digest == "a7929bd68530df16026c0c1b4fef7201fbf785adaeda625e638afe0aa3f448c1"


def test_stale_temp_files_in_the_midi_cache_are_swept(folder, cache):
    import os
    import time

    (cache / "midi").mkdir(parents=True)
    stale, fresh = cache / "midi" / ".abc.safetensors.x1y2.tmp", cache / "midi" / ".def.safetensors.z3.tmp"
    for f in (stale, fresh):
        f.write_bytes(b"half a file")
    hour_ago = time.time() - corpora.midi.STALE_TEMP_SECONDS - 60
    os.utime(stale, (hour_ago, hour_ago))
    midi_pieces(load_corpus(folder), MidiTokenizer(), log=lambda m: None)
    assert not stale.exists() and fresh.exists()  # the fresh one may be another process' write in progress
