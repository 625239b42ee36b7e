"""The Python API (seqgen.load): what it returns, that the CLI gives the same, that importing
seqgen stays light."""

import json
import subprocess
import sys
from pathlib import Path

import pretty_midi
import pytest

import seqgen
from seqgen.errors import SeqgenError

from .conftest import invoke

ROOT = Path(__file__).resolve().parent.parent
BACH = ROOT / "checkpoints" / "bach-chorales-lstm"


def test_importing_seqgen_does_not_import_torch():
    code = "import sys, seqgen; print('torch' in sys.modules, 'pretty_midi' in sys.modules, callable(seqgen.load))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["False", "False", "True"]


def test_generate_gives_the_texts_seqgen_sample_gives(trained_run):
    m = seqgen.load(trained_run)
    assert m.kind == "text" and "LSTM" in repr(m)
    texts = m.generate(prime="The ", length=40, num_samples=3, temperature=0.9, seed=7)
    assert len(texts) == 3 and all(t.startswith("The ") and len(t) == 44 for t in texts)
    assert len(set(texts)) > 1  # three samples, not one thrice
    assert texts == m.generate(prime="The ", length=40, num_samples=3, temperature=0.9, seed=7)  # seeded
    cli = invoke("sample", trained_run, "--prime", "The ", "-n", "40", "-k", "3", "-t", "0.9", "--seed", "7", "--json")
    assert [s["text"] for s in json.loads(cli.stdout)["samples"]] == texts
    tails = m.generate(prime="The ", length=40, num_samples=3, temperature=0.9, seed=7, continuation_only=True)
    assert ["The " + t for t in tails] == texts


def test_score_is_what_seqgen_eval_reports(trained_run, corpus_file, corpus_text):
    m = seqgen.load(trained_run)
    cli = json.loads(invoke("eval", trained_run, corpus_file, "--json").stdout)
    for data in (corpus_text, corpus_file):
        scores = m.score(data)
        assert scores["loss"] == pytest.approx(cli["loss"], rel=1e-6) and scores["tokens"] == cli["tokens"]
        assert scores["bpc"] == pytest.approx(cli["bpc"], rel=1e-6)


def test_text_model_errors_are_one_line(trained_run):
    m = seqgen.load(trained_run)
    with pytest.raises(SeqgenError, match="not in the model's vocabulary"):
        m.generate(prime="\u2603")
    with pytest.raises(SeqgenError, match="seconds: not options of a text model"):
        m.generate(seconds=3)
    with pytest.raises(SeqgenError, match="at least two tokens"):
        m.score("a")
    for bad in (dict(batch_size=0), dict(batch_size=2.5), dict(batch_size=True), dict(seq_len=0), dict(seq_len=-3)):
        with pytest.raises(SeqgenError, match=f"{next(iter(bad))}=.*a whole number, at least 1"):
            m.score("to be or not", **bad)
    with pytest.raises(SeqgenError, match="no such checkpoint file or run directory"):
        seqgen.load(trained_run / "missing")


def test_a_midi_model_generates_pretty_midi_as_the_cli_writes_it(tmp_path):
    m = seqgen.load(BACH)
    assert m.kind == "midi"
    pieces = m.generate(seconds=4, num_samples=2, seed=3)
    assert all(isinstance(p, pretty_midi.PrettyMIDI) for p in pieces)
    assert 0 < pieces[0].get_end_time() <= 4 + 10  # notes may ring past the last event
    assert invoke("sample", BACH, "--seconds", "4", "-k", "2", "--seed", "3", "--out", tmp_path).exit_code == 0
    written = pretty_midi.PrettyMIDI(str(tmp_path / "sample_001.mid"))
    assert [(n.pitch, round(n.start, 3)) for n in written.instruments[0].notes] == [
        (n.pitch, round(n.start, 3)) for n in pieces[0].instruments[0].notes]
    with pytest.raises(SeqgenError, match="primer="):
        m.generate(prime="The ")


@pytest.mark.parametrize("bad", [dict(temperature=-1), dict(top_p=5), dict(top_p=0), dict(num_samples=0), dict(length=0),
                                 dict(length=-3), dict(seed=2**70), dict(top_k=0), dict(temperature=float("nan"))])
def test_generate_refuses_what_the_cli_refuses(trained_run, bad):
    with pytest.raises(SeqgenError, match=f"{next(iter(bad))} = "):
        seqgen.load(trained_run).generate(**bad)


def test_a_midi_model_refuses_unknown_options():
    with pytest.raises(SeqgenError, match="secnds: not an option"):
        seqgen.load(BACH).generate(secnds=3)
    with pytest.raises(SeqgenError, match="seconds = "):
        seqgen.load(BACH).generate(seconds=-2)
