"""Statistics of a folder of MIDI files, to compare what a model makes with the music it learnt.

Each is computed per file (or its first `seconds`) and averaged over files: the first four on the performance as one part
(`midi_io.read_notes`: instruments merged, drums left out), the next two on every instrument.
The last two count notes, and `families` is the share of all notes by General MIDI family:

    pitch_class_entropy  Shannon entropy (bits) of the 12 pitch classes' note counts (max 3.585)
    polyphony            mean number of notes sounding while any note sounds
    notes_per_second     notes / (last note-off - first note-on)
    pitch_range          highest - lowest pitch (semitones)
    instruments          instrument parts per piece (a program's tracks are one part; so is the drum kit)
    drum_notes_per_second  drum notes / the length of the piece
    stuck_notes          NOTE_ONs that no NOTE_OFF ends, counted on the raw MIDI messages
    held_to_cap          notes held at least `cap_seconds` (the decoder's cap by default): in
                         generated music, notes the model never released and the decoder ended
"""

from __future__ import annotations

import math
from collections import Counter
from pathlib import Path

import numpy as np

from .config import MidiConfig
from .corpora import MIDI, MidiCorpus, load_corpus
from .errors import SeqgenError
from .midi_io import DRUMS, family_of, hanging_notes, one_part, read_performance

AVERAGED = ("pitch_class_entropy", "polyphony", "notes_per_second", "pitch_range", "instruments", "drum_notes_per_second")
TOLERANCE = 0.2  # "near": within 20% of the reference mean


def piece_stats(notes: np.ndarray) -> dict[str, float]:
    counts = np.bincount(notes["pitch"] % 12, minlength=12)
    p = counts[counts > 0] / counts.sum()
    # Polyphony as the time-weighted mean of the number of sounding notes, over the time when
    # at least one note sounds: sweep the note boundaries in time order.
    times = np.concatenate([notes["start"], notes["end"]])
    steps = np.concatenate([np.ones(len(notes)), -np.ones(len(notes))])
    order = np.lexsort((steps, times))  # at one instant, endings before beginnings
    sounding = np.cumsum(steps[order])[:-1]
    spans = np.diff(times[order])
    busy = spans[sounding > 0].sum()
    span = float(notes["end"].max() - notes["start"].min())
    return {
        "pitch_class_entropy": float(-(p * np.log2(p)).sum()),
        "polyphony": float((sounding * spans).sum() / busy) if busy > 0 else 0.0,
        "notes_per_second": len(notes) / span if span > 0 else 0.0,
        "pitch_range": float(notes["pitch"].max() - notes["pitch"].min()),
    }


def folder_stats(folder: Path, cap_seconds: float = MidiConfig.max_note, seconds: float | None = None) -> dict:
    """Mean statistics over the MIDI files under `folder` (searched recursively); with `seconds`,
    of the notes each file strikes in its first `seconds` (from its first note) only: how many
    instruments a piece has grows with its length, so 30 s samples compare with 30 s openings."""
    corpus = load_corpus(folder, kind=MIDI)
    assert isinstance(corpus, MidiCorpus)
    files = corpus.files
    rows, stuck, held, notes_total, skipped = [], 0, 0, 0, []
    families: Counter[str] = Counter()
    for f in files:
        try:
            performance = read_performance(f)
            stuck += hanging_notes(f)
        except SeqgenError as e:
            skipped.append(str(e))
            continue
        if seconds is not None and len(performance):
            performance = performance[performance["start"] < performance["start"].min() + seconds]
        notes = one_part(performance)
        if len(notes) == 0:
            skipped.append(f"{f}: no notes" + (" but drums" if len(performance) else ""))
            continue
        span = float(performance["end"].max() - performance["start"].min())
        drums = int((performance["program"] == DRUMS).sum())
        rows.append({**piece_stats(notes), "instruments": len(np.unique(performance["program"])),
                     "drum_notes_per_second": drums / span if span > 0 else 0.0})
        families.update(family_of(p) for p in performance["program"].tolist())
        held += int(((notes["end"] - notes["start"]) >= cap_seconds - 1e-6).sum())
        notes_total += len(notes)
    if not rows:
        raise SeqgenError(f"{folder}: none of the {len(files)} MIDI files has notes")
    means = {k: float(np.mean([r[k] for r in rows])) for k in AVERAGED}
    total = sum(families.values())
    shares = {family: round(count / total, 4) for family, count in families.most_common()}
    return {"folder": str(folder), "files": len(rows), "skipped": skipped, "seconds": seconds, **means, "notes": notes_total,
            "stuck_notes": stuck, "held_to_cap": held, "cap_seconds": cap_seconds, "families": shares}


def report(stats: dict, reference: dict | None = None) -> tuple[str, bool]:
    """A table of the statistics (against the reference's, when given) and whether every one is
    within TOLERANCE of the reference and no note is stuck."""
    lines = [f"{stats['folder']}: {stats['files']} files" + (f" ({len(stats['skipped'])} skipped)" if stats["skipped"] else "")]
    ok = stats["stuck_notes"] == 0
    if reference is None:
        lines += [f"  {k:<22} {stats[k]:8.3f}" for k in AVERAGED]
    else:
        lines.append(f"  {'':<22} {'here':>8} {'reference':>10} {'diff':>8}")
        for k in AVERAGED:
            diff = stats[k] / reference[k] - 1 if reference[k] else 0.0 if stats[k] == 0 else math.inf
            near = abs(diff) <= TOLERANCE
            ok &= near
            lines.append(f"  {k:<22} {stats[k]:8.3f} {reference[k]:10.3f} {diff:+8.1%}  {'ok' if near else 'FAR'}")
        opening = f", the first {reference['seconds']:g} s of each" if reference.get("seconds") is not None else ""
        lines.append(f"  (reference: {reference['folder']}, {reference['files']} files{opening}; ok = within {TOLERANCE:.0%})")
    lines.append("  families: " + ", ".join(f"{family} {share:.0%}" for family, share in stats["families"].items()))
    lines.append(f"  {'stuck_notes':<22} {stats['stuck_notes']:8d}")
    lines.append(f"  {'held_to_cap':<22} {stats['held_to_cap']:8d}  (of {stats['notes']:,} notes; "
                 f"held {stats['cap_seconds']:g} s or more)")
    return "\n".join(lines), ok
