"""Where samples go: regular files are replaced whole, devices and pipes are written in place,
anything else is refused; a reader that leaves is exit 141, SIGTERM leaves nothing half-written."""

import os
import signal
import socket
import stat
import subprocess
import sys
import time

import pytest

from .conftest import TINY, invoke

SEQGEN = [sys.executable, "-m", "seqgen"]


@pytest.fixture(scope="module")
def run(tmp_path_factory, corpus_file):
    out = tmp_path_factory.mktemp("outputs") / "run"
    assert invoke("train", corpus_file, "--out", out, *TINY, "--max-steps", "10").exit_code == 0
    return out


def test_dev_null_stays_a_device_and_needs_no_force(run):
    result = invoke("sample", run, "-n", "20", "--out", "/dev/null")
    assert result.exit_code == 0 and result.stdout == "", result.output  # no file to list
    assert stat.S_ISCHR(os.stat("/dev/null").st_mode)


def test_a_fifo_is_written_in_place(run, tmp_path):
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    reader = subprocess.Popen(["cat", str(fifo)], stdout=subprocess.PIPE)
    result = invoke("sample", run, "-n", "20", "--seed", "3", "--prime", "It", "--out", fifo)
    assert result.exit_code == 0, result.output
    text = reader.communicate(timeout=30)[0].decode()
    assert stat.S_ISFIFO(os.lstat(fifo).st_mode) and text.startswith("It") and len(text) == 22


def test_a_link_to_stdout_writes_to_stdout_and_stays_a_link(run, tmp_path):
    link = tmp_path / "out.txt"
    link.symlink_to("/proc/self/fd/1")
    proc = subprocess.run([*SEQGEN, "sample", str(run), "-n", "20", "--prime", "It", "--out", str(link), "--force"],
                          capture_output=True, text=True, timeout=120, check=False)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("It") and os.readlink(link) == "/proc/self/fd/1"


def test_a_link_to_a_file_replaces_the_file_and_keeps_the_link(run, tmp_path):
    target, link = tmp_path / "real.txt", tmp_path / "latest.txt"
    target.write_text("old")
    link.symlink_to(target)
    assert invoke("sample", run, "-n", "20", "--prime", "It", "--out", link).exit_code == 1  # exists: --force
    assert invoke("sample", run, "-n", "20", "--prime", "It", "--out", link, "--force").exit_code == 0
    assert link.is_symlink() and target.read_text().startswith("It")


def test_a_socket_is_refused(run, tmp_path):
    path = tmp_path / "sock"
    server = socket.socket(socket.AF_UNIX)
    server.bind(str(path))
    try:
        result = invoke("sample", run, "-n", "20", "--out", path, "--force")
    finally:
        server.close()
    assert result.exit_code == 1 and "not a regular file, a device or a pipe" in result.stderr
    assert stat.S_ISSOCK(os.lstat(path).st_mode)


@pytest.mark.parametrize("args", [["-k", "3"], ["--shard", "1/4"]])
def test_many_samples_to_a_file_name_is_an_error_not_a_directory(run, tmp_path, args):
    result = invoke("sample", run, "-n", "20", *args, "--out", tmp_path / "nofile.txt")
    assert result.exit_code == 1 and "give --out a directory" in result.stderr
    assert not (tmp_path / "nofile.txt").exists()
    assert invoke("sample", run, "-n", "20", *args, "--out", f"{tmp_path / 'dotted.dir'}/").exit_code == 0
    assert (tmp_path / "dotted.dir").is_dir()


def test_a_reader_that_goes_away_is_exit_141(run):
    pipeline = f"{sys.executable} -m seqgen sample {run} -k 50 -n 5000 | head -1"
    proc = subprocess.run(["bash", "-o", "pipefail", "-c", pipeline], capture_output=True, text=True, timeout=120,
                          check=False)
    assert proc.returncode == 141, proc.stderr
    assert proc.stdout == "==> sample 1 <==\n" and proc.stderr == ""


def test_sigterm_while_writing_samples_leaves_only_whole_files(run, tmp_path):
    out = tmp_path / "samples"
    proc = subprocess.Popen([*SEQGEN, "sample", str(run), "-k", "400", "-n", "300", "--out", str(out)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while not (out.exists() and any(out.glob("sample_*"))) and time.monotonic() < deadline:  # it is writing files
        time.sleep(0.001)
    proc.send_signal(signal.SIGTERM)
    _, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 143 and stderr == "Error: terminated\n", stderr
    files = sorted(out.iterdir())
    assert 0 < len(files) < 400  # stopped midway
    odd = [(f.name, len(f.read_text())) for f in files if not f.name.startswith("sample_") or len(f.read_text()) != 300]
    assert not odd  # no temp files, none cut


def test_a_reader_that_leaves_midway_through_one_long_write_is_exit_141(run):
    # One sample of 70,000 characters is one write, longer than a pipe holds: `head` leaves after
    # part of it. Python's buffered stdout would drop the rest and exit 0.
    pipeline = f"{sys.executable} -m seqgen sample {run} -n 70000 --seed 1 | head -c 10"
    proc = subprocess.run(["bash", "-o", "pipefail", "-c", pipeline], capture_output=True, timeout=120, check=False)
    assert proc.returncode == 141 and len(proc.stdout) == 10 and proc.stderr == b"", proc.stderr


def test_a_closed_stdout_is_one_error(run, tmp_path):
    pipeline = f"{sys.executable} -m seqgen sample {run} -n 20 >&-"
    proc = subprocess.run(["bash", "-c", pipeline], capture_output=True, text=True, timeout=120, check=False)
    assert proc.returncode == 1 and proc.stderr == "Error: stdout is closed; give --out FILE or DIR for the samples\n"
    to_file = f"{sys.executable} -m seqgen sample {run} -n 20 --out {tmp_path / 'a.txt'} >&-"
    assert subprocess.run(["bash", "-c", to_file], timeout=120, check=False).returncode == 0
    assert (tmp_path / "a.txt").exists()


def test_out_of_memory_is_one_line_not_an_internal_error():
    from seqgen.cli import _cli_error

    for e in (MemoryError(), RuntimeError("[enforce fail at alloc_cpu.cpp:121] DefaultCPUAllocator: can't allocate "
                                          "memory: you tried to allocate 68719476736 bytes.")):
        error = _cli_error(e, launched=False)
        assert error.exit_code == 1 and error.message.startswith("out of memory (")
    assert _cli_error(RuntimeError("something else"), launched=False).exit_code == 70


@pytest.mark.parametrize("mode", ["w", "a"])
def test_dev_stdout_redirected_to_a_file_is_written_in_place(run, tmp_path, mode):
    """`-o /dev/stdout > file` (or `>> file`): the shell's file gets the sample, after what it held
    with `>>`; no --force, and the file is not replaced behind the shell's back."""
    target = tmp_path / "out.txt"
    target.write_text("previous line\n")
    with open(target, mode) as stdout:
        proc = subprocess.run([*SEQGEN, "sample", str(run), "-n", "20", "--prime", "It", "-o", "/dev/stdout"],
                              stdout=stdout, stderr=subprocess.PIPE, text=True, timeout=120, check=False)
    assert proc.returncode == 0, proc.stderr
    text = target.read_text()
    sample = text.removeprefix("previous line\n") if mode == "a" else text
    assert sample.startswith("It") and len(sample) == 22 and (mode == "w" or text.startswith("previous line\n"))
