"""MIDI through the command line: train a tiny model, sample with primers, read the files back."""

import io
import json
import os
import subprocess
import sys

import pretty_midi
import pytest

from . import conftest
from .conftest import invoke
from .midi_helpers import days_gap_file, dense_file, midi_file, tune, years_gap_file

TINY = [*conftest.TINY, "--batch-size", "4"]  # a few tunes hold few batches


def notes_of(path_or_bytes):
    source = io.BytesIO(path_or_bytes) if isinstance(path_or_bytes, bytes) else str(path_or_bytes)
    pm = pretty_midi.PrettyMIDI(source)
    return sorted((n.pitch, round(n.start, 3), round(n.end, 3)) for i in pm.instruments for n in i.notes)


@pytest.fixture(scope="module")
def songs(tmp_path_factory):
    root = tmp_path_factory.mktemp("songs")
    for i in range(6):
        (root / f"tune{i}.mid").write_bytes(midi_file(tune(transpose=i - 2)))
    return root


@pytest.fixture(scope="module")
def run(tmp_path_factory, songs):
    out = tmp_path_factory.mktemp("midirun") / "run"
    mp = pytest.MonkeyPatch()
    mp.setenv("SEQGEN_CACHE_DIR", str(out.parent / "cache"))
    result = invoke("train", songs, "--out", out, *TINY)
    mp.undo()
    assert result.exit_code == 0, result.output
    assert "vocabulary 389" in result.stderr
    return out


def test_sample_with_a_primer_file_writes_midi_that_starts_with_the_primer(run, songs, tmp_path):
    result = invoke("sample", run, "--primer", songs / "tune0.mid", "--primer-seconds", "1", "-k", "2",
                    "--seconds", "3", "--seed", "1", "--out", tmp_path / "out")
    assert result.exit_code == 0, result.output
    files = result.stdout.split()
    assert files == [str(tmp_path / "out" / "sample_001.mid"), str(tmp_path / "out" / "sample_002.mid")]
    primer = [n for n in notes_of(songs / "tune0.mid") if n[1] < 1.0]
    for f in files:
        notes = notes_of(f)
        starts = {(p, s) for p, s, _ in notes}
        assert {(p, s) for p, s, _ in primer} <= starts  # the primer's onsets, then the continuation
        assert 3.0 < max(e for _, _, e in notes) <= 1.0 + 3.0 + 1.0
    assert "decoder ignored" in result.stderr


def test_continuation_only_leaves_the_primer_out(run, tmp_path):
    args = ["sample", run, "--primer-pitches", "60,64,67", "--length", "60", "--seed", "3"]
    assert invoke(*args, "--out", tmp_path / "full.mid").exit_code == 0
    assert invoke(*args, "--out", tmp_path / "cont.mid", "--continuation-only").exit_code == 0
    full, cont = notes_of(tmp_path / "full.mid"), notes_of(tmp_path / "cont.mid")
    assert {(60, 0.0), (64, 0.0), (67, 0.0)} <= {(p, s) for p, s, _ in full}
    assert len(cont) == len(full) - 3  # the chord the primer struck is gone, the rest kept
    assert {(p, s) for p, s, _ in cont} == {(p, s) for p, s, _ in full} - {(60, 0.0), (64, 0.0), (67, 0.0)}


def test_one_sample_goes_to_stdout_when_redirected_and_seeds_repeat(run, tmp_path):
    command = [sys.executable, "-m", "seqgen", "sample", str(run), "--seconds", "2", "--seed", "5"]
    first = subprocess.run(command, capture_output=True, check=True, timeout=120)
    second = subprocess.run(command, capture_output=True, check=True, timeout=120)
    assert first.stdout[:4] == b"MThd" and first.stdout == second.stdout
    assert notes_of(first.stdout)
    many = invoke("sample", run, "-k", "2")
    assert many.exit_code == 1 and "MIDI is binary: give --out DIR" in many.output


def test_program_and_tempo_are_written(run, tmp_path):
    result = invoke("sample", run, "--seconds", "2", "--seed", "4", "--program", "19", "--tempo", "90",
                    "--out", tmp_path / "organ.mid")
    assert result.exit_code == 0, result.output
    pm = pretty_midi.PrettyMIDI(str(tmp_path / "organ.mid"))
    assert [i.program for i in pm.instruments] == [19] and not pm.instruments[0].is_drum
    assert pm.get_tempo_changes()[1].tolist() == pytest.approx([90.0], rel=1e-4)  # MIDI stores microseconds per beat


def test_plot_and_wav_beside_each_file(run, tmp_path):
    pytest.importorskip("matplotlib")
    result = invoke("sample", run, "--seconds", "1", "--seed", "2", "--out", tmp_path / "s.mid", "--plot", "--wav")
    assert result.exit_code == 0, result.output
    assert (tmp_path / "s.png").read_bytes()[:4] == b"\x89PNG"
    assert (tmp_path / "s.wav").read_bytes()[:4] == b"RIFF"
    assert "rendered with" in result.stderr


def test_json_summary_of_midi_samples_needs_files(run, tmp_path):
    result = invoke("sample", run, "-k", "2", "--seconds", "2", "--seed", "1", "--out", tmp_path, "--json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["kind"] == "midi" and report["seed"] == 1 and len(report["samples"]) == 2
    for entry in report["samples"]:
        assert len(notes_of(entry["path"])) == entry["notes"] and entry["ignored_events"] == 0
    refused = invoke("sample", run, "--seconds", "2", "--json")
    assert refused.exit_code == 1 and "--out" in refused.stderr


def test_info_and_eval_speak_midi(run, songs):
    info = invoke("info", run)
    assert "MIDI events, vocabulary 389" in info.stdout and "6 MIDI files" in info.stdout
    assert "nats/event" in info.stdout
    settings = json.loads(invoke("info", run, "--json").stdout)["tokenizer"]
    assert settings == {"kind": "midi", "resolution": 0.01, "max_shift": 1.0, "velocity_bins": 32,
                        "keep_drums": False, "max_note": 10.0, "vocab_size": 389}
    result = invoke("eval", run, songs, "--json")
    report = json.loads(result.stdout)
    assert report["tokens"] > 500 and 0 < report["loss"] < 6 and "bits_per_event" in report


def test_text_and_midi_options_are_not_mixed(run, corpus_file, tmp_path, trained_run):
    cases = [
        (["sample", run, "--prime", "hello"], "--prime does not apply to a MIDI model; use --primer"),
        (["sample", trained_run, "--primer-pitches", "60"], "--primer-pitches does not apply to a text model"),
        (["sample", trained_run, "--seconds", "3"], "--seconds does not apply to a text model"),
        (["train", corpus_file, "--velocity-bins", "8", "--out", tmp_path / "x"], "--velocity-bins is a MIDI option"),
        (["train", corpus_file, "--transpose", "5", "--out", tmp_path / "x"], "--transpose is a MIDI option"),
        (["train", "--out", run, "--resume", "--velocity-bins", "8"], "--velocity-bins cannot change when resuming"),
        (["sample", run, "--primer-pitches", "60,300"], "MIDI pitch numbers from 0 to 127"),
        (["sample", run, "--primer-seconds", "2"], "--primer-seconds needs --primer"),
    ]
    for args, message in cases:
        result = invoke(*args)
        assert result.exit_code != 0 and message in result.output, (args, result.output)


def test_midi_runs_default_to_longer_windows(songs, tmp_path):
    result = invoke("train", songs, "--out", tmp_path / "run", "--max-steps", "1")
    assert result.exit_code == 1 and "smaller than one batch of 16 x 257" in result.output  # --seq-len 256


def test_resume_a_midi_run(run, tmp_path, monkeypatch):
    monkeypatch.setenv("SEQGEN_CACHE_DIR", str(run.parent / "cache"))
    result = invoke("train", "--out", run, "--resume", "--max-steps", "40")
    assert result.exit_code == 0, result.output
    assert "Using the cached encoding" in result.stderr and "Resuming at step 30" in result.stderr


def test_midi_stats_compares_folders(songs, tmp_path):
    same = invoke("midi-stats", songs, "--reference", songs, "--check")
    assert same.exit_code == 0 and same.stdout.count("  ok\n") == 6  # four musical statistics, instruments, drum notes per second
    (tmp_path / "drone.mid").write_bytes(midi_file([(60, 80, 0.0, 12.0), (61, 80, 0.0, 1.0)]))
    far = invoke("midi-stats", tmp_path, "--reference", songs, "--check", "--json")
    report = json.loads(far.stdout)
    assert far.exit_code == 1 and report["ok"] is False
    assert report["stats"]["pitch_range"] == 1.0
    assert (report["stats"]["held_to_cap"], report["stats"]["stuck_notes"]) == (1, 0)


def test_midi_stats_counts_notes_that_are_never_released(tmp_path):
    import mido

    track = mido.MidiTrack([mido.Message("note_on", note=60, velocity=90, time=0),
                            mido.Message("note_on", note=64, velocity=90, time=0),
                            mido.Message("note_off", note=60, velocity=0, time=480),
                            mido.Message("note_on", note=67, velocity=90, time=0),
                            mido.Message("note_on", note=67, velocity=0, time=480)])  # velocity 0: an off
    mido.MidiFile(tracks=[track]).save(str(tmp_path / "hanging.mid"))
    report = json.loads(invoke("midi-stats", tmp_path, "--json").stdout)
    assert report["stats"]["stuck_notes"] == 1  # 64 rings for ever


def test_a_primer_is_its_first_minute_unless_primer_seconds_says_otherwise(run, tmp_path):
    long = tmp_path / "long.mid"
    long.write_bytes(midi_file([(60 + i % 12, 80, i * 0.5, i * 0.5 + 0.4) for i in range(150)]))  # 75 s
    result = invoke("sample", run, "--primer", long, "--length", "1", "--seed", "1", "--out", tmp_path / "a.mid")
    assert result.exit_code == 0, result.output
    assert result.stderr.count("using its first 60 s of 74.9; --primer-seconds S uses more or less") == 1
    # The primer's notes start every 0.5 s: the last kept is at 59.5. The one sampled event may
    # start a note too, but only at the primer's end (59.9), so nothing starts at 60 or later.
    starts = {s for _, s, _ in notes_of(tmp_path / "a.mid")}
    assert {59.0, 59.5} <= starts and max(starts) < 60
    more = invoke("sample", run, "--primer", long, "--primer-seconds", "70", "--length", "1", "--seed", "1",
                  "--out", tmp_path / "b.mid")
    assert more.exit_code == 0 and "using its first" not in more.stderr
    starts = {s for _, s, _ in notes_of(tmp_path / "b.mid")}
    assert 69.5 in starts and max(starts) < 70
    short = invoke("sample", run, "--primer", long, "--primer-seconds", "2", "--length", "1", "--out", tmp_path / "c.mid")
    assert short.exit_code == 0 and "using its first" not in short.stderr
    assert "[default: 60]" in invoke("sample", "--help").output


def test_a_primer_ends_at_its_first_silence_of_over_a_minute(run, tmp_path):
    for name, data in {"years.mid": years_gap_file(), "days.mid": days_gap_file()}.items():
        (tmp_path / name).write_bytes(data)
        result = invoke("sample", run, "--primer", tmp_path / name, "--primer-seconds", "1e9", "--length", "1",
                        "--seed", "1", "--out", tmp_path / f"out-{name}")
        assert result.exit_code == 0, result.output
        assert "up to a silence of" in result.stderr and "over 60 s ends a piece" in result.stderr
        notes = notes_of(tmp_path / f"out-{name}")
        assert (60, 0.0) in {(p, s) for p, s, _ in notes} and max(e for _, _, e in notes) < 60  # not days later


BOUNDED = """
import resource, sys, time
from pathlib import Path
from seqgen.api import primer_notes
from seqgen.corpora import load_corpus, midi_pieces
from seqgen.tokenizers import MidiTokenizer

path, tok = Path(sys.argv[1]), MidiTokenizer()
start = time.perf_counter()
pieces, _ = midi_pieces(load_corpus(path), tok, log=lambda m: None)
events = sum(len(tok.encode(p)) for p in pieces)  # as training encodes them each epoch
corpus = time.perf_counter() - start
for seconds in (None, 1e9):  # the default primer, then all of it
    start = time.perf_counter()
    notes, until = primer_notes(tok, path, seconds)
    ids = tok.encode(notes, until=until)
    rules = tok.rules()
    rules.start(ids, 4, "cpu")
    tok.seconds(ids), tok.decode(ids)
    primer = time.perf_counter() - start
print(corpus, primer, events, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
"""


@pytest.mark.parametrize("make", [years_gap_file, days_gap_file, dense_file])
def test_hostile_files_read_in_bounded_time_and_memory(make, tmp_path):
    path = tmp_path / "hostile.mid"
    path.write_bytes(make())
    assert len(path.read_bytes()) < 1 << 20
    env = {**os.environ, "SEQGEN_CACHE_DIR": str(tmp_path / "cache")}
    out = subprocess.run([sys.executable, "-c", BOUNDED, str(path)], capture_output=True, text=True, check=True,
                         timeout=120, env=env).stdout.split()
    corpus, primer, events, peak_kb = float(out[0]), float(out[1]), int(out[2]), int(out[3])
    assert corpus < 10 and primer < 10, (corpus, primer)
    assert peak_kb < 1 << 20, f"peak memory {peak_kb / 1024:.0f} MB"
    assert events < 7_000_000  # before: the years gap alone was 1.7 x 10^8 TIME_SHIFTs (3 GB)
