"""Surviving what goes wrong: kills at any moment, losses that blow up, full devices, and
MIDI files mangled in every way."""

import os
import random
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import torch
from click.testing import CliRunner

import seqgen.train
from seqgen import checkpoint
from seqgen.cli import cli
from seqgen.config import ModelConfig, TrainConfig
from seqgen.corpora import TextCorpus
from seqgen.errors import SeqgenError
from seqgen.midi_io import read_notes
from seqgen.tokenizers import MidiTokenizer
from seqgen.train import Trainer

from .conftest import TINY, TINY_MODEL, TINY_TRAIN
from .midi_helpers import midi_file, tune


def train_cli(*args):
    return CliRunner().invoke(cli, ["train", *map(str, args)], catch_exceptions=False)


def resumable(run) -> int:
    """The step of the run's last checkpoint, after checking that it loads and could resume."""
    last = checkpoint.read(run / checkpoint.LAST)
    assert last.meta["resumable"] and "carry" in last.tensors and last.group("optim.")
    checkpoint.build_model(last)
    return last.meta["progress"]["step"]


def test_keep_holds_the_last_k_resumable_checkpoints(tmp_path, corpus_file):
    run = tmp_path / "run"
    result = train_cli(corpus_file, "--out", run, *TINY, "--eval-every", "5", "--keep", "3")
    assert result.exit_code == 0, result.output
    assert [p.name for p in checkpoint.kept(run)] == ["step-00000020.safetensors", "step-00000025.safetensors"]
    assert resumable(run) == 30
    steps = [checkpoint.read(p).meta["progress"]["step"] for p in checkpoint.kept(run)]
    assert steps == [20, 25]
    for path in checkpoint.kept(run):
        checkpoint.build_model(checkpoint.read(path))
    # Resuming with --keep 2 keeps one earlier checkpoint; the older ones go.
    result = train_cli(corpus_file, "--out", run, "--resume", "--max-steps", "40", "--keep", "2")
    assert result.exit_code == 0, result.output
    assert [p.name for p in checkpoint.kept(run)] == ["step-00000035.safetensors"]
    assert resumable(run) == 40
    # Starting over removes them with the rest of the old run.
    result = train_cli(corpus_file, "--out", run, *TINY, "--force", "--max-steps", "10")
    assert result.exit_code == 0 and checkpoint.kept(run) == []


def test_sigkill_at_any_moment_leaves_a_run_that_resumes(tmp_path, corpus_file):
    """Kill a real training process at random moments, checkpointing every step so that many kills
    land inside a write; each time the run must hold a checkpoint that loads, and resume."""
    run = tmp_path / "run"
    base = [sys.executable, "-m", "seqgen", "train", str(corpus_file), "--out", str(run), *TINY,
            "--eval-every", "1", "--max-steps", "100000", "--keep", "2", "--quiet"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    moments = random.Random(7)
    steps = []
    for attempt in range(8):
        last = run / checkpoint.LAST
        before = last.stat().st_mtime_ns if last.exists() else None
        proc = subprocess.Popen(base + (["--resume"] if attempt else []), stdout=subprocess.DEVNULL,
                                stderr=subprocess.PIPE, env=env)
        if attempt % 2 == 0:  # once training has saved a checkpoint of its own: mid-run, often mid-write
            deadline = time.monotonic() + 60
            while (not last.exists() or last.stat().st_mtime_ns == before) and time.monotonic() < deadline:
                time.sleep(0.005)
            time.sleep(moments.uniform(0.0, 0.3))
        else:  # any moment from the start: loading, resuming, or training
            time.sleep(moments.uniform(0.0, 2.0))
        proc.send_signal(signal.SIGKILL)
        _, stderr = proc.communicate(timeout=60)
        assert proc.returncode == -signal.SIGKILL, stderr
        steps.append(resumable(run))
        for path in checkpoint.kept(run):
            checkpoint.build_model(checkpoint.read(path))
    assert steps == sorted(steps) and steps[-1] > steps[0]  # resumed runs went on where they stopped
    final = subprocess.run(base[:-3] + ["--max-steps", str(steps[-1] + 3), "--resume", "--quiet"], env=env,
                           capture_output=True, text=True, timeout=120)
    assert final.returncode == 0, final.stderr
    assert resumable(run) == steps[-1] + 3
    assert not list(run.glob(".*.tmp"))  # what the kills left half-written was cleared away


def test_a_loss_that_becomes_nan_stops_the_run_and_keeps_the_last_good_checkpoint(tmp_path, corpus_text, monkeypatch):
    real_loss, calls = seqgen.train.sequence_loss, []

    def blows_up_after_12_steps(logits, targets):
        loss = real_loss(logits, targets)
        if torch.is_grad_enabled():  # training, not evaluation
            calls.append(1)
            if len(calls) > 12:
                return loss * float("nan")
        return loss

    monkeypatch.setattr(seqgen.train, "sequence_loss", blows_up_after_12_steps)
    run = tmp_path / "run"
    trainer = Trainer(TextCorpus("dickens", "dickens", "test", corpus_text), ModelConfig(vocab_size=0, **TINY_MODEL),
                      TrainConfig(**TINY_TRAIN), run)
    with pytest.raises(SeqgenError, match=r"the training loss became nan by step 20; the last good checkpoint"):
        trainer.run()
    assert resumable(run) == 10
    weights = checkpoint.read(run / checkpoint.LAST).group("model.")
    assert all(torch.isfinite(w).all() for w in weights.values())


def test_a_loss_that_is_nan_before_any_checkpoint_says_none_was_saved(tmp_path, corpus_text, monkeypatch):
    monkeypatch.setattr(seqgen.train, "sequence_loss", lambda logits, targets: logits.sum() * float("nan"))
    trainer = Trainer(TextCorpus("dickens", "dickens", "test", corpus_text), ModelConfig(vocab_size=0, **TINY_MODEL),
                      TrainConfig(**TINY_TRAIN), tmp_path / "run")
    with pytest.raises(SeqgenError, match=r"the training loss became nan by step 10; no checkpoint was saved \(try"):
        trainer.run()
    assert not list((tmp_path / "run").iterdir())


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory, corpus_file):
    run = tmp_path_factory.mktemp("reliability") / "run"
    assert train_cli(corpus_file, "--out", run, *TINY, "--max-steps", "5").exit_code == 0
    return run


def test_samples_to_a_full_device_are_one_clear_error(tiny_run):
    run = tiny_run
    with open("/dev/full", "w") as full:
        proc = subprocess.run([sys.executable, "-m", "seqgen", "sample", str(run), "--length", "50"],
                              stdout=full, stderr=subprocess.PIPE, text=True, timeout=120)
    assert proc.returncode == 1
    assert proc.stderr.strip() == "Error: No space left on device"


def test_a_killed_sample_leaves_no_file_behind(tiny_run, tmp_path):
    out = tmp_path / "samples"
    proc = subprocess.Popen([sys.executable, "-m", "seqgen", "sample", str(tiny_run), "-k", "3", "--length",
                             "10000000", "--out", str(out)], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    time.sleep(4)  # started, and well into generating
    assert proc.poll() is None
    proc.kill()
    proc.communicate(timeout=60)
    assert not out.exists() or not any(out.iterdir())


def mutations(data: bytes, rng: random.Random, count: int):
    """Seeded damage of every kind a file meets: flipped bits, bytes set to extremes, cuts,
    repeated and deleted spans, and junk appended."""
    for _ in range(count):
        b = bytearray(data)
        for _ in range(rng.randint(1, 4)):
            i = rng.randrange(len(b))
            kind = rng.randrange(6)
            if kind == 0:
                b[i] ^= 1 << rng.randrange(8)
            elif kind == 1:
                b[i] = rng.choice([0x00, 0x7F, 0x80, 0xFF])
            elif kind == 2:
                del b[i:]
            elif kind == 3:
                j = min(len(b), i + rng.randint(1, 16))
                b[i:i] = b[i:j] * rng.randint(1, 8)
            elif kind == 4:
                del b[i : i + rng.randint(1, 16)]
            else:
                b += bytes(rng.randrange(256) for _ in range(rng.randint(1, 32)))
            if not b:
                break
        yield bytes(b)


def test_mangled_midi_files_are_read_or_refused_never_crash_or_hang():
    originals = [midi_file(tune(), pedal=[(0.5, 127), (1.5, 0)]),
                 midi_file(tune(length=16), drums=[(36, 100, 0.0, 0.1)], extra_instruments=[tune(-12, 8, 0.5)])]
    tokenizer = MidiTokenizer()
    rng, outcomes = random.Random(0), {"read": 0, "refused": 0}
    start = time.monotonic()
    for original in originals:
        for data in mutations(original, rng, 150):
            try:
                notes = read_notes(data)
            except SeqgenError as e:
                assert str(e).startswith("MIDI data: ") and "\n" not in str(e), e
                outcomes["refused"] += 1
                continue
            outcomes["read"] += 1
            ids = tokenizer.encode(notes)
            back, _ = tokenizer.decode(ids)
            assert len(back) <= len(notes) and np.isfinite(back["end"]).all()
    assert time.monotonic() - start < 60  # no case hangs
    assert outcomes["read"] > 20 and outcomes["refused"] > 20, outcomes  # the mutator reaches both outcomes
