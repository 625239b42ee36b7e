#!/usr/bin/env python
"""Steering by controls (Performance RNN's conditioning): do samples play what they are told?

    1. `seqgen train <corpus>/train --time-budget B`, once plain and once with
       `--control density,key`, defaults otherwise, the same seed;
    2. `seqgen eval` of both on <corpus>/valid (the controlled model told the held-out music's own
       controls, as in training): the cost, or gain, of conditioning in nats per event;
    3. K samples of S seconds asked for each of --densities notes a second: their notes a second
       (onsets in the S seconds over S), goal within 25% of what was asked;
    4. K samples asked for each of --keys: the share of their sounding time (pitched notes'
       seconds) on the key's scale (natural minor for a minor key), goal at least 85%; beside it,
       the plain model's samples on the same scale, which is what asking changes.
Prints a table and appends it to benchmarks/RESULTS.md. --keep DIR keeps the runs and samples.

    python benchmarks/controls.py                                  # Bach chorales, 600 s per model
    python benchmarks/controls.py --corpus /tmp/real-midi --budget 600   # see quality_midi.py --fetch
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "benchmarks"))
from quality_bach import DEFAULT_CORPUS, folders, seqgen  # noqa: E402
from quality_shakespeare import machine, publish  # noqa: E402

DENSITY_TOLERANCE = 0.25  # the goals
KEY_SHARE = 0.85


def samples(run: Path, out: Path, count: int, seconds: float, *options) -> list[np.ndarray]:
    """The notes of `count` samples of `seconds` (seed 1), as midi_io reads them back."""
    from seqgen.midi_io import read_performance

    seqgen("sample", run, "-k", count, "--seconds", seconds, "--seed", 1, "--out", out, "--force", *options)
    return [read_performance(f.read_bytes(), name=f.name) for f in sorted(out.glob("*.mid"))]


def notes_per_second(notes: np.ndarray, seconds: float) -> float:
    return float((notes["start"] < seconds).sum()) / seconds


def scale_share(notes: np.ndarray, key: str) -> float:
    """The share of the pitched notes' sounding time on `key`'s scale."""
    from seqgen.controls.key import scale
    from seqgen.midi_io import DRUMS

    pitched = notes[notes["program"] != DRUMS]
    length = pitched["end"] - pitched["start"]
    on = np.isin(pitched["pitch"] % 12, scale(key))
    return float(length[on].sum() / length.sum()) if length.sum() > 0 else 0.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--budget", type=float, default=600.0, help="seconds of training for each model")
    parser.add_argument("--corpus", type=Path, default=DEFAULT_CORPUS, help="a folder with train/ and valid/")
    parser.add_argument("--densities", type=float, nargs="+", default=[2.0, 4.0, 8.0])
    parser.add_argument("--keys", nargs="+", default=["C major", "D minor", "Bb major", "F# minor"])
    parser.add_argument("--samples", type=int, default=8, help="samples for each density and key")
    parser.add_argument("--seconds", type=float, default=30.0, help="length of each sample")
    parser.add_argument("--keep", type=Path, default=None, help="keep the runs and samples in DIR")
    parser.add_argument("--results", type=Path, default=ROOT / "benchmarks" / "RESULTS.md")
    parser.add_argument("extra", nargs="*", help="extra options for seqgen train, after --")
    args = parser.parse_args()
    train, valid = folders(args.corpus)

    with tempfile.TemporaryDirectory() as tmp:
        work = args.keep or Path(tmp)
        runs = {"plain": work / "run-plain", "controlled": work / "run-controlled"}
        scores, steps = {}, {}
        for name, run in runs.items():
            control = ["--control", "density,key"] if name == "controlled" else []
            started = time.time()
            seqgen("train", train, "--time-budget", args.budget, "--out", run, "--force", *control, *args.extra)
            steps[name] = (int((run / "metrics.csv").read_text().splitlines()[-1].split(",")[0]), time.time() - started)
            scores[name] = json.loads(seqgen("eval", run, valid, "--json").stdout)["loss"]
            print(f"{name}: {steps[name][0]:,} steps, valid {scores[name]:.4f} nats/event", flush=True)

        S, K = args.seconds, args.samples
        plain = samples(runs["plain"], work / "samples-plain", K, S)
        free = samples(runs["controlled"], work / "samples-unsteered", K, S)  # controls drawn from the data's
        rates = {"plain": [notes_per_second(n, S) for n in plain], "unsteered": [notes_per_second(n, S) for n in free]}
        density_rows = []
        for asked in args.densities:
            got = [notes_per_second(n, S) for n in samples(runs["controlled"], work / f"samples-density-{asked:g}", K, S,
                                                           "--density", asked)]
            mean = float(np.mean(got))
            within = sum(abs(g / asked - 1) <= DENSITY_TOLERANCE for g in got)
            ok = abs(mean / asked - 1) <= DENSITY_TOLERANCE
            density_rows.append(f"| {asked:g} | {mean:.2f} ({mean / asked - 1:+.0%}){'' if ok else ' (far)'} | "
                                f"{min(got):.2f} to {max(got):.2f} | {within} of {K} |")
            print(density_rows[-1], flush=True)
        key_rows = []
        for key in args.keys:
            got = [scale_share(n, key) for n in samples(runs["controlled"], work / f"samples-key-{key.replace(' ', '-')}",
                                                        K, S, "--key", key)]
            mean, base = float(np.mean(got)), float(np.mean([scale_share(n, key) for n in plain]))
            key_rows.append(f"| {key} | {mean:.1%}{'' if mean >= KEY_SHARE else ' (short)'} | {min(got):.1%} | "
                            f"{base:.1%} |")
            print(key_rows[-1], flush=True)

    extra = f" -- {' '.join(args.extra)}" if args.extra else ""
    lines = [f"### Steering by controls: {args.corpus.name}, {args.budget:g} s per model ({time.strftime('%Y-%m-%d')})", "",
             f"Machine: {machine()}. `python benchmarks/controls.py --corpus {args.corpus} --budget {args.budget:g}"
             f"{extra}`: a plain model and one trained with `--control density,key`, the same seed; {K} samples of "
             f"{S:g} s (seed 1, default temperature) for each density and key asked.", "",
             "| model | steps | valid nats/event |", "|---|---|---|",
             *(f"| {name} | {steps[name][0]:,} in {steps[name][1]:.0f} s | {scores[name]:.4f} |" for name in runs), "",
             f"Notes a second when not asked: the plain model's samples {np.mean(rates['plain']):.2f}, the controlled "
             f"model's with controls drawn from the training data's {np.mean(rates['unsteered']):.2f}.", "",
             "| --density | notes a second, mean | samples' range | samples within 25% |", "|---|---|---|---|",
             *density_rows, "",
             "| --key | sounding time on the scale, mean | lowest sample | the plain model's samples on that scale |",
             "|---|---|---|---|", *key_rows]
    publish(lines, args.results)


if __name__ == "__main__":
    main()
