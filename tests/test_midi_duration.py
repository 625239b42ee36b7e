"""The duration tokenizer: multitrack notes as NOTE_ON + DURATION, so no note is left sounding."""

import io

import numpy as np
import pretty_midi
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from seqgen.midi_io import DRUMS, PROGRAM_NOTE_DTYPE, hanging_notes, midi_bytes
from seqgen.model import RNNLM, ModelConfig
from seqgen.sample import generate
from seqgen.tokenizers import DurationTokenizer, tokenizer_from_dict

from .conftest import invoke
from .test_multitrack import QUARTETS, band_file

TOK = DurationTokenizer()


def test_vocabulary_replaces_note_offs_with_durations():
    assert TOK.vocab_size == 450 and len(TOK.durations) == 60
    assert TOK.durations[:8].tolist() == list(range(1, 9)) and TOK.durations[-1] == 1000  # 10 ms .. 10 s
    assert np.all(TOK.durations[8:] / TOK.durations[7:-1] <= 1.125)  # about 10% apart (at most 12.5%: rounding)
    assert [TOK.event_name(i) for i in (0, 128, 187, 188, 449)] == [
        "NOTE_ON(0)", "DURATION(10ms)", "DURATION(10000ms)", "TIME_SHIFT(10ms)", "PIECE"]
    assert tokenizer_from_dict(TOK.to_dict()).to_dict() == TOK.to_dict()


def test_every_note_keeps_its_instrument_pitch_onset_and_length():
    for notes in (TOK.read_notes(band_file()), TOK.read_notes(QUARTETS / "mozart-k80-movement3.mid")):
        ids = TOK.encode(notes)
        assert ids[0] == TOK.boundary and not ((ids >= TOK.note_off) & (ids < TOK.first_duration)).any()
        decoded, report = TOK.decode(ids)
        assert (report.ignored, report.capped, report.closed_at_end) == (0, 0, 0)
        decoded = decoded[np.lexsort((decoded["pitch"], decoded["program"], decoded["start"]))]
        assert (decoded["program"] == notes["program"]).all() and (decoded["pitch"] == notes["pitch"]).all()
        step = TOK.config.resolution
        assert np.abs(decoded["start"] - notes["start"]).max() <= step / 2 + 1e-9
        length, kept = decoded["end"] - decoded["start"], notes["end"] - notes["start"]
        assert (np.abs(length - kept) <= np.maximum(step, 0.06 * kept) + 1e-9).all()


@settings(max_examples=200, deadline=None)
@given(st.lists(st.integers(0, TOK.vocab_size - 1), max_size=300))
def test_any_ids_decode_to_a_valid_file_with_no_stuck_notes(ids):
    notes, _ = TOK.decode(ids)
    assert notes.dtype == PROGRAM_NOTE_DTYPE and (notes["end"] > notes["start"]).all()
    assert (notes["end"] - notes["start"] <= TOK.config.max_note + 1e-9).all()
    assert set(notes["program"].tolist()) <= {*range(128), DRUMS}
    data = midi_bytes(notes)
    assert sum(len(i.notes) for i in pretty_midi.PrettyMIDI(io.BytesIO(data)).instruments) == len(notes)
    assert hanging_notes(data) == 0


@settings(max_examples=100, deadline=None)
@given(st.lists(st.integers(0, TOK.vocab_size - 2), max_size=100))
def test_the_rules_start_where_advancing_token_by_token_leaves_them(ids):
    prime = [TOK.boundary, *ids]
    at_once, stepwise = TOK.rules(), TOK.rules()
    at_once.start(prime, 1, "cpu")
    stepwise.start(prime[:1], 1, "cpu")
    for token in prime[1:]:
        stepwise.advance(torch.tensor([token]))
    for name in ("part", "after_note", "now", "struck"):
        assert torch.equal(getattr(at_once, name), getattr(stepwise, name)), name


def test_sampling_under_the_rules_gives_every_note_a_duration_and_only_allowed_instruments():
    torch.manual_seed(0)
    model = RNNLM(ModelConfig(vocab_size=TOK.vocab_size, layers=1, hidden=16, embed=8)).eval()
    prime = TOK.chord([60, 64])
    rules = TOK.rules(True, TOK.parts_named("strings,drums"))
    rows = generate(model, prime, 400, num_samples=4, temperature=1.5, seed=1, rules=rules)
    for row in rows:
        ids = [*prime.tolist(), *row]
        notes, report = TOK.decode(ids)
        assert report.ignored == 0 or ids[-1] < TOK.note_off  # only a last NOTE_ON may lack its DURATION
        fresh = notes[notes["start"] > 0]
        assert set(fresh["program"].tolist()) <= set(range(40, 48)) | {DRUMS}


def test_train_and_sample_with_durations_from_the_command_line(tmp_path, monkeypatch):
    monkeypatch.setenv("SEQGEN_CACHE_DIR", str(tmp_path / "cache"))
    run = tmp_path / "run"
    result = invoke("train", "string-quartets-sample", "--tokenizer", "duration", "--out", run, "--layers", "1",
                    "--hidden", "32", "--embed", "16", "--seq-len", "32", "--batch-size", "4", "--max-steps", "20",
                    "--threads", "1", "--val-fraction", "0.2")
    assert result.exit_code == 0, result.output
    assert "vocabulary 450" in invoke("info", run).output
    out = tmp_path / "s.mid"
    result = invoke("sample", run, "--seconds", "5", "--seed", "2", "--out", out)
    assert result.exit_code == 0, result.output
    assert hanging_notes(out) == 0 and "ignored 0 of" in result.stderr
