#!/usr/bin/env python
"""A corpus larger than it is sensible to hold in memory: `seqgen corpus encode` once, then
training that maps the ids from disk, against a loader that reads the whole text into memory.

Steps, each in its own process, whose peak RSS os.wait4 reports for that process alone (started
from a small wrapper process, so that nothing of this script's memory is counted):
  1. big.txt: the source text (real English) repeated to --gigabytes;
  2. `seqgen corpus encode big.txt ENC`;
  3. `seqgen train ENC --max-steps 30 --eval-every 30 --threads 2 --out RUN`: time until the
     "Training:" line (the data is ready), time to the end, steps/s from metrics.csv;
  4. the in-memory baseline: open().read() of big.txt, then encoding to a uint8 NumPy array
     (and a torch tensor on it) with the same vocabulary, in pieces of 4 Mi characters: the
     least memory a pipeline holding the text needs (text plus ids). Its ids are checked
     against ids.bin.
Prints a table and appends it to benchmarks/RESULTS.md with the machine.

    python benchmarks/large_corpus.py                          # 2 GB, about 5 minutes on 2 cores
    python benchmarks/large_corpus.py --gigabytes 0.2 --keep --workdir /tmp/large
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_SOURCE = ROOT.parent / "shared" / "corpora" / "tinyshakespeare.txt"
sys.path.insert(0, str(ROOT / "benchmarks"))
from quality_shakespeare import machine, publish  # noqa: E402

# Runs argv[2:] and writes its peak RSS (kB) to argv[1]. The measured command is started from this
# small process: on Linux a child's ru_maxrss counts the memory of the process it was forked from,
# so started from this script (torch imported) every command would seem to need that much.
WRAPPER = """
import os, subprocess, sys
child = subprocess.Popen(sys.argv[2:])
_, status, usage = os.wait4(child.pid, 0)
open(sys.argv[1], "w").write(str(usage.ru_maxrss))
sys.exit(os.waitstatus_to_exitcode(status))
"""

# What a plain in-memory pipeline does; argv: the text file, the vocabulary's tokenizer.json.
BASELINE = """
import hashlib, json, sys
import numpy as np, torch
path, vocabulary = sys.argv[1], json.load(open(sys.argv[2]))["chars"]
text = open(path, encoding="utf-8").read()  # the whole corpus as one string
assert len(vocabulary) <= 256
table = np.zeros(max(map(ord, vocabulary)) + 1, dtype=np.uint8)
table[[ord(c) for c in vocabulary]] = np.arange(len(vocabulary))
ids = np.empty(len(text), dtype=np.uint8)
piece = 1 << 22
for i in range(0, len(text), piece):
    ids[i : i + piece] = table[np.frombuffer(text[i : i + piece].encode("utf-32-le"), dtype=np.uint32)]
data = torch.from_numpy(ids)
print(len(data), hashlib.sha256(ids).hexdigest())
"""


def measured(command: list[str], log: Path, marker: str | None = None) -> dict:
    """Run `command`, its stderr to `log`: wall seconds, peak RSS in bytes, stdout, and the
    seconds until a stderr line starting with `marker` appeared."""
    peak = log.with_suffix(".rss")
    started = time.monotonic()
    proc = subprocess.Popen([sys.executable, "-c", WRAPPER, str(peak), *command],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    seen = None
    with log.open("w") as f:
        for line in proc.stderr:  # until the child closes stderr, at its end
            if marker and seen is None and line.startswith(marker):
                seen = time.monotonic() - started
            f.write(line)
    stdout = proc.stdout.read()
    wall = time.monotonic() - started
    if proc.wait() != 0:
        tail = log.read_text().strip().splitlines()[-3:]
        raise SystemExit(f"failed ({proc.returncode}): {' '.join(command)}\n  " + "\n  ".join(tail))
    rss = int(peak.read_text()) * 1024  # Linux: kB
    peak.unlink()
    return {"wall": wall, "rss": rss, "stdout": stdout, "marker": seen}


def make_text(source: Path | None, path: Path, size: int) -> tuple[str, int]:
    """Write `path` as the source text repeated to at least `size` bytes; (what the source was, bytes)."""
    if source is not None and source.exists():
        data, what = source.read_bytes(), source.name
    else:
        from seqgen.corpora import load_corpus

        data, what = load_corpus("python-docs").text.encode("utf-8"), "the built-in python-docs text"
    copies = -(-size // len(data))
    if not (path.exists() and path.stat().st_size == copies * len(data)):
        block = data * max(1, (64 << 20) // len(data))  # write about 64 MB at a time
        with path.open("wb") as f:
            for _ in range(copies // (len(block) // len(data))):
                f.write(block)
            f.write(data * (copies % (len(block) // len(data))))
    return what, path.stat().st_size


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(1 << 24):
            digest.update(chunk)
    return digest.hexdigest()


def ram() -> str:
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemTotal:"):
            return f"{int(line.split()[1]) / 2**20:.0f} GiB RAM"
    return "RAM unknown"


def gb(n: float) -> str:
    return f"{n / 1e9:,.2f} GB"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--gigabytes", type=float, default=2.0, help="size of the generated text (10^9 bytes)")
    parser.add_argument("--source", type=Path, default=DEFAULT_SOURCE,
                        help="the real text to repeat  [default: ../shared/corpora/tinyshakespeare.txt, "
                             "else the built-in python-docs text]")
    parser.add_argument("--workdir", type=Path, default=None, help="where the files go  [default: a temporary directory]")
    parser.add_argument("--keep", action="store_true", help="leave the generated files in --workdir")
    parser.add_argument("--steps", type=int, default=30, help="training steps")
    parser.add_argument("--results", type=Path, default=ROOT / "benchmarks" / "RESULTS.md")
    args = parser.parse_args()

    load = os.getloadavg()[0]  # other work on the machine slows every timing below (not the memory)
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="seqgen-large-"))
    workdir.mkdir(parents=True, exist_ok=True)
    big, enc, run = workdir / "big.txt", workdir / "big-enc", workdir / "run"
    seqgen = [sys.executable, "-m", "seqgen"]
    try:
        print(f"-- writing {big}", flush=True)
        what, size = make_text(args.source, big, int(args.gigabytes * 1e9))

        print(f"-- seqgen corpus encode ({gb(size)})", flush=True)
        encode = measured([*seqgen, "corpus", "encode", str(big), str(enc), "--force"], workdir / "encode.log")
        ids_bytes = (enc / "ids.bin").stat().st_size

        print("-- seqgen train on the encoding", flush=True)
        shutil.rmtree(run, ignore_errors=True)
        steps = str(args.steps)
        train = measured([*seqgen, "train", str(enc), "--max-steps", steps, "--eval-every", steps, "--threads", "2",
                          "--out", str(run)], workdir / "train.log", marker="Training:")
        ready = next(line for line in (workdir / "train.log").read_text().splitlines() if line.startswith("Training:"))
        valid = re.search(r"([\d,]+) valid tokens", ready)
        with (run / "metrics.csv").open() as f:
            last = list(csv.DictReader(f))[-1]
        steps_per_s = int(last["step"]) / float(last["elapsed_s"])

        print("-- in-memory baseline", flush=True)
        base = measured([sys.executable, "-c", BASELINE, str(big), str(enc / "tokenizer.json")],
                        workdir / "baseline.log")
        tokens, digest = base["stdout"].split()
        agree = int(tokens) == ids_bytes and digest == file_sha256(enc / "ids.bin")
    finally:
        if args.keep:
            print(f"-- kept {workdir}", flush=True)
        elif args.workdir is None:
            shutil.rmtree(workdir, ignore_errors=True)
        else:  # only what this script made there
            for path in (enc, run):
                shutil.rmtree(path, ignore_errors=True)
            for path in (big, *(workdir / f"{name}.log" for name in ("encode", "train", "baseline"))):
                path.unlink(missing_ok=True)

    lines = [f"### Large corpus from disk: benchmarks/large_corpus.py, {gb(size)} of text ({time.strftime('%Y-%m-%d')})",
             "",
             f"Machine: {machine()}; {ram()}; load average {load:.2f} at the start. "
             f"The corpus: {what} repeated to {size:,} bytes; ids.bin "
             f"{ids_bytes:,} bytes. Peak RSS is each process' own (os.wait4), torch and Python included.",
             "",
             "| step | wall time | peak RSS | notes |",
             "|---|---|---|---|",
             f"| `seqgen corpus encode big.txt ENC` (once) | {encode['wall']:.1f} s | {gb(encode['rss'])} | "
             f"{size / 1e6 / encode['wall']:,.0f} MB/s of text, two passes |",
             f"| `seqgen train ENC --max-steps {args.steps} --threads 2` | {train['wall']:.1f} s "
             f"(\"Training:\" after {train['marker']:.1f} s) | {gb(train['rss'])} | "
             f"{steps_per_s:.1f} steps/s in training; the wall time includes scoring "
             f"{valid.group(1) if valid else 'the'} validation tokens |",
             f"| in-memory baseline: `open().read()` + encode to uint8 | {base['wall']:.1f} s | {gb(base['rss'])} | "
             f"ids {'identical to' if agree else 'DIFFERENT from'} ids.bin |",
             "",
             f"Training from the encoding peaked at {train['rss'] / base['rss']:.0%} of the baseline's memory, "
             f"which holds {gb(size + ids_bytes)} of text and ids before a model exists."]
    publish(lines, args.results)
    if not agree:
        raise SystemExit("the baseline's ids differ from ids.bin")


if __name__ == "__main__":
    main()
