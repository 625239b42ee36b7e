"""Two processes under torchrun (gloo on the CPU) train the same model one process would, write
one set of files, and can hand the run over to a different number of processes."""

import csv
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner
from safetensors.torch import load_file

from seqgen import checkpoint
from seqgen.cli import cli

from . import conftest

# fp32: bf16 rounding would make two processes and one differ by more than summation order.
TINY = [*conftest.TINY, "--layers", "2", "--warmup-steps", "5", "--precision", "fp32", "--no-progress"]
WORKER = Path(__file__).with_name("distributed_worker.py")


def torchrun(tmp_path, *args, nproc=2):
    weights = tmp_path / "weights"
    weights.mkdir(exist_ok=True)
    for old in weights.iterdir():
        old.unlink()
    env = {**os.environ, "SEQGEN_TEST_WEIGHTS": str(weights), "OMP_NUM_THREADS": "1"}
    result = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={nproc}", str(WORKER),
         "train", *args], capture_output=True, text=True, env=env, timeout=300)
    assert result.returncode == 0, result.stderr
    ranks = [load_file(weights / f"rank{r}.safetensors") for r in range(nproc)]
    return result, ranks


def single(*args):
    result = CliRunner().invoke(cli, ["train", *args])
    assert result.exit_code == 0, result.output
    return result


def metrics(run):
    with (run / "metrics.csv").open() as f:
        return [(int(r["step"]), float(r["loss"]), float(r["val_loss"])) for r in csv.DictReader(f)]


def assert_same_run(a, b, tol):
    wa, wb = checkpoint.read(a / checkpoint.LAST), checkpoint.read(b / checkpoint.LAST)
    for name, tensor in wa.tensors.items():
        if name.startswith(("model.", "carry")):
            torch.testing.assert_close(tensor, wb.tensors[name], atol=tol, rtol=0, msg=name)
    for (step_a, loss_a, val_a), (step_b, loss_b, val_b) in zip(metrics(a), metrics(b), strict=True):
        assert step_a == step_b and loss_a == pytest.approx(loss_b, abs=1e-4) and val_a == pytest.approx(val_b, abs=1e-4)


def test_two_processes_train_as_one_and_hand_over_to_any_count(tmp_path, corpus_file):
    two, one = tmp_path / "two", tmp_path / "one"
    # 6 steps: partway through the first batch, which --batch-ramp 3 trains as 8 pieces.
    result, (rank0, rank1) = torchrun(tmp_path, str(corpus_file), *TINY, "--max-steps", "6", "--out", str(two))

    assert result.stdout.split() == [str(two / checkpoint.BEST)]  # rank 0 alone prints
    for name, tensor in rank0.items():
        assert torch.equal(tensor, rank1[name]), name  # DDP keeps the replicas identical
    assert sorted(p.name for p in two.iterdir()) == ["best.safetensors", "curves.png", "last.safetensors", "metrics.csv"]
    assert result.stderr.count("Training:") == 1 and "global batch 8 x 32 (4 streams per process)" in result.stderr
    assert "AdamW, lr 0.01 after 5 warmup steps" in result.stderr
    assert checkpoint.read(two / checkpoint.LAST).meta["processes"] == 2

    # The global batch is what counts: one process with the same batch takes the same steps.
    single(str(corpus_file), *TINY, "--max-steps", "6", "--out", str(one))
    assert_same_run(two, one, tol=1e-4)
    assert {"batch": 0, "group": 6, "groups": 8}.items() <= checkpoint.read(two / checkpoint.LAST).meta["progress"].items()

    # Resume 2 -> 1 -> 2 processes, against 1 -> 1 -> 1 (the same limits: --max-steps shapes the
    # schedule), the first time partway through a batch. The saved state covers the whole batch,
    # so each count takes its own rows.
    for run in (two, one):
        single("--out", str(run), "--resume", "--max-steps", "30")
    torchrun(tmp_path, "--out", str(two), "--resume", "--max-steps", "40")
    single("--out", str(one), "--resume", "--max-steps", "40")
    assert_same_run(two, one, tol=1e-4)
    assert [row[0] for row in metrics(two)] == [6, 10, 20, 30, 40]


def test_the_batch_must_split_evenly_over_the_processes(corpus_file, tmp_path):
    result = CliRunner().invoke(cli, ["train", str(corpus_file), *TINY, "--nproc", "3", "--out", str(tmp_path / "r")])
    assert result.exit_code == 2 and "--batch-size 8 does not split evenly over 3 processes" in result.output
    assert not (tmp_path / "r").exists()


def seqgen(*args):
    return subprocess.run([sys.executable, "-m", "seqgen", "train", *args], capture_output=True, text=True, timeout=300)


def test_nproc_launches_the_processes_and_speaks_once(corpus_file, tmp_path):
    run = tmp_path / "run"
    ok = seqgen(str(corpus_file), *TINY, "--max-steps", "10", "--nproc", "2", "--out", str(run))
    assert ok.returncode == 0, ok.stderr
    assert ok.stdout.split() == [str(run / checkpoint.BEST)]
    assert "on 2 cpu processes (gloo)" in ok.stderr and "torch.distributed" not in ok.stderr

    bad = seqgen(str(corpus_file), *TINY, "--seq-len", "5000", "--nproc", "2", "--out", str(tmp_path / "bad"))
    assert bad.returncode == 1 and bad.stdout == ""
    [line] = bad.stderr.splitlines()  # one line, from rank 0; nothing from the launcher
    assert line.startswith("Error: --seq-len 5000 is longer than the training text")


def test_a_signal_to_one_process_stops_all_after_the_same_step(corpus_file, tmp_path):
    run = tmp_path / "run"
    job = subprocess.Popen([sys.executable, "-m", "seqgen", "train", str(corpus_file), *TINY, "--time-budget", "120",
                            "--max-steps", "1000000", "--nproc", "2", "--out", str(run)],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 60
    while not (run / "metrics.csv").exists() and time.monotonic() < deadline:  # training is under way
        time.sleep(0.2)
    workers = subprocess.run(["pgrep", "-P", str(job.pid)], capture_output=True, text=True).stdout.split()
    assert len(workers) == 2
    os.kill(int(workers[-1]), signal.SIGTERM)  # one process only, as a cluster scheduler might
    out, err = job.communicate(timeout=60)
    assert job.returncode == 143, err
    assert out == "" and err.count("Error: SIGTERM: stopped at step") == 1
    step = int(err.split("stopped at step ")[1].split()[0].replace(",", ""))
    assert checkpoint.read(run / checkpoint.LAST).meta["progress"]["step"] == step
