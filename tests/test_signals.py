"""A real training process stopped by SIGINT or SIGTERM saves a resumable checkpoint and exits
130 or 143 with the command that resumes it."""

import os
import signal
import subprocess
import sys
import time

import pytest

from seqgen import checkpoint

from .conftest import TINY


@pytest.mark.parametrize("signum,code", [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_signal_saves_and_exits(tmp_path, corpus_file, signum, code):
    out = tmp_path / "run"
    args = [sys.executable, "-m", "seqgen", "train", str(corpus_file), "--out", str(out), *TINY,
            "--max-steps", "1000000", "--eval-every", "5"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    deadline = time.monotonic() + 120
    while not (out / "metrics.csv").exists() and time.monotonic() < deadline:  # training has begun
        time.sleep(0.05)
    proc.send_signal(signum)
    stdout, stderr = proc.communicate(timeout=120)
    assert proc.returncode == code, stderr
    assert "resume with: seqgen train" in stderr and "--resume" in stderr
    assert "Traceback" not in stderr and stdout == ""
    last = checkpoint.read(out / checkpoint.LAST)
    assert last.meta["resumable"] and last.meta["progress"]["step"] > 0
    checkpoint.build_model(last)
