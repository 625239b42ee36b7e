"""Key: which pitch classes sound in the next WINDOW seconds (Performance RNN's pitch-class
histogram over its 5 s window starting at each event), weighted by how long each sounds."""

from __future__ import annotations

import re
from typing import Any

import numpy as np

from ..errors import SeqgenError
from . import Timeline, register

WINDOW = 5.0  # seconds
NAMES = {"c": 0, "d": 2, "e": 4, "f": 5, "g": 7, "a": 9, "b": 11}
ACCIDENTALS = {"": 0, "#": 1, "♯": 1, "b": -1, "♭": -1}
SCALES = {"major": (0, 2, 4, 5, 7, 9, 11), "minor": (0, 2, 3, 5, 7, 8, 10)}  # natural minor
MODES = {"": "major", "maj": "major", "major": "major", "m": "minor", "min": "minor", "minor": "minor"}
KEY = re.compile(r"\s*([a-g])\s*([#♯b♭]?)\s*(major|maj|minor|min|m|)\s*$", re.IGNORECASE)
KEYS = [f"{tonic} {mode}" for tonic in ("C", "C#", "D", "Eb", "E", "F", "F#", "G", "Ab", "A", "Bb", "B")
        for mode in ("major", "minor")]


def scale(name: str) -> tuple[int, ...]:
    """The pitch classes (0 = C) of a key's scale ("D minor": D E F G A Bb C); SeqgenError if
    `name` is not a key."""
    tonic, mode = _key(name)
    return tuple(sorted((tonic + step) % 12 for step in SCALES[mode]))


def _key(name: str) -> tuple[int, str]:
    match = KEY.match(name)
    if not match:
        raise SeqgenError(f"--key {name!r:.40}: give a key such as 'D minor', 'F# major', 'Bb' or 'C#m'")
    letter, accidental, mode = match.groups()
    # "Bb" is B flat, "bm" B minor: a lower-case b right after the letter is a flat. As in chord
    # symbols, "CM" is C major and "Cm" C minor.
    return (NAMES[letter.lower()] + ACCIDENTALS[accidental]) % 12, "major" if mode == "M" else MODES[mode.lower()]


# The model reads each pitch class's share of the time, times 12 (1 each when even): shares are
# small numbers, and inputs of 0.1 would barely move a layer whose other inputs are around 1.
GAIN = 12.0


def profile(name: str) -> np.ndarray:
    """(12,) the shares --key NAME asks for: the key's scale, its tonic triad twice as heavy (so
    D minor is not its relative F major), summing to 1. Pieces spend most of their time on their
    scale and most of that on the triad, so this sits among the values training saw."""
    tonic, mode = _key(name)
    steps = SCALES[mode]
    weights = np.zeros(12)
    for degree, step in enumerate(steps):
        weights[(tonic + step) % 12] = 2.0 if degree in (0, 2, 4) else 1.0
    return weights / weights.sum()


def sounding(start: np.ndarray, stop: np.ndarray, at: np.ndarray) -> np.ndarray:
    """(len(at),) the seconds that the notes [start, stop) have sounded, summed, by each time in
    `at`: sum over notes of clip(at - start, 0, stop - start), as running sums, not a loop."""
    starts, stops = np.sort(start), np.sort(stop)
    before_start = np.searchsorted(starts, at, side="right")  # notes begun by each time
    before_stop = np.searchsorted(stops, at, side="right")  # notes ended by each time
    started_sum = np.concatenate([[0.0], np.cumsum(starts)])[before_start]
    stopped_sum = np.concatenate([[0.0], np.cumsum(stops)])[before_stop]
    return at * before_start - started_sum - (at * before_stop - stopped_sum)


@register
class Key:
    """The pitch classes sounding from each event on (see the module's docstring); `--key` and
    `--pitch-classes` ask for some."""

    name = "key"
    size = 12
    options = ("key", "pitch_classes")

    def describe(self) -> str:
        return f"key (the time each pitch class sounds in the next {WINDOW:g} s)"

    def values(self, timeline: Timeline) -> np.ndarray:
        """(N, 12): the seconds each pitch class sounds in [t, t + WINDOW) at each event's time t,
        as shares of their sum (drums are not pitches; even shares where nothing pitched sounds),
        times GAIN."""
        t = timeline.times  # (N,)
        out = np.zeros((len(t), 12))
        pitched = timeline.pitched
        start, stop, pc = timeline.start[pitched], timeline.stop[pitched], timeline.pitch[pitched] % 12
        for c in range(12):
            mine = pc == c
            if mine.any():
                out[:, c] = sounding(start[mine], stop[mine], t + WINDOW) - sounding(start[mine], stop[mine], t)
        total = out.sum(1, keepdims=True)  # (N, 1)
        return (GAIN * np.where(total > 1e-9, out / np.maximum(total, 1e-9), 1 / 12)).astype(np.float32)

    def parse(self, option: str, value: Any) -> np.ndarray:
        """--key: a key's name ("D minor": see `profile`); --pitch-classes: 12 weights from C to B
        ("2,0,1,0,1,1,0,1,0,1,0,1", or a list from Python); as the model reads shares (`values`)."""
        if option == "key":
            if not isinstance(value, str):
                raise SeqgenError(f"--key {value!r:.40}: give a key such as 'D minor', 'F# major', 'Bb' or 'C#m'")
            return (GAIN * profile(value)).astype(np.float32)
        try:
            weights = np.array([float(w) for w in (value.split(",") if isinstance(value, str) else value)])
        except (TypeError, ValueError):
            weights = np.zeros(0)
        if len(weights) != 12 or not np.isfinite(weights).all() or (weights < 0).any() or weights.max() <= 0:
            raise SeqgenError(f"--pitch-classes {str(value)!r:.40}: give 12 weights from C to B, at least 0 and not "
                              "all 0 (e.g. 2,0,1,0,1,1,0,1,0,1,0,1)")
        weights = weights / weights.max()  # first: a sum of weights near the largest float would overflow
        return (GAIN * weights / weights.sum()).astype(np.float32)

    def explain(self, vector: np.ndarray) -> str:
        """The key whose `profile` the shares are closest to (by angle)."""
        shares = np.asarray(vector, dtype=np.float64)
        profiles = np.stack([profile(k) for k in KEYS])  # (24, 12)
        fit = profiles @ shares / (np.linalg.norm(profiles, axis=1) * max(float(np.linalg.norm(shares)), 1e-9))
        return KEYS[int(fit.argmax())]
