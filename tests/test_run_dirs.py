"""One writer per run directory, and only seqgen's own files touched: concurrent runs, resumes and
encodings are refused while another holds the directory, and a user's files are never deleted,
appended to or replaced."""

import os
import signal
import subprocess
import sys
import time

import pytest

from seqgen import checkpoint
from seqgen.lock import LOCK, Lock

from .conftest import TINY, invoke


def snapshot(root):
    return {p: (p.read_bytes(), p.stat().st_mtime_ns) for p in sorted(root.rglob("*")) if p.is_file()}


def one_error(result, code=1) -> str:
    assert result.exit_code == code, result.output
    errors = [line for line in result.stderr.splitlines() if line.startswith("Error: ")]
    assert len(errors) == 1 and "Traceback" not in result.output, result.stderr
    return errors[0]


@pytest.fixture(scope="module")
def run(tmp_path_factory, corpus_file):
    out = tmp_path_factory.mktemp("dirs") / "run"
    assert invoke("train", corpus_file, "--out", out, *TINY).exit_code == 0
    return out


@pytest.mark.parametrize("args", [["--resume"], ["--force"], []])
def test_a_run_directory_in_use_is_refused_with_the_pid_that_holds_it(run, corpus_file, args):
    before = snapshot(run)
    with Lock(run):  # as a training process holds it
        result = invoke("train", corpus_file, "--out", run, *TINY, *args)
    assert f"in use by seqgen process {os.getpid()}" in one_error(result)
    assert snapshot(run) == before  # nothing read-modified, swept or replaced
    assert not (run / LOCK).exists()  # the lock file goes with the last holder


def test_an_encoding_in_progress_is_not_disturbed(corpus_file, tmp_path):
    out = tmp_path / "enc"
    scratch = tmp_path / ".enc-abc123"  # what a running encoding writes in, and a new one would sweep
    scratch.mkdir()
    (scratch / ".seqgen-scratch").touch()
    with Lock(out, beside=True):
        result = invoke("corpus", "encode", corpus_file, out)
    assert f"in use by seqgen process {os.getpid()}" in one_error(result)
    assert (scratch / ".seqgen-scratch").exists() and not out.exists()
    assert invoke("corpus", "encode", corpus_file, out).exit_code == 0  # once it is free
    assert sorted(p.name for p in tmp_path.iterdir()) == ["enc"]  # the leftover swept, the lock gone


def test_two_real_training_processes_on_one_directory(tmp_path, corpus_file):
    """The second process is refused at once, names the first, and the first run is untouched."""
    out = tmp_path / "run"
    first = subprocess.Popen([sys.executable, "-m", "seqgen", "train", str(corpus_file), "--out", str(out), *TINY,
                              "--max-steps", "1000000", "--eval-every", "20", "--quiet"],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while not (out / "metrics.csv").exists() and time.monotonic() < deadline:  # it is writing
        time.sleep(0.02)
    for extra in (["--resume"], ["--force"]):
        second = subprocess.run([sys.executable, "-m", "seqgen", "train", str(corpus_file), "--out", str(out),
                                 *TINY, *extra], capture_output=True, text=True, timeout=120, check=False)
        assert second.returncode == 1, second.stderr
        assert second.stderr == (f"Error: {out} is in use by seqgen process {first.pid}; wait for it to finish or "
                                 "stop it, or choose another --out\n")
    first.send_signal(signal.SIGTERM)  # it saves and stops
    _, stderr = first.communicate(timeout=300)
    assert first.returncode == 143, stderr
    steps = [int(line.split(",")[0]) for line in (out / "metrics.csv").read_text().splitlines()[1:]]
    assert steps[:-1] == list(range(20, 20 * len(steps), 20))  # one run's rows, in order
    assert checkpoint.read(out / checkpoint.LAST).meta["progress"]["step"] == steps[-1]


@pytest.fixture
def users_dir(tmp_path):
    d = tmp_path / "mine"
    d.mkdir()
    (d / "notes.txt").write_text("my notes\n")
    (d / ".draft.tmp").write_text("an editor's draft\n")
    return d


def test_a_directory_that_is_not_a_run_is_refused_without_force(users_dir, corpus_file):
    before = snapshot(users_dir)
    error = one_error(invoke("train", corpus_file, "--out", users_dir, *TINY))
    assert "holds files that are not a seqgen run (.draft.tmp and 1 more)" in error and "--force" in error
    assert snapshot(users_dir) == before


def test_force_trains_among_the_users_files_and_leaves_them_alone(users_dir, corpus_file):
    before = snapshot(users_dir)
    assert invoke("train", corpus_file, "--out", users_dir, *TINY, "--force").exit_code == 0
    after = snapshot(users_dir)
    assert {p: v for p, v in after.items() if p in before} == before
    assert sorted(p.name for p in after if p not in before) == ["best.safetensors", "curves.png", "last.safetensors",
                                                                "metrics.csv"]
    # Starting over again removes the old run's files, and only those.
    (users_dir / "step-00000010.safetensors").write_bytes((users_dir / "last.safetensors").read_bytes())
    assert invoke("train", corpus_file, "--out", users_dir, *TINY, "--max-steps", "10", "--force").exit_code == 0
    assert sorted(p.name for p in users_dir.iterdir()) == [".draft.tmp", "best.safetensors", "curves.png",
                                                           "last.safetensors", "metrics.csv", "notes.txt"]


def test_a_users_metrics_csv_is_never_replaced_or_appended_to(users_dir, corpus_file):
    (users_dir / "metrics.csv").write_text("date,weight\n2026-01-01,70\n")
    before = snapshot(users_dir)
    for force in ([], ["--force"]):
        error = one_error(invoke("train", corpus_file, "--out", users_dir, *TINY, *force))
        assert "metrics.csv" in error
    assert snapshot(users_dir) == before


def test_resume_sweeps_only_seqgen_temporary_files(tmp_path, corpus_file):
    out = tmp_path / "run"
    assert invoke("train", corpus_file, "--out", out, *TINY, "--max-steps", "10").exit_code == 0
    ours = [out / ".last.safetensors.k2j4h1.tmp", out / ".metrics.csv.a8f7.tmp", out / ".best.safetensors.link.tmp"]
    theirs = [out / ".draft.tmp", out / ".notes.txt.x1.tmp", out / "notes.tmp"]
    for path in ours + theirs:
        path.write_text("half")
    assert invoke("train", corpus_file, "--out", out, "--resume", "--max-steps", "20").exit_code == 0
    assert not any(p.exists() for p in ours) and all(p.exists() for p in theirs)


def test_under_nproc_rank_0_takes_the_lock(tmp_path, corpus_file):
    out = tmp_path / "run"
    args = [sys.executable, "-m", "seqgen", "train", str(corpus_file), "--out", str(out), *TINY, "--max-steps", "4",
            "--nproc", "2", "--precision", "fp32"]
    with Lock(out):
        held = subprocess.run(args, capture_output=True, text=True, timeout=300, check=False)
    assert held.returncode == 1 and held.stderr.startswith(f"Error: {out} is in use by seqgen process {os.getpid()};")
    assert held.stderr.count("\n") == 1, held.stderr
    free = subprocess.run(args, capture_output=True, text=True, timeout=300, check=False)  # rank 1 must not take it from rank 0
    assert free.returncode == 0, free.stderr
    assert checkpoint.read(out / checkpoint.LAST).meta["processes"] == 2 and not (out / LOCK).exists()


def test_a_lock_file_that_is_a_link_is_refused_and_what_it_names_untouched(tmp_path, corpus_file):
    precious = tmp_path / "precious.txt"
    precious.write_text("mine")
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / LOCK).symlink_to(precious)
    assert "could not take the lock" in one_error(invoke("train", corpus_file, "--out", tmp_path / "run", *TINY))
    assert precious.read_text() == "mine" and (tmp_path / "run" / LOCK).is_symlink()


def test_a_lock_file_removed_by_its_last_holder_is_taken_anew(tmp_path, monkeypatch):
    """A process that opened the lock file just before its holder removed it must not think it
    holds the lock: it takes the new file, which a third process then finds taken."""
    import fcntl

    real_flock, holder = fcntl.flock, {}

    def flock_after_the_holder_leaves(fd, operation):
        if not holder:  # the first attempt: the holder leaves (removing the file) as we lock
            holder["lock"] = first
            first.release()
        return real_flock(fd, operation)

    first = Lock(tmp_path / "run")
    monkeypatch.setattr(fcntl, "flock", flock_after_the_holder_leaves)
    second = Lock(tmp_path / "run")
    monkeypatch.setattr(fcntl, "flock", real_flock)
    assert os.path.samestat(os.fstat(second.fd), os.stat(tmp_path / "run" / LOCK))  # the file now named
    with pytest.raises(Exception, match="in use by seqgen process"):
        Lock(tmp_path / "run")
    second.release()


def test_only_rank_0_of_torchrun_writes_and_a_stray_rank_variable_changes_nothing(monkeypatch):
    from seqgen import distributed

    monkeypatch.setenv("RANK", "1")
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    assert distributed.writes()  # not started by torchrun: the only process, whatever RANK says
    monkeypatch.setenv("WORLD_SIZE", "2")
    assert not distributed.writes()
