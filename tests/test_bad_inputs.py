"""Every bad input gets one clear line on stderr, a non-zero exit, no traceback, and leaves the
user's files as they were. Each row: (name, command line, expected exit code, message pattern)."""

import os
import pickle
import re
import shutil

import pytest
import torch
from click.testing import CliRunner

from seqgen.cli import cli

from .midi_helpers import midi_file, tune
from .test_cli import TINY

ROWS = [
    ("missing corpus", ["train", "{tmp}/nope.txt"], 1, r"no such file, directory or built-in corpus"),
    ("empty corpus", ["train", "{tmp}/empty.txt"], 1, r"the corpus is empty"),
    ("empty directory", ["train", "{tmp}/emptydir"], 1, r"no files in this directory"),
    ("binary corpus", ["train", "{tmp}/binary.txt"], 1, r"binary file"),
    ("latin-1 corpus", ["train", "{tmp}/latin1.txt"], 1, r"not valid UTF-8 \(byte 0xe9 at offset 3\)"),
    ("seq-len over corpus", ["train", "{tmp}/small.txt", "--seq-len", "5000"], 1, r"--seq-len 5000 is longer"),
    ("corpus under one batch", ["train", "{tmp}/small.txt", "--seq-len", "64"], 1, r"use --batch-size \d+ or less"),
    ("zero layers", ["train", "{corpus}", "--layers", "0"], 2, r"--layers"),
    ("negative lr", ["train", "{corpus}", "--lr", "-1"], 2, r"--lr"),
    ("unknown cell", ["train", "{corpus}", "--cell", "transformer"], 2, r"--cell"),
    ("resume without --out", ["train", "{corpus}", "--resume"], 1, r"--resume needs --out"),
    ("resume an empty dir", ["train", "{corpus}", "--resume", "--out", "{tmp}/emptydir"], 1, r"no last.safetensors"),
    ("run dir in use", ["train", "{corpus}", "--out", "{run}"], 1, r"already holds a run"),
    pytest.param("cuda absent", ["train", "{corpus}", "--device", "cuda"], 1, r"no CUDA GPU",
                 marks=pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")),
    ("resume with new --seq-len", ["train", "{corpus}", "--resume", "--out", "{run}", "--seq-len", "16"], 1,
     r"--seq-len cannot change when resuming"),
    ("nan lr", ["train", "{corpus}", "--lr", "nan"], 2, r"not a finite number"),
    ("negative temperature", ["sample", "{run}", "--temperature", "-0.5"], 2, r"--temperature"),
    ("top-p zero", ["sample", "{run}", "--top-p", "0"], 2, r"--top-p"),
    ("nan temperature", ["sample", "{run}", "--temperature", "nan"], 2, r"not a finite number"),
    ("zero length", ["sample", "{run}", "--length", "0"], 2, r"--length"),
    ("unknown prime chars", ["sample", "{run}", "--prime", "It was ∑≈"], 1, r"--prime has characters not in the model's vocabulary: '∑≈'"),
    ("prime and prime file", ["sample", "{run}", "--prime", "a", "--prime-file", "{corpus}"], 2, r"not both"),
    ("missing prime file", ["sample", "{run}", "--prime-file", "{tmp}/nope.txt"], 1, r"nope.txt"),
    ("output file exists", ["sample", "{run}", "--out", "{tmp}/exists.txt"], 1, r"already exist.*--force"),
    ("out is a file for many", ["sample", "{run}", "-k", "2", "--out", "{tmp}/exists.txt"], 1, r"not a directory"),
    ("missing checkpoint", ["sample", "{tmp}/nope.safetensors"], 1, r"no such checkpoint"),
    ("pickle checkpoint", ["sample", "{tmp}/evil.pt"], 1, r"never unpickles"),
    ("text as checkpoint", ["info", "{corpus}"], 1, r"not a safetensors checkpoint"),
    ("dir without checkpoint", ["info", "{tmp}/emptydir"], 1, r"no best.safetensors or last.safetensors"),
    ("eval unknown chars", ["eval", "{run}", "{tmp}/greek.txt"], 1, r"characters not in the model's vocabulary: 'αβγ'"),
    ("eval missing file", ["eval", "{run}", "{tmp}/nope.txt"], 1, r"no such file"),
    ("corrupt MIDI file", ["train", "{tmp}/corrupt.mid"], 1,
     r"no usable notes in 1 MIDI file \(corrupt.mid: not a readable MIDI file"),
    ("MIDI without notes", ["train", "{tmp}/silent"], 1, r"no usable notes in 1 MIDI file \(silent.mid: no notes"),
    ("strict MIDI corpus", ["train", "{tmp}/mixed", "--strict"], 1, r"corrupt.mid: not a readable MIDI file .*--strict"),
    ("MIDI read as text", ["train", "{tmp}/corrupt.mid", "--kind", "text"], 1, r"binary file"),
    ("one MIDI piece", ["train", "{tmp}/mixed"], 1, r"needs at least two"),
    ("bad primer pitches", ["sample", "{run}", "--primer-pitches", "C,E,G"], 2, r"MIDI pitch numbers"),
    ("missing primer", ["sample", "{run}", "--primer", "{tmp}/nope.mid"], 2, r"--primer"),
    ("stats of no MIDI", ["midi-stats", "{tmp}/emptydir"], 1, r"no .mid or .midi files"),
    ("unknown corpus download", ["corpus", "download", "wikipedia"], 1, r"no built-in corpus 'wikipedia'"),
    ("download from a non-URL", ["corpus", "download", "tinyshakespeare", "--url", "not a url"], 1, r"could not download"),
]


class Payload:
    def __reduce__(self):
        return (os.system, ("echo pwned > /dev/null",))


@pytest.fixture(scope="module")
def files(tmp_path_factory, corpus_file):
    tmp = tmp_path_factory.mktemp("bad")
    (tmp / "empty.txt").write_text("")
    (tmp / "emptydir").mkdir()
    (tmp / "binary.txt").write_bytes(b"\x7fELF\x02\x01\x01\x00\x00\x00" * 20)
    (tmp / "latin1.txt").write_bytes("caf\u00e9 au lait".encode("latin-1"))
    (tmp / "small.txt").write_text("just a short line of text\n" * 10)
    (tmp / "exists.txt").write_text("keep me")
    (tmp / "greek.txt").write_text("It was αβγ")
    (tmp / "evil.pt").write_bytes(pickle.dumps(Payload()))
    corrupt = b"MThd\x00\x00\x00\x06\x00\x01\x00\x01\x01\xe0MTrk\x00\x00\x00\x09\x00\x90\x3c"
    (tmp / "corrupt.mid").write_bytes(corrupt)
    for folder, files in {"silent": {"silent.mid": midi_file([])},
                          "mixed": {"corrupt.mid": corrupt, "good.mid": midi_file(tune())}}.items():
        (tmp / folder).mkdir()
        for name, data in files.items():
            (tmp / folder / name).write_bytes(data)
    run = tmp / "run"
    result = CliRunner().invoke(cli, ["train", str(corpus_file), "--out", str(run), *TINY, "--max-steps", "10"])
    assert result.exit_code == 0, result.output
    return tmp, run


def snapshot(root):
    return {p: p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.mark.parametrize("name,args,code,pattern", ROWS)
def test_bad_input(files, corpus_file, name, args, code, pattern, monkeypatch):
    tmp, run = files
    monkeypatch.chdir(tmp)  # a default run directory, if one were made, would land here
    args = [a.format(tmp=tmp, run=run, corpus=corpus_file) for a in args]
    before = snapshot(tmp)
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == code, (result.output, result.exception)
    assert isinstance(result.exception, SystemExit), result.exception  # not an escaped exception
    assert "Traceback" not in result.output
    errors = [line for line in result.stderr.splitlines() if line.startswith("Error: ")]
    assert len(errors) == 1, result.stderr  # usage errors may add Usage/Try lines before it
    assert re.search(pattern, errors[0]), errors[0]
    assert snapshot(tmp) == before  # the user's files are as they were
    assert not (tmp / "checkpoints").exists()
