#!/usr/bin/env python
"""Bach chorales in a fixed wall-clock budget: does the music a default model makes sound like Bach?

    1. `seqgen train <corpus>/train --time-budget B` with default settings (or --run DIR: reuse one);
    2. `seqgen eval` on <corpus>/valid (nats per event);
    3. `seqgen sample` K pieces of S seconds in one batch;
    4. `seqgen midi-stats` of the samples against the held-out valid chorales, and the share of
       sampled events the decoder had to ignore.
Prints a table and appends it to benchmarks/RESULTS.md. --keep DIR keeps the run and the samples.

    python benchmarks/quality_bach.py                        # 600 s of training, needs ../shared/corpora
    python benchmarks/quality_bach.py --run checkpoints/bach --keep /tmp/bach
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_CORPUS = ROOT.parent / "shared" / "corpora" / "bach-chorales-midi"
sys.path.insert(0, str(ROOT / "benchmarks"))
from quality_shakespeare import machine, others_note, publish  # noqa: E402


def seqgen(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "seqgen", *map(str, args)], check=True, capture_output=True, text=True)


def folders(corpus: Path) -> tuple[Path, Path]:
    """A corpus's train/ and valid/ folders, or exit saying they are missing."""
    train, valid = corpus / "train", corpus / "valid"
    if not train.is_dir() or not valid.is_dir():
        sys.exit(f"error: {corpus} needs train/ and valid/ folders of MIDI files")
    return train, valid


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--budget", type=float, default=600.0, help="seconds of training")
    parser.add_argument("--corpus", type=Path, default=DEFAULT_CORPUS, help="a folder with train/ and valid/")
    parser.add_argument("--run", type=Path, default=None, help="score this run directory instead of training one")
    parser.add_argument("--samples", type=int, default=43, help="pieces to generate (valid/ has 43)")
    parser.add_argument("--seconds", type=float, default=30.0, help="length of each piece")
    parser.add_argument("--temperature", type=float, default=0.8, help="seqgen sample's default")
    parser.add_argument("--any-event", action="store_true", help="sample without the event rules")
    parser.add_argument("--sample-seed", type=int, default=1,
                        help="seqgen sample's seed (another seed shows how much the statistics move by the draw alone)")
    parser.add_argument("--keep", type=Path, default=None,
                        help="keep the run and the samples in DIR/run and DIR/samples (default: a temporary folder)")
    parser.add_argument("--results", type=Path, default=ROOT / "benchmarks" / "RESULTS.md")
    parser.add_argument("extra", nargs="*", help="extra options for seqgen train, after --")
    args = parser.parse_args()
    train, valid = folders(args.corpus)
    if args.run is None:
        others_note()  # a warning now, before minutes of timed training

    with tempfile.TemporaryDirectory() as tmp:
        work = args.keep or Path(tmp)
        run = args.run
        if run is None:
            run = work / "run"
            seqgen("train", train, "--time-budget", args.budget, "--out", run, *args.extra)
        scores = json.loads(seqgen("eval", run, valid, "--json").stdout)
        info = json.loads(seqgen("info", run / "last.safetensors", "--json").stdout)
        samples = work / "samples"
        sampled = seqgen("sample", run, "-k", args.samples, "--seconds", args.seconds, "--temperature",
                         args.temperature, "--seed", args.sample_seed, "--out", samples, "--force",
                         *(["--any-event"] if args.any_event else []))
        counts = [tuple(map(int, m)) for m in re.findall(r"decoder ignored (\d+) of (\d+)", sampled.stderr)]
        ignored, events = sum(c[0] for c in counts), sum(c[1] for c in counts)
        stats = json.loads(subprocess.run(
            [sys.executable, "-m", "seqgen", "midi-stats", samples, "--reference", valid, "--json"],
            capture_output=True, text=True).stdout)

    here, ref = stats["stats"], stats["reference"]
    progress = info["progress"]
    lines = [f"### Bach chorales, {progress['elapsed']:.0f} s of training ({time.strftime('%Y-%m-%d')})", "",
             f"Machine: {machine()}. Model: {info['model']['layers']} x {info['model']['hidden']} "
             f"{info['model']['cell'].upper()}, {info['total_params']:,} parameters, "
             f"trained in {info.get('precision') or 'fp32'}, "
             f"{progress['step']:,} steps "
             f"(the best checkpoint, sampled here, at step {progress['best_step']:,})"
             f"{' (' + ' '.join(args.extra) + ')' if args.extra else ''}.", "",
             f"Valid loss: {scores['loss']:.4f} nats/event ({scores['bits_per_event']:.3f} bits). "
             f"{args.samples} samples of {args.seconds:g} s at temperature {args.temperature:g}"
             f"{', any event' if args.any_event else ''}"
             f"{f', seed {args.sample_seed}' if args.sample_seed != 1 else ''}:", "",
             "| statistic | samples | held-out chorales | difference |", "|---|---|---|---|"]
    for k in ("pitch_class_entropy", "polyphony", "notes_per_second", "pitch_range"):
        lines.append(f"| {k.replace('_', ' ')} | {here[k]:.3f} | {ref[k]:.3f} | {here[k] / ref[k] - 1:+.1%} |")
    lines += [f"| stuck notes (a NOTE_ON never ended) | {here['stuck_notes']} | {ref['stuck_notes']} | |",
              f"| notes held to the {here['cap_seconds']:g} s cap | {here['held_to_cap']} of {here['notes']:,} "
              f"({here['held_to_cap'] / here['notes']:.2%}) | {ref['held_to_cap']} of {ref['notes']:,} | |",
              f"| events ignored by the decoder | {ignored:,} of {events:,} ({ignored / max(events, 1):.2%}) | | |",
              "", f"Every statistic within 20% and no stuck note: {'yes' if stats['ok'] else 'NO'}."]
    publish(lines, args.results)


if __name__ == "__main__":
    main()
