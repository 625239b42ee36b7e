"""Control inputs: what a MIDI model reads beside each event, so that sampling can steer it.

Performance RNN's conditioning (Oore et al. 2018): at every event the model is told, beside the
event itself, a few numbers that describe the music from that moment on (how many notes a second
come next, which pitch classes sound). Trained so, it plays what it is told: held fixed while
sampling, they steer it. They are computed from the data at every step (after augmentation, so a
transposed piece is told its transposed pitch classes).

A control is one module in this package: a class with the `Control` members, decorated with
`@register` (every module here is imported). Its sampling options reach it by name from the
Python API and `seqgen sample`, which declares them as command-line options (the one line per
option outside this package: click needs its options before any is read). `ControlSet` is what a
tokenizer holds: the controls a model was trained with (`seqgen train --control density,key`),
their values for a piece, and the inputs a sample is given.
"""

from __future__ import annotations

import importlib
import pkgutil
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

    name: str  # as --control names it
    size: int  # the numbers it gives the model at each event
    options: tuple[str, ...]  # the sampling options that ask for a value (`seqgen sample --OPTION`, generate(OPTION=))

    def describe(self) -> str: ...  # a few words for `seqgen info`

    def values(self, timeline: Timeline) -> np.ndarray: ...  # (N, size) float32 at each event

    # an option's value (text from the command line; text, a number or a list from Python) -> (size,)
    # as the model reads it; one SeqgenError naming the option if it is not one
    def parse(self, option: str, value: Any) -> np.ndarray: ...

    def explain(self, vector: np.ndarray) -> Any: ...  # what a (size,) value asks for, for reports: 4.0, "D minor"


CONTROLS: dict[str, Any] = {}  # name -> class, filled by @register
OPTIONS: dict[str, str] = {}  # sampling option -> the name of the control it asks


def register(cls):
    CONTROLS[cls.name] = cls
    OPTIONS.update(dict.fromkeys(cls.options, cls.name))
    return cls


def flag(option: str) -> str:
    return "--" + option.replace("_", "-")


class ControlSet:
    """The controls named in `names` ("density,key"; "" for none), in the registry's order however
    named: the model reads their values side by side, `size` numbers at each event."""

    def __init__(self, names: str):
        wanted = {n.strip().lower() for n in names.split(",") if n.strip()}
        unknown = sorted(wanted - CONTROLS.keys())
        if unknown:
            raise SeqgenError(f"unknown control {unknown[0]!r}; this seqgen knows {', '.join(CONTROLS)}")
        # In the registry's order, however named: "key,density" is "density,key", columns and all.
        self.controls = [cls() for name, cls in CONTROLS.items() if name in wanted]
        self.by_name = {c.name: c for c in self.controls}
        ends = np.cumsum([0] + [c.size for c in self.controls])
        self.columns = {c.name: slice(int(a), int(b)) for c, a, b in zip(self.controls, ends[:-1], ends[1:])}
        self.size = int(ends[-1])

    def __str__(self) -> str:
        return ",".join(self.by_name)

    def describe(self) -> str:
        return "; ".join(c.describe() for c in self.controls)

    def values(self, timeline: Timeline) -> np.ndarray:
        """(N, size) float32: every control's values at each event of the piece."""
        if not self.controls:
            return np.zeros((len(timeline.times), 0), np.float32)
        return np.concatenate([c.values(timeline) for c in self.controls], axis=1).astype(np.float32)

    def inputs(self, asked: dict[str, Any], draws: np.ndarray, num_samples: int, seed: int | None) -> np.ndarray:
        """(K, size): what each of `num_samples` samples is told, held for the whole sample. The
        controls asked for (sampling option -> its value, see `Control.parse`) as asked; the
        others as in one of `draws` (values of the training data), drawn at random for each."""
        from ..config import seed_entropy

        parsed: dict[str, np.ndarray] = {}
        chosen_by: dict[str, str] = {}
        for option, value in asked.items():
            name = OPTIONS.get(option)
            if name is None:
                raise SeqgenError(f"{option}: not a control's option ({', '.join(OPTIONS)})")
            if name not in self.columns:
                trained = f"with --control {self}" if self.controls else "without --control"
                raise SeqgenError(f"{flag(option)} needs a model trained with --control {name}; this one was "
                                  f"trained {trained}")
            if name in parsed:
                raise SeqgenError(f"give {flag(chosen_by[name])} or {flag(option)}, not both", exit_code=2)
            parsed[name], chosen_by[name] = self.by_name[name].parse(option, value), option
        out = np.zeros((num_samples, self.size), np.float32)
        if len(parsed) < len(self.controls):
            if not len(draws):
                missing = [f"--{n}" for n in self.by_name if n not in parsed]
                raise SeqgenError(f"this model holds no control values to draw from; give {' and '.join(missing)}")
            # A stream of its own: the draw of ensembles (MidiTokenizer.ensembles_for) uses the seed itself.
            rng = np.random.default_rng(None if seed is None else [seed_entropy(seed), 1])
            out[:] = draws[rng.integers(len(draws), size=num_samples)]
        for name, vector in parsed.items():
            out[:, self.columns[name]] = vector
        return out

    def explain(self, vector: np.ndarray) -> dict[str, Any]:
        """What a sample told `vector` (size,) was asked for, by control: {"density": 4.0, "key": "D minor"}."""
        return {c.name: c.explain(vector[self.columns[c.name]]) for c in self.controls}


# The controls: every module of this package registers its class.
for _module in pkgutil.iter_modules(__path__):
    importlib.import_module(f"{__name__}.{_module.name}")
