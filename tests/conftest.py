import os

import pytest
import torch
from click.testing import CliRunner
from hypothesis import settings

from seqgen.cli import cli
from seqgen.config import ModelConfig, TrainConfig
from seqgen.corpora import TextCorpus
from seqgen.hardware import bf16_failure
from seqgen.train import Trainer

# Tiny models run fastest (and deterministically) on one thread; it also keeps the suite from
# competing with itself for the cores. OMP_NUM_THREADS fixes the count of every command the tests
# run, in this process and in the subprocesses they start, as it does for a user.
torch.set_num_threads(1)
os.environ["OMP_NUM_THREADS"] = "1"

# The suite is deterministic: hypothesis draws the same examples on every run (and keeps no
# database). To search for new failures: pytest --hypothesis-profile=explore
settings.register_profile("default", derandomize=True, database=None)
settings.register_profile("explore", max_examples=2000)
settings.load_profile("default")

# Tests that train in bf16 need a CPU that can (the probe --precision uses); elsewhere they skip.
BF16_FAILURE = bf16_failure("lstm", torch.device("cpu"))
needs_bf16 = pytest.mark.skipif(BF16_FAILURE is not None, reason=f"this CPU cannot train an LSTM in bf16: {BF16_FAILURE}")

TEXT = (
    "It was the best of times, it was the worst of times, it was the age of wisdom, "
    "it was the age of foolishness, it was the epoch of belief, it was the epoch of "
    "incredulity, it was the season of Light, it was the season of Darkness.\n"
    "Ça va? Très bien — naïve café, 東京, ✓ 🎵\n"
)


def invoke(*args, env=None):
    """`seqgen ARGS` in this process: an escaped exception fails the test with its traceback."""
    return CliRunner().invoke(cli, [str(a) for a in args], env=env, catch_exceptions=False)


@pytest.fixture(scope="session")
def corpus_text() -> str:
    return TEXT * 12


@pytest.fixture(scope="session")
def corpus_file(tmp_path_factory, corpus_text):
    path = tmp_path_factory.mktemp("corpus") / "dickens.txt"
    path.write_text(corpus_text, encoding="utf-8")
    return path


@pytest.fixture(autouse=True, scope="session")
def private_cache(tmp_path_factory):
    """Caches (MIDI encodings, downloads) go to a scratch directory, never the user's."""
    mp = pytest.MonkeyPatch()
    mp.setenv("SEQGEN_CACHE_DIR", str(tmp_path_factory.mktemp("cache")))
    yield
    mp.undo()


# A tiny run, on the command line and through the library: seconds, not minutes.
TINY = ["--layers", "1", "--hidden", "32", "--embed", "16", "--seq-len", "32", "--batch-size", "8",
        "--max-steps", "30", "--eval-every", "10", "--lr", "0.01", "--threads", "1"]
TINY_MODEL = dict(layers=2, hidden=32, embed=16)
TINY_TRAIN = dict(seq_len=32, batch_size=8, lr=1e-2, warmup_steps=5, eval_every=10, max_steps=40, threads=1)


@pytest.fixture(scope="session")
def trained_run(tmp_path_factory, corpus_text):
    """A tiny LSTM trained for 40 steps on whole windows (a batch ramp would read under half as
    much text in as many), shared by the tests that only read it."""
    run = tmp_path_factory.mktemp("run")
    Trainer(TextCorpus("dickens", "dickens", "test", corpus_text), ModelConfig(vocab_size=0, **TINY_MODEL),
            TrainConfig(**{**TINY_TRAIN, "batch_ramp": 0}), run).run()
    return run
