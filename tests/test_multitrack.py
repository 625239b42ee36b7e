"""Multitrack MIDI: instruments and drums kept through reading, encoding, decoding, sampling and
writing; the corpus summary says what a one-part tokenizer merges or leaves out."""

import io
import json
import re
from pathlib import Path

import numpy as np
import pretty_midi
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from seqgen.config import MidiConfig, MultitrackConfig
from seqgen.corpora import load_corpus, midi_pieces
from seqgen.errors import SeqgenError
from seqgen.midi_io import DRUMS, PROGRAM_NOTE_DTYPE, hanging_notes, midi_bytes, read_performance
from seqgen.model import RNNLM, ModelConfig
from seqgen.sample import generate
from seqgen.tokenizers import MidiTokenizer, MultitrackTokenizer, tokenizer_from_dict

from .conftest import invoke

TOK = MultitrackTokenizer()
BASS, STRINGS = 33, 48  # Electric Bass (finger), String Ensemble 1


def band_file(transpose: int = 0, bars: int = 2) -> bytes:
    """A MIDI file of a small band: piano chords, a bass line, strings in two tracks of one
    program, and drums on the drum channel."""
    pm = pretty_midi.PrettyMIDI()
    piano = pretty_midi.Instrument(0)
    bass = pretty_midi.Instrument(BASS)
    violins, violas = pretty_midi.Instrument(STRINGS), pretty_midi.Instrument(STRINGS)
    drums = pretty_midi.Instrument(0, is_drum=True)
    for bar in range(bars):
        t = bar * 2.0
        piano.notes += [pretty_midi.Note(70, p + transpose, t, t + 1.0) for p in (60, 64, 67)]
        bass.notes += [pretty_midi.Note(90, 36 + transpose + 5 * (i % 2), t + i * 0.5, t + i * 0.5 + 0.45) for i in range(4)]
        violins.notes.append(pretty_midi.Note(50, 76 + transpose, t, t + 1.9))
        violas.notes.append(pretty_midi.Note(45, 64 + transpose, t + 1.0, t + 1.9))  # the same pitch as the piano's, later
        drums.notes += [pretty_midi.Note(100, 36 if i % 2 == 0 else 38, t + i * 0.5, t + i * 0.5 + 0.1) for i in range(4)]
    pm.instruments += [piano, bass, violins, violas, drums]
    buffer = io.BytesIO()
    pm.write(buffer)
    return buffer.getvalue()


def test_instruments_and_drums_survive_the_round_trip():
    notes = TOK.read_notes(band_file())
    assert set(notes["program"].tolist()) == {0, BASS, STRINGS, DRUMS}
    decoded, report = TOK.decode(TOK.encode(notes))
    assert (report.ignored, report.capped, report.closed_at_end) == (0, 0, 0)
    key = np.lexsort((decoded["pitch"], decoded["program"], decoded["start"]))
    decoded = decoded[key]
    assert len(decoded) == len(notes)
    assert (decoded["program"] == notes["program"]).all() and (decoded["pitch"] == notes["pitch"]).all()
    half_step = TOK.config.resolution / 2 + 1e-9
    assert np.abs(decoded["start"] - notes["start"]).max() <= half_step
    assert np.abs(decoded["end"] - notes["end"]).max() <= half_step
    assert (TOK._bin_of[decoded["velocity"]] == TOK._bin_of[notes["velocity"]]).all()
    # Written and read back: one track per program, named by General MIDI, the drums on their channel.
    pm = pretty_midi.PrettyMIDI(io.BytesIO(midi_bytes(decoded)))
    tracks = {(i.program, i.is_drum, i.name) for i in pm.instruments}
    assert tracks == {(0, False, "Acoustic Grand Piano"), (BASS, False, "Electric Bass (finger)"),
                      (STRINGS, False, "String Ensemble 1"), (0, True, "Drums")}
    assert len(read_performance(midi_bytes(decoded))) == len(notes)


def test_events_group_a_chord_of_one_instrument_under_one_program():
    names = [TOK.event_name(i) for i in TOK.encode(TOK.read_notes(band_file(bars=1)))]
    header = ["PROGRAM(Acoustic Grand Piano)", "PROGRAM(Electric Bass (finger))", "PROGRAM(String Ensemble 1)",
              "PROGRAM(drums)"]  # who plays, announced after PIECE
    assert names[:5] == ["PIECE", *header]
    assert names[5:20] == ["PROGRAM(Acoustic Grand Piano)", "VELOCITY(17)", "NOTE_ON(60)", "NOTE_ON(64)",
                          "NOTE_ON(67)", "PROGRAM(Electric Bass (finger))", "VELOCITY(22)", "NOTE_ON(36)",
                          "PROGRAM(String Ensemble 1)", "VELOCITY(12)", "NOTE_ON(76)", "PROGRAM(drums)", "VELOCITY(24)",
                          "NOTE_ON(36)", "TIME_SHIFT(100ms)"]  # at the first instant, each part once; drum 36 is the kick


def test_families_fold_programs_into_a_smaller_vocabulary():
    folded = MultitrackTokenizer(MultitrackConfig(families=True))
    assert folded.vocab_size == TOK.vocab_size - 112 and folded.program_events == 17
    notes = folded.read_notes(band_file())
    assert set(notes["program"].tolist()) == {0, 32, 48, DRUMS}  # Bass and Strings, played as their first programs
    assert tokenizer_from_dict(folded.to_dict()).to_dict() == folded.to_dict()


def test_drums_are_never_transposed():
    notes = TOK.read_notes(band_file())
    rng = np.random.default_rng(0)
    for _ in range(5):
        decoded, _ = TOK.decode(TOK.augmented(notes, rng, transpose=5, stretch=0.0))
        drums = decoded[decoded["program"] == DRUMS]
        assert sorted(set(drums["pitch"].tolist())) == [36, 38]


@settings(max_examples=200, deadline=None)
@given(st.lists(st.integers(0, TOK.vocab_size - 1), max_size=300))
def test_any_ids_decode_to_a_valid_multitrack_file_with_no_stuck_notes(ids):
    notes, _ = TOK.decode(ids)
    assert notes.dtype == PROGRAM_NOTE_DTYPE and (notes["end"] > notes["start"]).all()
    assert set(notes["program"].tolist()) <= {*range(128), DRUMS}
    data = midi_bytes(notes)
    pm = pretty_midi.PrettyMIDI(io.BytesIO(data))
    assert sum(len(i.notes) for i in pm.instruments) == len(notes)
    assert all(i.is_drum == (i.name == "Drums") for i in pm.instruments)
    assert hanging_notes(data) == 0


@settings(max_examples=100, deadline=None)
@given(st.lists(st.integers(0, TOK.vocab_size - 2), max_size=200))
def test_the_rules_start_where_advancing_token_by_token_leaves_them(ids):
    prime = [TOK.boundary, *ids]
    at_once = TOK.rules()
    at_once.start(prime, 1, "cpu")
    stepwise = TOK.rules()
    stepwise.start(prime[:1], 1, "cpu")
    for token in prime[1:]:
        stepwise.advance(torch.tensor([token]))
    for name in ("opened", "struck", "now", "part"):
        assert torch.equal(getattr(at_once, name), getattr(stepwise, name)), name


def test_sampling_under_the_rules_draws_nothing_the_decoder_ignores_and_only_allowed_instruments():
    torch.manual_seed(0)
    model = RNNLM(ModelConfig(vocab_size=TOK.vocab_size, layers=1, hidden=16, embed=8)).eval()
    rows = generate(model, TOK.chord([60]), 400, num_samples=4, temperature=1.5, seed=1,
                    rules=TOK.rules(True, TOK.parts_named("bass,drums")))
    for row in rows:
        notes, report = TOK.decode([*TOK.chord([60]).tolist(), *row])
        assert report.ignored == 0
        fresh = notes[notes["start"] > 0]
        assert set(fresh["program"].tolist()) <= set(range(32, 40)) | {DRUMS}  # the bass family and drums
    with pytest.raises(SeqgenError, match="not a General MIDI instrument"):
        TOK.ensembles_for(TOK.chord([60]), 1, "kazoo")
    with pytest.raises(SeqgenError, match="needs a model of several instruments"):
        MidiTokenizer().ensembles_for(TOK.chord([60]), 1, "piano")


@pytest.fixture
def band(tmp_path, monkeypatch):
    monkeypatch.setenv("SEQGEN_CACHE_DIR", str(tmp_path / "cache"))
    folder = tmp_path / "band"
    folder.mkdir()
    for i in range(4):
        (folder / f"song{i}.mid").write_bytes(band_file(transpose=i))
    return folder


def test_the_summary_says_what_a_one_part_tokenizer_merges_and_leaves_out(band):
    messages = []
    midi_pieces(load_corpus(band), MidiTokenizer(), log=messages.append)
    assert messages[0] == ("Read 4 MIDI files: 104 notes in 16 instrument parts (3 General MIDI programs and drums); "
                           "merged the 12 parts of 4 files into one part each (--tokenizer duration keeps them) and "
                           "left out 32 drum notes "
                           "(--keep-drums keeps them)")
    messages.clear()
    midi_pieces(load_corpus(band), MultitrackTokenizer(), log=messages.append)
    assert messages[-1].startswith("Read 4 MIDI files: 104 notes in 16 instrument parts") and ";" not in messages[-1]
    assert "Using the cached encoding" in messages[0]  # one cache of what the files hold, whatever the tokenizer


def test_a_corpus_of_several_instruments_gets_the_duration_tokenizer(band, tmp_path):
    messages = []
    assert load_corpus(band).new_tokenizer({}, log=messages.append).kind == "midi-duration"
    assert messages[-1].startswith("Tokenizer: duration (instruments kept, notes with their lengths), since 4 of 4 files")
    assert load_corpus(band).new_tokenizer({"tokenizer": "performance"}).kind == "midi"
    piano = tmp_path / "piano"
    piano.mkdir()
    (piano / "a.mid").write_bytes(midi_bytes(TOK.read_notes(band_file())[:3]))
    assert load_corpus(piano).new_tokenizer({}).kind == "midi"
    for i in range(5):  # a band's song among six piano pieces: still a piano corpus
        (piano / f"p{i}.mid").write_bytes(midi_bytes(TOK.read_notes(band_file())[:3]))
    (piano / "band.mid").write_bytes(band_file())
    assert load_corpus(piano).new_tokenizer({}).kind == "midi"
    with pytest.raises(SeqgenError, match="--families does not apply to --tokenizer performance"):
        load_corpus(band).new_tokenizer({"tokenizer": "performance", "families": True})
    with pytest.raises(SeqgenError, match="--tokenizer char reads text corpora"):
        load_corpus(band).new_tokenizer({"tokenizer": "char"})


def test_train_and_sample_a_band_from_the_command_line(band, tmp_path):
    run = tmp_path / "run"
    result = invoke("train", band, "--tokenizer", "multitrack", "--out", run, "--layers", "1", "--hidden", "32", "--embed", "16",
                    "--seq-len", "32", "--batch-size", "4", "--max-steps", "30", "--threads", "1")
    assert result.exit_code == 0, result.output
    described = invoke("info", run).output
    assert "vocabulary 518" in described and "1 ensemble of instruments from 4 files" in described
    out = tmp_path / "s.mid"
    result = invoke("sample", run, "--primer", band / "song0.mid", "--primer-seconds", "2", "--seconds", "4",
                    "--seed", "1", "--out", out, "--instruments", "bass,drums,piano,strings")
    assert result.exit_code == 0, result.output
    pm = pretty_midi.PrettyMIDI(str(out))
    assert {i.name for i in pm.instruments} >= {"Acoustic Grand Piano", "Electric Bass (finger)", "Drums"}
    assert all(i.is_drum == (i.name == "Drums") for i in pm.instruments)
    unprimed = invoke("sample", run, "--seconds", "2", "--seed", "3", "--out", tmp_path / "u.mid", "--plot")
    assert unprimed.exit_code == 0, unprimed.output
    assert (tmp_path / "u.png").read_bytes()[:4] == b"\x89PNG"
    # Unprimed, a sample plays the band's instruments: the one ensemble of the corpus's files.
    played = {i.name for i in pretty_midi.PrettyMIDI(str(tmp_path / "u.mid")).instruments}
    assert played and played <= {"Acoustic Grand Piano", "Electric Bass (finger)", "String Ensemble 1", "Drums"}
    assert all(name in unprimed.stderr for name in played)  # the summary names them
    refused = invoke("train", band, "--out", tmp_path / "r2", "--tokenizer", "char")
    assert refused.exit_code == 1 and "--tokenizer char reads text corpora" in refused.stderr
    resumed = invoke("train", band, "--out", run, "--resume", "--tokenizer", "performance")
    assert resumed.exit_code == 1 and "--tokenizer cannot change when resuming" in resumed.stderr


def test_midi_stats_counts_instruments_families_and_drums(band):
    result = invoke("midi-stats", band)
    assert result.exit_code == 0, result.output
    assert re.search(r"\n  instruments +4\.000\n  drum_notes_per_second +2\.025\n", result.output)
    assert "families: Bass 31%, Drums 31%, Piano 23%, Ensemble 15%" in result.output


def test_one_part_defaults_are_unchanged():
    assert MidiConfig().keep_drums is False and MultitrackConfig().keep_drums is True
    assert MidiTokenizer().vocab_size == 389 and TOK.vocab_size == 389 + 129


QUARTETS = Path(__file__).resolve().parents[1] / "corpora" / "string-quartets-sample"


def test_the_bundled_string_quartets_survive_the_round_trip():
    files = sorted(QUARTETS.glob("*.mid"))
    assert len(files) == 5
    for path in files:
        notes = TOK.read_notes(path)
        assert set(notes["program"].tolist()) == {40, 41, 42}  # violins, viola, cello
        decoded, report = TOK.decode(TOK.encode(notes))
        assert report.ignored == report.capped == 0, path.name
        decoded = decoded[np.lexsort((decoded["pitch"], decoded["program"], decoded["start"]))]
        assert (decoded["program"] == notes["program"]).all() and (decoded["pitch"] == notes["pitch"]).all()
        half_step = TOK.config.resolution / 2 + 1e-9
        assert np.abs(decoded["start"] - notes["start"]).max() <= half_step
        assert np.abs(decoded["end"] - np.minimum(notes["end"], notes["start"] + TOK.config.max_note)).max() <= half_step
        assert (TOK._bin_of[decoded["velocity"]] == TOK._bin_of[notes["velocity"]]).all()
    assert load_corpus("string-quartets-sample").new_tokenizer({}).kind == "midi-duration"


def test_quartets_are_converted_with_their_instruments():
    music21 = pytest.importorskip("music21")
    from seqgen.corpora.builtins import _quartet_midi

    source = next(p for p in music21.corpus.getComposer("mozart") if p.parts[-2:] == ("k156", "movement2.mxl"))
    (data,), error = _quartet_midi(source)
    assert error is None
    pm = pretty_midi.PrettyMIDI(io.BytesIO(data))
    assert [i.program for i in pm.instruments] == [40, 40, 41, 42] and hanging_notes(data) == 0
    assert len({n.velocity for i in pm.instruments for n in i.notes}) > 1  # the score's dynamics


# -- ensembles: the sets of instruments that play together in the corpus ---------------------

def ensembles_of(*programs_files) -> MultitrackTokenizer:
    tok = MultitrackTokenizer()
    tok.ensembles = tuple((tuple(tok._part_of_program(p).tolist()), n) for p, n in programs_files)
    return tok


def test_the_tokenizer_learns_the_corpus_ensembles_and_the_checkpoint_keeps_them(band, tmp_path):
    (band / "solo.mid").write_bytes(midi_bytes(TOK.read_notes(band_file())[:3]))  # a piano solo
    tok = load_corpus(band).new_tokenizer({"tokenizer": "multitrack"})
    assert [(sorted(tok.part_programs[list(parts)].tolist()), n) for parts, n in tok.ensembles] == [
        ([0, BASS, STRINGS, DRUMS], 4), ([0], 1)]
    saved = tok.to_dict()
    assert saved["ensembles"][0] == {"programs": [0, BASS, STRINGS, DRUMS], "files": 4}
    assert tokenizer_from_dict(saved).ensembles == tok.ensembles
    without_drums = load_corpus(band).new_tokenizer({"tokenizer": "multitrack", "keep_drums": False})
    assert without_drums.ensembles[0] == ((0, BASS, STRINGS), 4)
    for bad in ([{"programs": [0, 999], "files": 1}], [{"programs": [], "files": 1}], [{"programs": [0], "files": 0}],
                [{"programs": [0], "files": True}], [{"programs": [0], "files": 10**400}], [[0, 1]], {"programs": [0]},
                None):
        with pytest.raises(SeqgenError, match="bad midi-multitrack tokenizer settings"):
            tokenizer_from_dict({**saved, "ensembles": bad})
    assert tokenizer_from_dict({k: v for k, v in saved.items() if k != "ensembles"}).ensembles == ()  # older checkpoints


def test_a_batch_draws_ensembles_in_the_corpus_proportions():
    tok = ensembles_of(([0], 3), ([BASS, DRUMS], 1))
    band = frozenset((BASS, tok.drum_part))
    piece, bass_line = tok.encode(np.zeros(0, PROGRAM_NOTE_DTYPE)), tok.chord([40], ensemble=[BASS])
    assert [tok.event_name(i) for i in bass_line] == ["PIECE", "PROGRAM(Electric Bass (finger))", "VELOCITY(19)",
                                                      "NOTE_ON(40)"]  # the header names the part in force
    for seed in range(5):
        drawn = tok.ensembles_for(piece, 8, seed=seed)
        assert sorted(drawn, key=len) == [frozenset({0})] * 6 + [band] * 2  # 6:2 is 3:1, whatever the seed
    assert tok.ensembles_for(piece, 8, seed=1) == tok.ensembles_for(piece, 8, seed=1)
    assert tok.played(bass_line).tolist() == [BASS]
    assert tok.ensembles_for(bass_line, 4, seed=1) == [band] * 4  # only those holding the prime's instruments
    assert tok.ensembles_for(piece, 2, "bass") == [frozenset({BASS})] * 2  # told who plays: the corpus's bass
    assert ensembles_of(([0], 1)).ensembles_for(piece, 1, "bass") == [frozenset(range(32, 40))]  # none: the family
    assert tok.ensembles_for(piece, 2, "any") == [None, None]
    assert ensembles_of(([STRINGS], 1)).ensembles_for(bass_line, 2) == [None, None]  # none holds the bass: no limit


def test_a_piece_announces_who_plays_and_a_sample_plays_only_them(band, tmp_path):
    tok = MultitrackTokenizer()
    assert [tok.event_name(i) for i in tok.chord([60], ensemble=[0, BASS])[:4]] == [
        "PIECE", "PROGRAM(Acoustic Grand Piano)", "PROGRAM(Electric Bass (finger))", "PROGRAM(Acoustic Grand Piano)"]
    old = MultitrackTokenizer.from_dict({k: v for k, v in tok.to_dict().items() if k != "header"})
    assert old.event_name(old.encode(tok.read_notes(band_file()))[2]) == "VELOCITY(17)"  # from before headers: none
    run = tmp_path / "run"
    (band / "solo.mid").write_bytes(midi_bytes(TOK.read_notes(band_file())[:3]))  # a piano solo among band songs
    assert invoke("train", band, "--tokenizer", "multitrack", "--out", run, "--layers", "1", "--hidden", "32",
                  "--embed", "16", "--seq-len", "32", "--batch-size", "4", "--max-steps", "20", "--threads", "1").exit_code == 0
    result = invoke("sample", run, "-k", "5", "--seconds", "3", "--seed", "1", "--temperature", "1.5",
                    "--out", tmp_path / "s", "--json")
    assert result.exit_code == 0, result.output
    played = [set(r.get("instruments", [])) for r in json.loads(result.stdout)["samples"]]
    band_members = {"Acoustic Grand Piano", "Electric Bass (finger)", "String Ensemble 1", "Drums"}
    assert sum(p == {"Acoustic Grand Piano"} for p in played) == 1 and all(p <= band_members for p in played)
    for seed in ("-1", str(2**64 - 1)):  # any seed torch takes
        assert invoke("sample", run, "-k", "3", "--seconds", "1", "--seed", seed, "--out", tmp_path / seed).exit_code == 0


@pytest.mark.parametrize("temperature", [0.5, 1.0, 1.5])
def test_limiting_the_instruments_keeps_the_odds_of_changing_instrument(temperature):
    """Only which part a PROGRAM changes to is limited: the odds of changing at all, the model's
    at the sampling temperature, stay what they were (a mask alone would hand them to notes and
    time shifts)."""
    tok = TOK
    rules = tok.rules(True, tok.parts_named("bass,drums"))
    rules.start(tok.chord([60]), 3, "cpu")  # the piano announced, in force, and playing
    logits = torch.randn(3, tok.vocab_size, generator=torch.Generator().manual_seed(0)) * 3
    before = (logits / temperature).softmax(-1)
    after = (rules.restrict(logits, temperature) / temperature).softmax(-1)
    allowed = rules.allowed()
    changes = torch.ones(tok.parts, dtype=torch.bool)
    changes[0] = False  # the piano, in force: its PROGRAM changes nothing
    change_before = before[:, tok.program : tok.boundary][:, changes].sum(-1)
    change_after = after[:, tok.program : tok.boundary].sum(-1)
    # Against what else may come next (the piano's NOTE_ONs may not: it is not allowed to play).
    rest_before = before.masked_fill(~allowed, 0).sum(-1) - before[:, tok.program : tok.boundary].masked_fill(
        ~allowed[:, tok.program : tok.boundary], 0).sum(-1)
    assert torch.allclose(change_after / (1 - change_after), change_before / rest_before, rtol=1e-4)
    assert set(after[0, tok.program : tok.boundary].nonzero().ravel().tolist()) == {32, 33, 34, 35, 36, 37, 38, 39, 128}


def test_midi_stats_of_the_first_seconds(tmp_path):
    notes = np.zeros(2, PROGRAM_NOTE_DTYPE)
    notes["pitch"], notes["velocity"], notes["program"] = 60, 80, [0, BASS]
    notes["start"], notes["end"] = [0.0, 5.0], [1.0, 6.0]  # the bass comes in after 5 s
    (tmp_path / "a.mid").write_bytes(midi_bytes(notes))
    whole, opening = invoke("midi-stats", tmp_path, "--json"), invoke("midi-stats", tmp_path, "--seconds", "2", "--json")
    assert whole.exit_code == opening.exit_code == 0, opening.output
    assert json.loads(whole.stdout)["stats"]["instruments"] == 2
    assert json.loads(opening.stdout)["stats"]["instruments"] == 1
    assert "the first 2 s of each" in invoke("midi-stats", tmp_path, "--reference", tmp_path, "--seconds", "2").output


@pytest.mark.parametrize("name", ["multitrack", "duration"])
def test_the_rules_allow_every_event_of_an_encoded_piece(name):
    """What training reads, a sampler may draw: header and all (a rule that forbade the data's
    own events would leave the model only its unlikely alternatives)."""
    from seqgen.tokenizers import tokenizer_named

    cls = tokenizer_named(name, "midi", "test")
    tok = cls(cls.config_class())
    for notes in (tok.read_notes(band_file()), tok.read_notes(band_file())[:3]):  # a band, and a piano's chord
        ids = tok.encode(notes)
        rules = tok.rules(True)
        rules.start(ids[:1], 1, "cpu")
        for i in ids[1:].tolist():
            assert rules.allowed()[0, i], tok.event_name(i)
            rules.advance(torch.tensor([i]))


def test_a_checkpoint_from_before_headers_and_ensembles_still_samples(band, tmp_path):
    from safetensors.torch import save

    from seqgen import checkpoint

    run = tmp_path / "run"
    assert invoke("train", band, "--tokenizer", "multitrack", "--out", run, "--layers", "1", "--hidden", "16",
                  "--embed", "8", "--seq-len", "32", "--batch-size", "4", "--max-steps", "2", "--threads", "1").exit_code == 0
    ckpt = checkpoint.read(run)
    tokenizer = {k: v for k, v in ckpt.meta["tokenizer"].items() if k not in ("header", "ensembles")}
    old = tmp_path / "old.safetensors"
    old.write_bytes(save(ckpt.tensors, metadata={"seqgen": json.dumps({**ckpt.meta, "tokenizer": tokenizer})}))
    assert "ensemble" not in invoke("info", old).output
    result = invoke("sample", old, "-k", "2", "--seconds", "2", "--seed", "1", "--out", tmp_path / "s", "--json")
    assert result.exit_code == 0, result.output
    assert len(json.loads(result.stdout)["samples"]) == 2
