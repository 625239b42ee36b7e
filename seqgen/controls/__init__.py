"""Control inputs: what a MIDI model reads beside each event, so that sampling can steer it.

Performance RNN's conditioning (Oore et al. 2018): at every event the model is told, beside the
event itself, a few numbers that describe the music from that moment on (how many notes a second
come next, which pitch classes sound). Trained so, it plays what it is told: held fixed while
sampling, they steer it. They are computed from the data at every step (after augmentation, so a
transposed piece is told its transposed pitch classes).

A control is one module in this package: a class with the `Control` members, decorated with
`@register`, and imported below. `ControlSet` is what a tokenizer holds: the controls a model was
trained with (`seqgen train --control density,key`), their values for a piece, and the inputs a
sample is given.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from ..errors import SeqgenError


@dataclass(frozen=True)
class Timeline:
    """A piece as the controls see it: when each of its N events happens, and its M notes (what
    its events decode to), in seconds from the piece's start."""

    times: np.ndarray  # (N,) the time of each event
    end: float  # when the piece ends: after its last event's time shift
    start: np.ndarray  # (M,) each note's onset, in time order
    stop: np.ndarray  # (M,) and end
    pitch: np.ndarray  # (M,) 0..127
    pitched: np.ndarray  # (M,) bool: a pitch, not a drum sound


class Control(Protocol):
    """What every control is: the model reads its `size` numbers at each event of a piece."""

    name: str  # as --control names it, and the sampling option that sets it
    size: int  # the numbers it gives the model at each event

    def describe(self) -> str: ...  # a few words for `seqgen info`

    def values(self, timeline: Timeline) -> np.ndarray: ...  # (N, size) float32 at each event

    def parse(self, text: str) -> np.ndarray: ...  # a sampling option's value -> (size,); SeqgenError if bad


CONTROLS: dict[str, Any] = {}  # name -> class, filled by @register


def register(cls):
    CONTROLS[cls.name] = cls
    return cls


class ControlSet:
    """The controls named in `names` ("density,key"; "" for none), in that order: the model reads
    their values side by side, `size` numbers at each event."""

    def __init__(self, names: str):
        wanted = [n.strip().lower() for n in names.split(",") if n.strip()]
        unknown = [n for n in wanted if n not in CONTROLS]
        if unknown:
            raise SeqgenError(f"unknown control {unknown[0]!r}; this seqgen knows {', '.join(CONTROLS)}")
        self.controls = [CONTROLS[n]() for n in dict.fromkeys(wanted)]
        self.names = [c.name for c in self.controls]
        ends = np.cumsum([0] + [c.size for c in self.controls])
        self.columns = {c.name: slice(int(a), int(b)) for c, a, b in zip(self.controls, ends[:-1], ends[1:])}
        self.size = int(ends[-1])

    def __str__(self) -> str:
        return ",".join(self.names)

    def describe(self) -> str:
        return "; ".join(c.describe() for c in self.controls)

    def values(self, timeline: Timeline) -> np.ndarray:
        """(N, size) float32: every control's values at each event of the piece."""
        if not self.controls:
            return np.zeros((len(timeline.times), 0), np.float32)
        return np.concatenate([c.values(timeline) for c in self.controls], axis=1).astype(np.float32)

    def inputs(self, given: dict[str, str], draws: np.ndarray, num_samples: int, seed: int | None) -> np.ndarray:
        """(K, size): what each of `num_samples` samples is told, held for the whole sample. The
        controls in `given` (name -> an option's text) as given; the others as in one of
        `draws` (values of the training data), drawn at random for each sample."""
        from ..config import seed_entropy

        for name in given:
            if name not in self.columns:
                trained = f"with --control {self}" if self.controls else "without --control"
                raise SeqgenError(f"--{name} needs a model trained with --control {name}; this one was trained {trained}")
        parsed = {name: self.controls[self.names.index(name)].parse(text) for name, text in given.items()}
        out = np.zeros((num_samples, self.size), np.float32)
        if len(parsed) < len(self.controls):
            if not len(draws):
                missing = [f"--{n}" for n in self.names if n not in parsed]
                raise SeqgenError(f"this model holds no control values to draw from; give {' and '.join(missing)}")
            rng = np.random.default_rng(None if seed is None else seed_entropy(seed))
            out[:] = draws[rng.integers(len(draws), size=num_samples)]
        for name, vector in parsed.items():
            out[:, self.columns[name]] = vector
        return out


# The controls: each module registers its class.
from . import density, key  # noqa: E402, F401
