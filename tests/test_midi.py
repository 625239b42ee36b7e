"""The MIDI event tokenizer: reading, encoding, decoding, and the promises each one keeps."""

import io
from pathlib import Path

import numpy as np
import pretty_midi
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from seqgen.config import MidiConfig
from seqgen.errors import SeqgenError
from seqgen.midi_io import midi_bytes, notes_array, read_notes
from seqgen.tokenizers import MidiTokenizer

from .midi_helpers import midi_file, tune

TOK = MidiTokenizer()
SAMPLE_BACH = Path(__file__).resolve().parents[1] / "corpora" / "bach-chorales-sample"  # in the repository
SHARED_BACH = Path(__file__).resolve().parents[2] / "shared" / "corpora" / "bach-chorales-midi"  # all 430, if present


def roundtrip(notes, tok=TOK):
    decoded, report = tok.decode(tok.encode(notes))
    assert (report.ignored, report.capped, report.closed_at_end) == (0, 0, 0)
    return decoded


def assert_same_performance(decoded, notes, tol, tok=TOK):
    assert len(decoded) == len(notes)
    assert (decoded["pitch"] == notes["pitch"]).all()
    assert np.abs(decoded["start"] - notes["start"]).max() <= tol
    assert np.abs(decoded["end"] - notes["end"]).max() <= tol
    assert (tok._bin_of[decoded["velocity"]] == tok._bin_of[notes["velocity"]]).all()


def test_vocabulary_is_performance_rnn_plus_a_boundary():
    assert TOK.vocab_size == 389
    assert [TOK.event_name(i) for i in (0, 127, 128, 255, 256, 355, 356, 387, 388)] == [
        "NOTE_ON(0)", "NOTE_ON(127)", "NOTE_OFF(0)", "NOTE_OFF(127)", "TIME_SHIFT(10ms)",
        "TIME_SHIFT(1000ms)", "VELOCITY(0)", "VELOCITY(31)", "PIECE"]
    small = MidiTokenizer(MidiConfig(resolution=0.02, max_shift=0.5, velocity_bins=8))
    assert small.vocab_size == 128 + 128 + 25 + 8 + 1
    assert MidiTokenizer.from_dict(small.to_dict()).to_dict() == small.to_dict()


def test_round_trip_of_a_file_built_here():
    rows = [(60, 100, 0.0, 0.5), (64, 37, 0.5, 1.013), (67, 37, 0.503, 2.5), (72, 127, 3.9, 4.0), (21, 1, 0.0, 0.01)]
    notes = read_notes(midi_file(rows))
    assert len(notes) == len(rows)
    assert_same_performance(roundtrip(notes), notes, tol=0.005 + 1e-9)


def test_events_in_order_offs_first_and_velocity_only_when_it_changes():
    notes = notes_array([(60, 80, 0.0, 0.5), (60, 80, 0.5, 1.0), (64, 80, 0.5, 1.0)])
    names = [TOK.event_name(i) for i in TOK.encode(notes)]
    assert names == ["PIECE", "VELOCITY(19)", "NOTE_ON(60)", "TIME_SHIFT(500ms)", "NOTE_OFF(60)",
                     "NOTE_ON(60)", "NOTE_ON(64)", "TIME_SHIFT(500ms)", "NOTE_OFF(60)", "NOTE_OFF(64)"]


def test_long_gaps_repeat_the_longest_shift():
    notes = notes_array([(60, 64, 0.0, 0.1), (62, 64, 2.6, 2.7)])
    names = [TOK.event_name(i) for i in TOK.encode(notes)]
    assert names.count("TIME_SHIFT(1000ms)") == 2 and "TIME_SHIFT(500ms)" in names
    assert_same_performance(roundtrip(notes), notes, tol=1e-9)


def test_sustain_pedal_holds_released_notes_until_it_comes_up():
    rows = [(60, 80, 0.0, 0.5), (64, 80, 0.2, 0.4), (67, 80, 2.0, 2.5), (60, 80, 0.8, 0.9)]
    pedal = [(0.1, 127), (1.5, 0), (2.2, 100)]  # down, up, down to the end of the piece
    notes = read_notes(midi_file(rows, pedal=pedal))
    got = {(int(n["pitch"]), round(n["start"], 3)): round(n["end"], 3) for n in notes}
    # 60 is struck again while held by the pedal: the first 60 ends there, the second is held to 1.5.
    assert got == {(60, 0.0): 0.8, (64, 0.2): 1.5, (60, 0.8): 1.5, (67, 2.0): 2.5}


def test_same_pitch_overlaps_and_unisons_are_merged_deliberately():
    # Two instruments: 60 overlaps itself (the first ends where the second starts), and 64 is
    # doubled at one instant (one note: the longer, the louder).
    first = [(60, 50, 0.0, 1.0), (64, 100, 0.0, 0.5)]
    second = [(60, 90, 0.5, 1.5), (64, 40, 0.0, 1.0)]
    notes = read_notes(midi_file(first, extra_instruments=[second]))
    got = [(int(n["pitch"]), int(n["velocity"]), n["start"], n["end"]) for n in notes]
    assert got == [(60, 50, 0.0, 0.5), (64, 100, 0.0, 1.0), (60, 90, 0.5, 1.5)]


def test_zero_length_notes_are_dropped_and_very_short_ones_last_one_step():
    notes = read_notes(midi_file([(60, 80, 1.0, 1.0), (62, 80, 1.0, 1.002), (64, 80, 0.0, 2.0)]))
    assert sorted(notes["pitch"].tolist()) == [62, 64]
    decoded = roundtrip(notes)
    short = decoded[decoded["pitch"] == 62][0]
    assert short["end"] - short["start"] == pytest.approx(TOK.config.resolution)


def test_drums_are_left_out_unless_kept():
    data = midi_file([(60, 80, 0.0, 1.0)], drums=[(36, 100, 0.0, 0.1), (38, 100, 0.5, 0.6)])
    assert read_notes(data)["pitch"].tolist() == [60]
    assert sorted(read_notes(data, keep_drums=True)["pitch"].tolist()) == [36, 38, 60]


def test_an_empty_file_has_no_notes_and_a_corrupt_one_is_a_clear_error(tmp_path):
    assert len(read_notes(midi_file([]))) == 0
    bad = tmp_path / "bad.mid"
    bad.write_bytes(b"MThd\x00\x00\x00\x06\x00\x01\x00\x02\x01\xe0MTrk\x00\x00\xff\xff garbage")
    with pytest.raises(SeqgenError, match="bad.mid: not a readable MIDI file"):
        read_notes(bad)
    with pytest.raises(SeqgenError, match="not a readable MIDI file"):
        read_notes(b"")


def test_notes_longer_than_the_cap_are_ended_in_data_and_in_decoding():
    tok = MidiTokenizer(MidiConfig(max_note=2.0))
    decoded = roundtrip(notes_array([(60, 80, 0.0, 5.0)]), tok)
    assert decoded["end"].tolist() == [2.0]
    on = [tok.boundary, tok.note_on + 60] + [tok.time_shift + 99] * 5  # held 5 s, never released
    notes, report = tok.decode(on)
    assert notes["end"].tolist() == [2.0] and report.capped == 1


def test_decoder_repairs_what_a_model_might_write():
    t = TOK
    ids = [t.boundary, t.note_off + 60, t.note_on + 60, t.note_on + 60, t.time_shift + 9, t.note_on + 60,
           t.note_on + 62, t.note_off + 62, t.time_shift + 49, t.note_on + 64, t.boundary, t.note_on + 70]
    notes, report = t.decode(ids)
    got = [(int(n["pitch"]), round(n["start"], 3), round(n["end"], 3)) for n in notes]
    # off before on and the second on at one instant: ignored; a re-struck 60 ends the first; a
    # zero-length 62 lasts one step; 60 and 64, still sounding at the second PIECE, are closed.
    assert got == [(60, 0.0, 0.1), (60, 0.1, 0.6), (62, 0.1, 0.11), (64, 0.6, 0.61)]
    assert (report.ignored, report.closed_at_end) == (3, 2)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.integers(0, TOK.vocab_size - 1), max_size=300))
def test_any_token_sequence_decodes_to_a_valid_midi_file_without_stuck_notes(ids):
    notes, report = TOK.decode(ids)
    durations = notes["end"] - notes["start"]
    assert (durations > 0).all() and (durations <= TOK.config.max_note + 1e-9).all()
    for pitch in set(notes["pitch"].tolist()):  # one pitch never overlaps itself
        same = notes[notes["pitch"] == pitch]
        assert (same["start"][1:] >= same["end"][:-1] - 1e-9).all()
    pm = pretty_midi.PrettyMIDI(io.BytesIO(midi_bytes(notes)))  # any player can open it
    assert sum(len(i.notes) for i in pm.instruments) == len(notes)
    assert report.ignored <= len(ids)


def test_encode_until_leaves_later_notes_sounding_and_chord_primers():
    notes = notes_array([(60, 80, 0.0, 1.0), (64, 80, 0.5, 3.0), (67, 80, 2.0, 2.5)])
    ids = TOK.encode(notes, until=1.5)
    names = [TOK.event_name(i) for i in ids]
    assert "NOTE_ON(67)" not in names and "NOTE_OFF(64)" not in names and "NOTE_OFF(60)" in names
    assert TOK.seconds(ids) == pytest.approx(1.0)
    chord = [TOK.event_name(i) for i in TOK.chord([67, 60, 64])]
    assert chord == ["PIECE", "VELOCITY(19)", "NOTE_ON(60)", "NOTE_ON(64)", "NOTE_ON(67)"]


def test_augmentation_transposes_within_range_and_stretches_time():
    notes = notes_array(tune())
    high = notes_array([(126, 80, 0.0, 1.0), (120, 80, 1.0, 2.0)])
    rng = np.random.default_rng(0)
    for _ in range(50):
        pitches = TOK.decode(TOK.augmented(high, rng, 3, 0.0))[0]["pitch"]
        assert pitches.max() <= 127 and 123 <= pitches.max()
    shifts, lengths = set(), set()
    for _ in range(50):
        decoded = TOK.decode(TOK.augmented(notes, rng, 3, 0.05))[0]
        shifts.add(int(decoded["pitch"].min() - notes["pitch"].min()))
        lengths.add(round(float(decoded["end"].max() / notes["end"].max()), 2))
    assert shifts == set(range(-3, 4))
    assert min(lengths) >= 0.94 and max(lengths) <= 1.06 and len(lengths) > 5


@pytest.mark.parametrize("folder,count", [
    (SAMPLE_BACH, 10),
    pytest.param(SHARED_BACH, 430, marks=pytest.mark.skipif(not SHARED_BACH.is_dir(), reason="needs ../shared/corpora")),
])
def test_round_trip_of_bach_chorales(folder, count):
    files = sorted(folder.rglob("*.mid"))
    assert len(files) == count
    for path in files:
        notes = read_notes(path)
        assert_same_performance(roundtrip(notes), notes, tol=0.005 + 1e-9)
        # ...and against the file itself: every note's pitch and onset is there.
        pm = pretty_midi.PrettyMIDI(str(path))
        decoded = {(int(n["pitch"]), round(float(n["start"]), 2)) for n in roundtrip(notes)}
        for note in (n for i in pm.instruments for n in i.notes):
            assert (note.pitch, round(round(note.start / 0.01) * 0.01, 2)) in decoded, path


@settings(max_examples=100, deadline=None)
@given(st.lists(st.integers(0, TOK.vocab_size - 2), max_size=200))
@example([24, 128 + 24, 24])  # struck, released and struck again at one instant: the decoder ignores the last
def test_event_rules_track_the_notes_the_decoder_would_still_have_sounding(ids):
    import torch

    rules = TOK.rules()
    rules.start([TOK.boundary, *ids], 1, "cpu")
    allowed = rules.allowed()[0]
    _, report = TOK.decode([TOK.boundary, *ids])
    releasable = int(allowed[TOK.note_off : TOK.note_off + 128].sum())
    assert releasable == report.closed_at_end
    assert not (allowed[:128] & allowed[128:256]).any() and not allowed[TOK.boundary]
    now = round(TOK.seconds(ids) / TOK.config.resolution)
    struck_now = {p for p, _, s, _ in TOK.decode([TOK.boundary, *ids])[0].tolist() if round(s / 0.01) == now}
    assert {p for p in range(128) if not allowed[p]} == {p for p in range(128) if allowed[128 + p]} | struck_now
    assert torch.equal(allowed[256:TOK.boundary], torch.ones(TOK.boundary - 256, dtype=torch.bool))


def test_sampling_within_the_rules_never_needs_the_decoder_to_ignore_an_event():
    import torch

    from seqgen.config import ModelConfig
    from seqgen.model import RNNLM
    from seqgen.sample import generate

    torch.manual_seed(0)
    model = RNNLM(ModelConfig(vocab_size=TOK.vocab_size, hidden=16, embed=8)).eval()  # untrained: any event
    prime = TOK.chord([60, 64, 67])
    ignored = {}
    for valid_only in (True, False):
        rows = generate(model, prime, 300, num_samples=4, temperature=1.0, seed=1, rules=TOK.rules(valid_only))
        assert not any(TOK.boundary in row for row in rows)
        ignored[valid_only] = sum(TOK.decode([*prime.tolist(), *row])[1].ignored for row in rows)
    assert ignored[True] == 0 and ignored[False] > 50


def reference_encode(tok, notes, transpose=0, stretch=1.0, until=None):
    """MidiTokenizer.encode as it was, one event at a time: what the vectorised one must equal."""
    import math

    steps = tok._quantise(notes, transpose, stretch)
    pitch, bins, start, end = steps["pitch"], tok._bin_of[steps["velocity"]], steps["start"], steps["end"]
    n = len(steps)
    time = np.concatenate([end, start])
    order = np.concatenate([np.zeros(n, np.int64), np.ones(n, np.int64)])
    pitches = np.concatenate([pitch, pitch])
    rank = np.lexsort((pitches, order, time))
    events = []
    now, velocity = 0, -1
    limit = math.inf if until is None else round(until * stretch / tok.config.resolution)
    for i in rank.tolist():
        t = int(time[i])
        if t >= limit:
            break
        while t > now:
            shift = min(t - now, tok.shift_steps)
            events.append(tok.time_shift + shift - 1)
            now += shift
        if order[i] == 0:
            events.append(tok.note_off + int(pitches[i]))
        else:
            b = int(bins[i - n])
            if b != velocity:
                events.append(tok.velocity + b)
                velocity = b
            events.append(tok.note_on + int(pitches[i]))
    return np.array([tok.boundary, *events], dtype=TOK.encode(notes_array()).dtype)


NOTE_ROWS = st.lists(st.tuples(st.integers(20, 100), st.integers(0, 127), st.floats(0, 8), st.floats(0.001, 3)),
                     max_size=60)


@settings(max_examples=300, deadline=None)
@given(NOTE_ROWS, st.sampled_from([(0.01, 1.0, 8), (0.01, 0.03, 32), (0.05, 0.05, 3), (0.001, 0.5, 127)]),
       st.integers(-3, 3), st.sampled_from([1.0, 0.95, 1.05, 2.0]), st.one_of(st.none(), st.floats(0, 10)))
@example([(60, 80, 0.0, 0.5), (60, 80, 0.5, 0.5), (64, 80, 0.5, 0.5)], (0.01, 1.0, 32), 0, 1.0, 0.5)
def test_vectorised_encode_equals_the_event_loop_bit_for_bit(rows, settings_, transpose, stretch, until):
    resolution, max_shift, bins = settings_
    tok = MidiTokenizer(MidiConfig(resolution=resolution, max_shift=max_shift, velocity_bins=bins, max_note=2.0))
    notes = notes_array([(p, v, s, s + d) for p, v, s, d in rows])
    got = tok.encode(notes, transpose=transpose, stretch=stretch, until=until)
    want = reference_encode(tok, notes, transpose, stretch, until)
    assert got.dtype == want.dtype and np.array_equal(got, want)


RULE_IDS = st.lists(st.one_of(st.integers(0, TOK.vocab_size - 1), st.sampled_from([60, 62, 128 + 60, 128 + 62, 256, 355])),
                    max_size=300)


@settings(max_examples=300, deadline=None)
@given(RULE_IDS, st.integers(1, 3))
@example([60, 60, 128 + 60, 60, 256, 60, 128 + 62, TOK.boundary, 60], 2)  # double strikes, a silent NOTE_OFF, PIECE
def test_rules_start_in_one_pass_equals_advancing_token_by_token(ids, k):
    import torch

    rules, stepped = TOK.rules(), TOK.rules()
    rules.start(ids, k, "cpu")
    stepped.start([], k, "cpu")
    for token in ids:
        stepped.advance(torch.full((k,), token, dtype=torch.long))
    for name in ("opened", "struck", "now"):
        assert torch.equal(getattr(rules, name), getattr(stepped, name)), name
    assert torch.equal(rules.allowed(), stepped.allowed())


def test_a_primer_of_a_million_notes_is_taken_in_without_a_step_per_event(monkeypatch):
    """What sampling does with a primer before its first step: encode it, start the rules after it,
    find its length and its notes. None of it may go event by event (at 140 us an event, a
    10^6-note primer took over 300 s); the rules' `advance`, a step per event, is not called."""
    rng = np.random.default_rng(0)
    start = np.sort(rng.uniform(0, 3000, 1_000_000))
    notes = notes_array(zip(rng.integers(21, 109, len(start)).tolist(), rng.integers(1, 128, len(start)).tolist(),
                            start.tolist(), (start + rng.uniform(0.01, 2, len(start))).tolist()))
    ids = TOK.encode(notes)
    assert len(ids) > 3_000_000
    rules = TOK.rules()
    monkeypatch.setattr(type(rules), "advance", lambda self, token: pytest.fail("advanced event by event"))
    rules.start(ids, 4, "cpu")
    assert rules.opened.shape == (4, 128) and int(rules.now[0]) == round(TOK.seconds(ids) / TOK.config.resolution)
    decoded, _ = TOK.decode(ids)
    assert len(decoded) > 900_000


def test_a_silence_over_a_minute_splits_a_performance_into_pieces():
    from seqgen.tokenizers.midi_events import split_at_silences

    # Notes held to the cap (10 s) count as sounding: 0-10, 65 (a 55 s silence), then 200 s silence.
    notes = notes_array([(60, 80, 0.0, 500.0), (62, 80, 65.0, 66.0), (64, 80, 266.0, 267.0), (65, 80, 267.0, 268.0)])
    pieces, silences = TOK.split(notes)
    assert [len(p) for p in pieces] == [2, 2] and silences == [200.0]
    assert pieces[1]["start"].tolist() == [0.0, 1.0] and pieces[1]["end"].tolist() == [1.0, 2.0]
    late = notes_array([(60, 80, 3600.0, 3601.0), (62, 80, 3601.5, 3602.0)])  # an hour before the first note
    pieces, silences = split_at_silences(late, 10.0)
    assert len(pieces) == 1 and silences == [] and pieces[0]["start"].tolist() == [0.0, 1.5]
    assert len(split_at_silences(notes_array(), 10.0)[0][0]) == 0
    assert split_at_silences(notes_array([(60, 80, 59.0, 60.0)]), 10.0)[0][0]["start"].tolist() == [59.0]


def reference_decode(tok, ids):
    """MidiTokenizer.decode as it was, one event at a time: what the vectorised one must equal."""
    from seqgen.midi_io import sorted_notes
    from seqgen.tokenizers.midi_events import DecodeReport

    res, cap = tok.config.resolution, tok.cap_steps
    ids = np.asarray(ids, dtype=np.int64).ravel().tolist()
    report = DecodeReport()
    now, velocity = 0, int(tok._velocity_of[tok._bin_of[64]])
    sounding, struck, notes = {}, {}, []

    def close(pitch, at):
        start, vel = sounding.pop(pitch)
        notes.append((pitch, vel, start * res, max(at, start + 1) * res))

    for i, token in enumerate(ids):
        if token == tok.boundary:
            if i == 0 or (not notes and not sounding and now == 0):
                continue
            report.ignored += len(ids) - i - 1
            break
        if not 0 <= token < tok.boundary:
            report.ignored += 1
        elif token < tok.note_off:
            if struck.get(token) == now:
                report.ignored += 1
                continue
            if token in sounding:
                close(token, now)
            sounding[token] = (now, velocity)
            struck[token] = now
        elif token < tok.time_shift:
            if token - tok.note_off in sounding:
                close(token - tok.note_off, now)
            else:
                report.ignored += 1
        elif token < tok.velocity:
            now += token - tok.time_shift + 1
            for pitch in [p for p, (s, _) in sounding.items() if now - s > cap]:
                close(pitch, sounding[pitch][0] + cap)
                report.capped += 1
        else:
            velocity = int(tok._velocity_of[token - tok.velocity])
    for pitch in list(sounding):
        close(pitch, now)
        report.closed_at_end += 1
    return sorted_notes(notes_array(notes)), report


SMALL = MidiTokenizer(MidiConfig(resolution=0.1, max_shift=0.3, velocity_bins=4, max_note=0.5))  # caps often
DECODE_IDS = st.lists(st.one_of(st.integers(-2, SMALL.vocab_size + 2), st.sampled_from(
    [60, 62, 128 + 60, 128 + 62, SMALL.time_shift, SMALL.time_shift + 2, SMALL.velocity + 1, SMALL.boundary])),
    max_size=200)


@settings(max_examples=400, deadline=None)
@given(DECODE_IDS)
@example([SMALL.boundary, SMALL.velocity, SMALL.boundary, 60, 60, 128 + 60, 60, 128 + 62, SMALL.time_shift, SMALL.boundary, 62])
@example([60, 62, SMALL.time_shift + 2, SMALL.time_shift + 1, 128 + 60, SMALL.time_shift, 128 + 62])  # at the cap, past it
def test_vectorised_decode_equals_the_event_loop(ids):
    for tok, tokens in ((SMALL, ids), (TOK, [i % TOK.vocab_size for i in ids])):
        (got, got_report), (want, want_report) = tok.decode(tokens), reference_decode(tok, tokens)
        assert got.dtype == want.dtype and np.array_equal(got, want)
        assert got_report == want_report
