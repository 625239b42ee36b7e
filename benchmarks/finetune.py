#!/usr/bin/env python
"""Fine-tuning against training from scratch, for the same short time on a small text.

    1. `seqgen train train.txt --init-from checkpoints/python-docs-lstm --time-budget B` (the
       shipped model: Python's documentation, 1 x 384 LSTM), and
    2. `seqgen train train.txt --time-budget B` (the same shape, from scratch), B = 60 s each,
       alternated, `--repeats` times with different seeds;
    3. `seqgen eval` of each on held-out text of the same corpus.

The corpus: about 50 KB of tiny Shakespeare (the first 50,000 characters; lines, not prose, and
English of another kind than the documentation), and 10,000 held-out characters from its end.
Characters of the held-out text that the from-scratch model's vocabulary lacks are left out of
the scored text (said in the report), so both models score the same characters.

    python benchmarks/finetune.py                         # needs ../shared/corpora/tinyshakespeare.txt
    python benchmarks/finetune.py --corpus my.txt --budget 30 --repeats 3
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "benchmarks"))
from quality_shakespeare import DEFAULT_CORPUS, machine, publish  # noqa: E402

BASE = ROOT / "checkpoints" / "python-docs-lstm"
TRAIN_CHARS, HELD_OUT_CHARS = 50_000, 10_000


def seqgen(*args) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "seqgen", *map(str, args)], check=True, capture_output=True, text=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--budget", type=float, default=60.0, help="seconds of training for each run")
    parser.add_argument("--repeats", type=int, default=2, help="runs of each, alternated, seeds 1, 2, ...")
    parser.add_argument("--corpus", type=Path, default=DEFAULT_CORPUS)
    parser.add_argument("--results", type=Path, default=ROOT / "benchmarks" / "RESULTS.md")
    args = parser.parse_args()
    if not args.corpus.is_file():
        sys.exit(f"error: {args.corpus} not found; give --corpus FILE")

    text = args.corpus.read_text(encoding="utf-8")
    train_text, held_out = text[:TRAIN_CHARS], text[-HELD_OUT_CHARS:]
    scored = "".join(c for c in held_out if c in set(train_text))  # what a from-scratch vocabulary can read
    scores: dict[str, list[float]] = {"fine-tuned": [], "from scratch": []}
    steps: dict[str, list[int]] = {"fine-tuned": [], "from scratch": []}
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        (work / "train.txt").write_text(train_text, encoding="utf-8")
        (work / "held-out.txt").write_text(scored, encoding="utf-8")
        for seed in range(1, args.repeats + 1):
            for name, extra in (("fine-tuned", ["--init-from", BASE]), ("from scratch", [])):
                run = work / f"{name.replace(' ', '-')}-{seed}"
                seqgen("train", work / "train.txt", "--time-budget", args.budget, "--seed", seed, "--out", run, *extra)
                result = json.loads(seqgen("eval", run, work / "held-out.txt", "--json").stdout)
                scores[name].append(result["loss"])
                steps[name].append(int((run / "metrics.csv").read_text().splitlines()[-1].split(",")[0]))
                print(f"{name} seed {seed}: {result['loss']:.4f} nats/char after {steps[name][-1]} steps", flush=True)
        try:  # the shipped model as it is, if its vocabulary reads the held-out text
            base_score = f"{json.loads(seqgen('eval', BASE, work / 'held-out.txt', '--json').stdout)['loss']:.3f}"
        except subprocess.CalledProcessError as e:
            base_score = f"n/a ({e.stderr.strip()})"

    def cell(name: str) -> str:
        values = scores[name]
        spread = f" (runs: {', '.join(f'{v:.3f}' for v in values)})" if len(values) > 1 else ""
        return f"{statistics.mean(values):.3f}{spread} | {statistics.mean(steps[name]):,.0f}"

    lines = [f"### Fine-tuning the shipped model against training from scratch ({time.strftime('%Y-%m-%d')})", "",
             f"Machine: {machine()}. `python benchmarks/finetune.py --budget {args.budget:g} --repeats {args.repeats}`: "
             f"{len(train_text):,} characters of {args.corpus.name} to train on, {len(scored):,} held-out characters "
             f"from its end scored ({len(held_out) - len(scored)} left out: characters the training text lacks). "
             f"`seqgen train --time-budget {args.budget:g}` with default settings, from checkpoints/python-docs-lstm "
             "(`--init-from`) or from scratch (the same 1 x 384 LSTM), alternated, seeds 1 to "
             f"{args.repeats}; `seqgen eval` on the held-out text.", "",
             "| start | held-out loss (nats/char), mean | steps, mean |", "|---|---|---|",
             f"| the shipped model, untrained on this text | {base_score} | 0 |",
             f"| fine-tuned (`--init-from`) | {cell('fine-tuned')} |",
             f"| from scratch | {cell('from scratch')} |"]
    publish(lines, args.results)


if __name__ == "__main__":
    main()
