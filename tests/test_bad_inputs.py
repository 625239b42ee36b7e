"""Every bad input gets one clear line on stderr, a non-zero exit, no traceback, and leaves the
user's files as they were. Each row: (name, command line, expected exit code, message pattern)."""

import errno
import io
import math
import os
import pickle
import re
import socket

import mido
import pytest
import torch
from click.testing import CliRunner

from seqgen import checkpoint
from seqgen.cli import cli

from .conftest import TINY
from .midi_helpers import days_gap_file, midi_file, tune, years_gap_file

ROWS = [
    ("missing corpus", ["train", "{tmp}/nope.txt"], 1, r"no such file, directory or built-in corpus"),
    ("empty corpus", ["train", "{tmp}/empty.txt"], 1, r"the corpus is empty"),
    ("empty directory", ["train", "{tmp}/emptydir"], 1, r"no files in this directory"),
    ("binary corpus", ["train", "{tmp}/binary.txt"], 1, r"binary file"),
    ("latin-1 corpus", ["train", "{tmp}/latin1.txt"], 1, r"not valid UTF-8 \(byte 0xe9 at offset 3\)"),
    ("70,000 distinct characters", ["train", "{tmp}/manychars.txt"], 1,
     r"70,000 distinct characters: a character model takes at most 65,536"),
    ("seq-len over corpus", ["train", "{tmp}/small.txt", "--seq-len", "5000"], 1, r"--seq-len 5000 is longer"),
    ("corpus under one batch", ["train", "{tmp}/small.txt", "--seq-len", "64"], 1, r"use --batch-size \d+ or less"),
    ("zero layers", ["train", "{corpus}", "--layers", "0"], 2, r"--layers"),
    ("negative lr", ["train", "{corpus}", "--lr", "-1"], 2, r"--lr"),
    ("unknown cell", ["train", "{corpus}", "--cell", "transformer"], 2, r"--cell"),
    ("resume without --out", ["train", "{corpus}", "--resume"], 1, r"--resume needs --out"),
    ("resume an empty dir", ["train", "{corpus}", "--resume", "--out", "{tmp}/emptydir"], 1, r"no last.safetensors"),
    ("run dir in use", ["train", "{corpus}", "--out", "{run}"], 1, r"already holds a run"),
    pytest.param("cuda absent", ["train", "{corpus}", "--device", "cuda"], 2, r"no CUDA GPU",
                 marks=pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")),
    ("resume with new --seq-len", ["train", "{corpus}", "--resume", "--out", "{run}", "--seq-len", "16"], 1,
     r"--seq-len cannot change when resuming"),
    ("nan lr", ["train", "{corpus}", "--lr", "nan"], 2, r"not a finite number"),
    ("negative temperature", ["sample", "{run}", "--temperature", "-0.5"], 2, r"--temperature"),
    ("top-p zero", ["sample", "{run}", "--top-p", "0"], 2, r"--top-p"),
    ("nan temperature", ["sample", "{run}", "--temperature", "nan"], 2, r"not a finite number"),
    ("zero length", ["sample", "{run}", "--length", "0"], 2, r"--length"),
    ("unknown prime chars", ["sample", "{run}", "--prime", "It was ∑≈"], 1,
     r"--prime has characters not in the model's vocabulary: '∑≈'"),
    ("prime and prime file", ["sample", "{run}", "--prime", "a", "--prime-file", "{corpus}"], 2, r"not both"),
    ("missing prime file", ["sample", "{run}", "--prime-file", "{tmp}/nope.txt"], 1, r"nope.txt"),
    ("/dev/zero as prime file", ["sample", "{run}", "--prime-file", "/dev/zero"], 1,
     r"/dev/zero: a character device; --prime-file must be a regular file of at most 16 MB"),
    ("FIFO as prime file", ["sample", "{run}", "--prime-file", "{tmp}/fifo"], 1,
     r"fifo: a named pipe \(FIFO\); --prime-file must be a regular file of at most 16 MB"),
    ("output file exists", ["sample", "{run}", "--out", "{tmp}/exists.txt"], 1, r"already exist.*--force"),
    ("out is a file for many", ["sample", "{run}", "-k", "2", "--out", "{tmp}/exists.txt"], 1, r"not a directory"),
    ("missing checkpoint", ["sample", "{tmp}/nope.safetensors"], 1, r"no such checkpoint"),
    ("pickle checkpoint", ["sample", "{tmp}/evil.pt"], 1, r"never unpickles"),
    ("text as checkpoint", ["info", "{corpus}"], 1, r"not a safetensors checkpoint"),
    ("FIFO as checkpoint", ["sample", "{tmp}/fifo", "-n", "5"], 1,
     r"fifo: a named pipe \(FIFO\); a checkpoint must be a regular file"),
    ("/dev/zero as checkpoint", ["info", "{tmp}/zero.safetensors"], 1,
     r"a character device; a checkpoint must be a regular file"),
    ("10^9 layers in a checkpoint", ["info", "{tmp}/layers.safetensors"], 1,
     r"layers\.safetensors: bad checkpoint metadata \(model: layers = 1000000000: must be an integer >= 1 and <= 64\)"),
    ("model settings a list", ["eval", "{tmp}/modellist.safetensors", "{corpus}"], 1,
     r"modellist\.safetensors: bad checkpoint metadata \(model: a list where a table of settings belongs\)"),
    ("tokenizer a string", ["sample", "{tmp}/tokstring.safetensors"], 1,
     r"tokstring\.safetensors: bad checkpoint metadata \(tokenizer: the tokenizer settings are not a table\)"),
    ("NaN weights", ["sample", "{tmp}/nan.safetensors", "-n", "20"], 1,
     r"nan\.safetensors: checkpoint tensor 'model\.embed\.weight' holds NaN or infinite values"),
    ("int64 weights", ["eval", "{tmp}/int64.safetensors", "{corpus}"], 1,
     r"int64\.safetensors: checkpoint tensor 'model\.\S+' is int64, not float32, bfloat16, float16, float64"),
    ("dir without checkpoint", ["info", "{tmp}/emptydir"], 1, r"no best.safetensors or last.safetensors"),
    ("plot a folder that is not a run", ["plot", "{tmp}/emptydir", "--out", "{tmp}/c.png"], 1,
     r"emptydir: no metrics.csv here; give a run directory"),
    ("plot a user's metrics.csv", ["plot", "{tmp}/weights", "--out", "{tmp}/c.png"], 1,
     r"metrics.csv: not a metrics.csv that seqgen wrote"),
    ("plot a FIFO", ["plot", "{tmp}/fifo", "--out", "{tmp}/c.png"], 1,
     r"fifo: a named pipe \(FIFO\); metrics.csv must be a regular file of at most 256 MB"),
    ("plot over a file", ["plot", "{run}", "--out", "{tmp}/exists.txt"], 1, r"exists.txt already exists; use --force"),
    ("eval unknown chars", ["eval", "{run}", "{tmp}/greek.txt"], 1, r"characters not in the model's vocabulary: 'αβγ'"),
    ("eval missing file", ["eval", "{run}", "{tmp}/nope.txt"], 1, r"no such file"),
    ("corrupt MIDI file", ["train", "{tmp}/corrupt.mid"], 1,
     r"no usable notes in 1 MIDI file \(corrupt.mid: not a readable MIDI file"),
    ("MIDI without notes", ["train", "{tmp}/silent"], 1, r"no usable notes in 1 MIDI file \(silent.mid: no notes"),
    ("strict MIDI corpus", ["train", "{tmp}/mixed", "--strict"], 1, r"corrupt.mid: not a readable MIDI file .*--strict"),
    ("MIDI read as text", ["train", "{tmp}/corrupt.mid", "--kind", "text"], 1, r"binary file"),
    ("one MIDI piece", ["train", "{tmp}/mixed"], 1, r"needs at least two"),
    ("truncated MIDI", ["train", "{tmp}/truncated.mid"], 1, r"truncated"),
    ("MIDI with a bad header", ["train", "{tmp}/badheader.mid"], 1, r"MThd not found"),
    ("MIDI data byte out of range", ["train", "{tmp}/databyte.mid"], 1, r"data byte must be in range 0\.\.127"),
    ("MIDI with SMPTE division", ["train", "{tmp}/smpte.mid"], 1, r"SMPTE time division"),
    ("MIDI of drums only, one part", ["train", "{tmp}/drums.mid", "--tokenizer", "performance"], 1,
     r"no notes \(drums are left out\)"),
    ("MIDI with a huge tick count", ["train", "{tmp}/hugetick.mid"], 1, r"largest tick of 268435456"),
    ("a MIDI tokenizer for text", ["train", "{corpus}", "--tokenizer", "multitrack"], 1,
     r"--tokenizer multitrack reads midi corpora, and .*dickens.txt is a text corpus"),
    ("families for a one-part tokenizer", ["train", "{tmp}/tunes", "--tokenizer", "performance", "--families"], 1,
     r"--families does not apply to --tokenizer performance"),
    ("instruments for a one-part model", ["sample", "{midirun}", "--instruments", "piano", "--out", "{tmp}/i.mid"], 1,
     r"--instruments needs a model of several instruments"),
    ("instruments for a text model", ["sample", "{run}", "--instruments", "piano"], 1,
     r"--instruments does not apply to a text model"),
    ("text prime for a MIDI model", ["sample", "{midirun}", "--prime", "abc"], 1, r"--prime does not apply to a MIDI model"),
    ("MIDI primer for a text model", ["sample", "{run}", "--primer-pitches", "60,64"], 1,
     r"--primer-pitches does not apply to a text model"),
    ("eval a MIDI model on text", ["eval", "{midirun}", "{corpus}"], 1, r"this is a MIDI model; .*dickens.txt is text, not MIDI"),
    ("eval a text model on MIDI", ["eval", "{run}", "{tmp}/tunes/a.mid"], 1, r"this is a text model; .*a.mid holds MIDI files"),
    ("eval a text model on a MIDI folder", ["eval", "{run}", "{tmp}/tunes"], 1,
     r"this is a text model; .*tunes holds MIDI files"),
    ("resume a MIDI run on text", ["train", "{corpus}", "--resume", "--out", "{midirun}"], 1,
     r"this run trains a MIDI model; .*dickens.txt is text, not MIDI"),
    ("unwritable output file", ["sample", "{run}", "--out", "/sys/seqgen-sample.txt"], 1,
     r"could not write /sys/seqgen-sample\.txt"),
    ("unwritable run directory", ["train", "{corpus}", "--out", "/sys/seqgen-run"], 1, r"/sys/seqgen-run"),
    ("full disk writing a sample", ["sample", "{run}", "--out", "{tmp}/new.txt"], 1,
     r"could not write .*new\.txt: no space left on the device"),
    ("full disk writing a checkpoint", ["train", "{corpus}", "--out", "{tmp}/fullrun", "--max-steps", "2"], 1,
     r"could not write .*fullrun/best\.safetensors: no space left on the device"),
    ("bad primer pitches", ["sample", "{run}", "--primer-pitches", "C,E,G"], 2, r"MIDI pitch numbers"),
    ("missing primer", ["sample", "{midirun}", "--primer", "{tmp}/nope.mid"], 1, r"nope\.mid: No such file or directory$"),
    ("FIFO as primer", ["sample", "{midirun}", "--primer", "{tmp}/fifo.mid"], 1,
     r"fifo\.mid: a named pipe \(FIFO\); --primer must be a regular file of at most 16 MB"),
    ("/dev/zero as primer", ["sample", "{midirun}", "--primer", "/dev/zero"], 1, r"/dev/zero: a character device; --primer"),
    # A bad sound font is refused before anything is sampled (no .mid appears); without a synthesiser, so is any.
    ("soundfont without --wav", ["sample", "{midirun}", "--soundfont", "{tmp}/exists.txt", "--out", "{tmp}/sf.mid"], 2,
     r"--soundfont needs --wav"),
    ("FIFO as soundfont", ["sample", "{midirun}", "--wav", "--soundfont", "{tmp}/fifo.mid", "--out", "{tmp}/sf.mid"], 1,
     r"fifo\.mid: a named pipe \(FIFO\); --soundfont must be a regular file|--soundfont needs tinysoundfont"),
    ("text as soundfont", ["sample", "{midirun}", "--wav", "--soundfont", "{corpus}", "--out", "{tmp}/sf.mid"], 1,
     r"dickens\.txt: not a SoundFont \(an \.sf2 file starts with a RIFF sfbk header\)|--soundfont needs tinysoundfont"),
    # Two notes 5.3 years apart (52 bytes), or 58 days (45 bytes): split in two pieces of one note.
    ("MIDI with a gap of years", ["train", "{tmp}/yearsgap.mid"], 1, r"longer than the training text \(14 tokens\)"),
    ("MIDI with a gap of days", ["train", "{tmp}/daysgap.mid"], 1, r"longer than the training text \(5 tokens\)"),
    ("stats of no MIDI", ["midi-stats", "{tmp}/emptydir"], 1, r"no .mid or .midi files"),
    ("a length no memory holds", ["sample", "{run}", "-n", "999999999999"], 2, r"--length"),
    ("a temperature beyond float32", ["sample", "{run}", "--temperature", "1e308"], 2, r"--temperature"),
    ("seconds beyond any clock", ["sample", "{midirun}", "--seconds", "1e308", "--out", "{tmp}/inf.mid"], 2, r"--seconds"),
    ("more samples than one command holds", ["sample", "{run}", "-k", "100000", "-n", "1000"], 1,
     r"100,000 samples of up to 1,000 tokens is more than one command generates .*--shard"),
    ("a model too large for memory", ["train", "{corpus}", "--out", "{tmp}/huge", "--layers", "64", "--hidden", "65536",
                                      "--embed", "65536", "--max-steps", "1"], 1,
     r"a model of [\d,]+ parameters needs [\d,.]+ GB to train .* use a smaller --hidden"),
    ("a run directory inside its text corpus", ["train", "{tmp}/texts", "--out", "{tmp}/texts/run"], 1,
     r"--out .*texts/run is inside the text corpus"),
    ("a user's best.safetensors", ["train", "{corpus}", "--out", "{tmp}/best", "--force"], 1,
     r"best/best.safetensors is not a file seqgen wrote"),
    ("stats of a missing folder", ["midi-stats", "{tmp}/nope"], 1, r"nope: no such file"),
    ("stats against a missing reference", ["midi-stats", "{tmp}/tunes", "--reference", "{tmp}/nope"], 1, r"nope: no such file"),
    ("many samples to one file name", ["sample", "{run}", "-k", "3", "--out", "{tmp}/nofile.txt"], 1,
     r"nofile.txt names a file, and -k 3 writes files: give --out a directory"),
    ("a socket as output", ["sample", "{run}", "--out", "{tmp}/socket", "--force"], 1,
     r"socket: not a regular file, a device or a pipe"),
    ("train among a user's files", ["train", "{corpus}", "--out", "{tmp}/mine"], 1,
     r"mine holds files that are not a seqgen run \(.draft.tmp and 1 more\); .*--force"),
    ("force over a user's metrics.csv", ["train", "{corpus}", "--out", "{tmp}/weights", "--force"], 1,
     r"weights/metrics.csv is not a file seqgen wrote"),
    ("keep line ends of MIDI", ["train", "{tmp}/tunes", "--keep-line-endings"], 1, r"--keep-line-endings is a text option"),
    ("eval on a FIFO", ["eval", "{run}", "{tmp}/fifo"], 1, r"fifo: not a regular file or directory"),
    ("a cache of negative size", ["eval", "{run}", "{corpus}", "--cache", "-1"], 2, r"--cache"),
    ("a cache beyond its bound", ["eval", "{run}", "{corpus}", "--cache", "100000"], 2, r"--cache.*0<=x<=8192"),
    ("a cache's lambda over 1", ["eval", "{run}", "{corpus}", "--cache", "5", "--cache-lambda", "1.5"], 2,
     r"--cache-lambda"),
    ("a cache's theta inf", ["eval", "{run}", "{corpus}", "--cache", "5", "--cache-theta", "inf"], 2,
     r"--cache-theta.*0<x<=1000"),
    ("a cache's lambda 1", ["eval", "{run}", "{corpus}", "--cache", "5", "--cache-lambda", "1"], 2,
     r"--cache-lambda.*0<=x<=0.999"),
    ("a sampling cache's lambda nan", ["sample", "{run}", "--cache", "5", "--cache-lambda", "nan"], 2,
     r"not a finite number"),
    ("a sampling cache too large", ["sample", "{run}", "--cache", "8192", "-k", "10000", "-n", "5000"], 1,
     r"a cache of 5000 states for 10000 samples takes [0-9.]+ GB, over 2 GB; lower --cache or --num-samples"),
    ("keep line ends of an encoding that converted them", ["train", "{tmp}/enc", "--keep-line-endings"], 1,
     r"encode it again with --keep-line-endings"),
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
    (tmp / "manychars.txt").write_text("".join(map(chr, range(0x10000, 0x10000 + 70_000))), encoding="utf-8")
    (tmp / "evil.pt").write_bytes(pickle.dumps(Payload()))
    for folder, names in {"mine": ["notes.txt", ".draft.tmp"], "weights": ["metrics.csv"], "best": ["best.safetensors"],
                          "texts": ["a.txt"]}.items():
        (tmp / folder).mkdir()  # a user's folders, not runs; a metrics.csv of their own
        for name in names:
            (tmp / folder / name).write_text("date,weight\n")
    server = socket.socket(socket.AF_UNIX)
    server.bind(str(tmp / "socket"))
    server.close()  # the socket file stays
    assert CliRunner().invoke(cli, ["corpus", "encode", str(corpus_file), str(tmp / "enc")]).exit_code == 0
    os.mkfifo(tmp / "fifo.mid")  # reading it would wait for a writer forever
    corrupt = b"MThd\x00\x00\x00\x06\x00\x01\x00\x01\x01\xe0MTrk\x00\x00\x00\x09\x00\x90\x3c"
    (tmp / "corrupt.mid").write_bytes(corrupt)
    good = midi_file(tune())
    on = good.index(b"\x90")  # the first NOTE_ON; its pitch follows
    huge = mido.MidiFile(tracks=[mido.MidiTrack([mido.Message("note_on", note=60, velocity=80, time=0),
                                                 mido.Message("note_off", note=60, time=0x0FFFFFFF)])])
    huge_bytes = io.BytesIO()
    huge.save(file=huge_bytes)
    broken = {
        "truncated.mid": good[: len(good) // 2],
        "badheader.mid": b"RIFF" + good[4:],
        "databyte.mid": good[: on + 1] + bytes([200]) + good[on + 2 :],
        "smpte.mid": good[:12] + bytes([0xE7, 0x28]) + good[14:],  # -25 frames/s x 40 ticks/frame
        "drums.mid": midi_file(drums=tune()),
        "hugetick.mid": huge_bytes.getvalue(),  # one note of 2^28 ticks
        "yearsgap.mid": years_gap_file(),
        "daysgap.mid": days_gap_file(),
    }
    for name, data in broken.items():
        (tmp / name).write_bytes(data)
    for folder, files in {"silent": {"silent.mid": midi_file([])},
                          "mixed": {"corrupt.mid": corrupt, "good.mid": good},
                          "tunes": {"a.mid": good, "b.mid": midi_file(tune(transpose=2))}}.items():
        (tmp / folder).mkdir()
        for name, data in files.items():
            (tmp / folder / name).write_bytes(data)
    run, midirun = tmp / "run", tmp / "midirun"
    for corpus, out, more in ((corpus_file, run, []), (tmp / "tunes", midirun, ["--batch-size", "2", "--seq-len", "16"])):
        result = CliRunner().invoke(cli, ["train", str(corpus), "--out", str(out), *TINY, "--max-steps", "10", *more])
        assert result.exit_code == 0, result.output
    # Checkpoints that are not regular files, and ones altered in each way a review found
    # crashing (exit 70), hanging, or loading silently.
    os.mkfifo(tmp / "fifo")
    (tmp / "zero.safetensors").symlink_to("/dev/zero")
    ckpt = checkpoint.read(run)
    embed = ckpt.tensors["model.embed.weight"].clone()
    embed[0, 0] = math.nan
    altered = {
        "layers": ({**ckpt.meta, "model": {**ckpt.meta["model"], "layers": 10**9}}, ckpt.tensors),
        "modellist": ({**ckpt.meta, "model": list(ckpt.meta["model"].values())}, ckpt.tensors),
        "tokstring": ({**ckpt.meta, "tokenizer": "char"}, ckpt.tensors),
        "nan": (ckpt.meta, {**ckpt.tensors, "model.embed.weight": embed}),
        "int64": (ckpt.meta, {k: v.to(torch.int64) for k, v in ckpt.tensors.items()}),
    }
    for name, (meta, tensors) in altered.items():
        checkpoint.save(tmp / f"{name}.safetensors", meta, tensors)
    return tmp, run, midirun


def full_disk(*args):
    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


def snapshot(root):
    return {p: p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.mark.parametrize("name,args,code,pattern", ROWS)
def test_bad_input(files, corpus_file, name, args, code, pattern, monkeypatch):
    tmp, run, midirun = files
    monkeypatch.chdir(tmp)  # a default run directory, if one were made, would land here
    args = [a.format(tmp=tmp, run=run, midirun=midirun, corpus=corpus_file) for a in args]
    before = snapshot(tmp)
    if name.startswith("full disk"):
        monkeypatch.setattr(os, "fsync", full_disk)  # every write fails as the disk fills
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == code, (result.output, result.exception)
    assert isinstance(result.exception, SystemExit), result.exception  # not an escaped exception
    assert "Traceback" not in result.output
    errors = [line for line in result.stderr.splitlines() if line.startswith("Error: ")]
    assert len(errors) == 1, result.stderr  # usage errors may add Usage/Try lines before it
    assert re.search(pattern, errors[0]), errors[0]
    if name == "full disk writing a checkpoint":  # the run directory it made is gone: no file, whole or partial
        assert not (tmp / "fullrun").exists()
    assert snapshot(tmp) == before  # the user's files are as they were
    assert not (tmp / "checkpoints").exists()
