"""Note density: how many notes a second the next WINDOW seconds hold (Performance RNN's
notes-per-second control, over its 3 s window starting at each event)."""

from __future__ import annotations

import math

import numpy as np

from ..errors import SeqgenError
from . import Timeline, register

WINDOW = 3.0  # seconds
MIN_WINDOW = 1.0  # near a piece's end the window is what is left of it, but no less: a last note is not 100 a second
MAX_DENSITY = 1000.0  # notes a second: more than any music


def feature(notes_per_second):
    """What the model reads: log2(1 + density) / 4, about 0 to 1.5. On a log scale, 2, 4 and 8
    notes a second are equally far apart, as they are to the ear."""
    return np.log2(1.0 + np.asarray(notes_per_second, dtype=np.float64)) / 4


def notes_per_second(value):
    """The density a feature stands for (feature's inverse)."""
    return np.exp2(np.asarray(value, dtype=np.float64) * 4) - 1.0


@register
class Density:
    """Notes a second from each event on (see the module's docstring); `--density N` asks for N."""

    name = "density"
    size = 1

    def describe(self) -> str:
        return f"density (notes a second in the next {WINDOW:g} s)"

    def values(self, timeline: Timeline) -> np.ndarray:
        """(N, 1): the onsets in [t, t + WINDOW) over the window's length, at each event's time t
        (the window is cut at the piece's end, but never under MIN_WINDOW)."""
        t = timeline.times  # (N,)
        onsets = np.searchsorted(timeline.start, t + WINDOW) - np.searchsorted(timeline.start, t)  # (N,)
        window = np.clip(timeline.end - t, MIN_WINDOW, WINDOW)
        return feature(onsets / window)[:, None].astype(np.float32)

    def parse(self, text: str) -> np.ndarray:
        try:
            value = float(text)
        except ValueError:
            value = math.nan
        if not 0 < value <= MAX_DENSITY:
            raise SeqgenError(f"--density {text!r:.40}: give notes a second, a number above 0 (e.g. 4)")
        return feature([value]).astype(np.float32)
