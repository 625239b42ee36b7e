"""Note density: how many notes a second the next WINDOW seconds hold (Performance RNN's
notes-per-second control, over its 3 s window starting at each event)."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from ..errors import SeqgenError
from . import Timeline, register

WINDOW = 3.0  # seconds
MIN_WINDOW = 1.0  # near a piece's end the window is what is left of it, but no less: a last note is not 100 a second


# The model reads a density as its closeness to each of these, in octaves: 0.5, 1, 2, ... 64 notes
# a second. Performance RNN reads one of eight bins; bumps say as much, and also where in between
# (2.8 notes a second is not 2, nor 4), so any density can be asked for.
CENTRES = np.arange(-1.0, 7.0)  # log2 of notes a second
WIDTH = 0.5  # octaves
SLOWEST = 0.25  # notes a second: slower, or none, reads as this
# What may be asked for: an octave beyond the bumps on either side, where the nearest still reads 0.14
ASKED = (SLOWEST, 2.0 ** (CENTRES[-1] + 1))


def feature(notes_per_second) -> np.ndarray:
    """(N,) notes a second -> (N, 8): exp(-(log2 density - centre)^2 / (2 WIDTH^2)) for each centre."""
    octaves = np.log2(np.maximum(np.asarray(notes_per_second, dtype=np.float64), SLOWEST))
    return np.exp(-((octaves[:, None] - CENTRES) ** 2) / (2 * WIDTH**2))


@register
class Density:
    """Notes a second from each event on (see the module's docstring); `--density N` asks for N."""

    name = "density"
    size = len(CENTRES)
    options = ("density",)

    def describe(self) -> str:
        return f"density (notes a second in the next {WINDOW:g} s)"

    def values(self, timeline: Timeline) -> np.ndarray:
        """(N, 8): `feature` of the onsets in [t, t + WINDOW) over the window's length, at each
        event's time t (the window is cut at the piece's end, but never under MIN_WINDOW)."""
        t = timeline.times  # (N,)
        onsets = np.searchsorted(timeline.start, t + WINDOW) - np.searchsorted(timeline.start, t)  # (N,)
        window = np.clip(timeline.end - t, MIN_WINDOW, WINDOW)
        return feature(onsets / window).astype(np.float32)

    def parse(self, option: str, value: Any) -> np.ndarray:
        try:
            rate = float(value)
        except (TypeError, ValueError):
            rate = math.nan
        if not ASKED[0] <= rate <= ASKED[1]:
            raise SeqgenError(f"--density {str(value)!r:.40}: give notes a second, from {ASKED[0]:g} to {ASKED[1]:g} "
                              "(e.g. 4)")
        return feature([rate])[0].astype(np.float32)

    def explain(self, vector: np.ndarray) -> float:
        """The notes a second the bumps centre on (their weighted mean, in octaves)."""
        weights = np.asarray(vector, dtype=np.float64)
        return round(float(2.0 ** (weights @ CENTRES / max(weights.sum(), 1e-9))), 2)
