"""Every default lives here; the CLI reads its defaults from these dataclasses.

So do the CLI's option ranges: a field's allowed values are in its metadata (`ranged`, `one_of`),
and both the CLI's options and `checked`, which validates a config read from a checkpoint, take
them from there, so a checkpoint can never hold a setting the CLI would refuse.
"""

from __future__ import annotations

import dataclasses
import math
import typing
from dataclasses import dataclass, field

CELLS = ("lstm", "gru", "rnn", "irnn")  # seqgen.cells, one module each (named here for the CLI, without torch)
DEVICES = ("auto", "cpu", "cuda", "mps")
PRECISIONS = ("auto", "fp32", "bf16")
KINDS = ("text", "midi")
# The tokenizers `seqgen train --tokenizer` names (each class's `name`; tests/test_design.py checks them).
TOKENIZER_NAMES = ("char", "performance", "multitrack", "duration")
MAX_VOCAB = 1 << 16  # a character vocabulary's limit; a MIDI vocabulary is at most 10,384 events
SEED = (-(2**63), 2**64 - 1)  # what torch.manual_seed takes; see seed_entropy for NumPy's generators


@dataclass(frozen=True)
class Range:
    """Allowed values of a number: lo and hi are inclusive unless min_open / max_open."""

    lo: float | None = None
    hi: float | None = None
    min_open: bool = False
    max_open: bool = False

    def __contains__(self, x) -> bool:
        return ((self.lo is None or (x > self.lo if self.min_open else x >= self.lo))
                and (self.hi is None or (x < self.hi if self.max_open else x <= self.hi)))

    def __str__(self) -> str:
        parts = [] if self.lo is None else [f"{'>' if self.min_open else '>='} {self.lo}"]
        parts += [] if self.hi is None else [f"{'<' if self.max_open else '<='} {self.hi}"]
        return " and ".join(parts)


def ranged(default, lo=None, hi=None, *, min_open=False, max_open=False, **kwargs):
    """A numeric field with the range of values the CLI accepts for it."""
    return field(default=default, metadata={"range": Range(lo, hi, min_open, max_open)}, **kwargs)


def one_of(default, choices: tuple[str, ...]):
    return field(default=default, metadata={"choices": choices})


@dataclass
class ModelConfig:
    """The network: cell, depth and widths (the vocabulary size comes from the tokenizer)."""

    vocab_size: int = field(metadata={"range": Range(1, MAX_VOCAB)})
    cell: str = one_of("lstm", CELLS)
    layers: int = ranged(1, 1, 64)
    hidden: int = ranged(384, 1, 65536)
    embed: int = ranged(64, 1, 65536)
    dropout: float = ranged(0.0, 0, 1, max_open=True)
    residual: bool = False
    control_inputs: int = ranged(0, 0, 4096)  # numbers the first layer reads beside the embedding (seqgen.controls)

    def __post_init__(self):
        if self.cell not in CELLS:
            raise ValueError(f"unknown cell {self.cell!r}; choose one of {', '.join(CELLS)}")


WARMUP_BATCHES = 50  # TrainConfig.warmup_steps's default, in batches


@dataclass
class TrainConfig:
    """How a run trains: windows, optimizer, schedule, limits, checkpoints, device and precision."""

    # Tuned for a laptop CPU: 105 s on 2 cores of tiny Shakespeare (benchmarks/README.md). In
    # short runs optimizer steps are scarce, so small batches and one wide layer win.
    seq_len: int = ranged(64, 1)
    batch_size: int = ranged(16, 1)
    # Steps start on an eighth of the window (8 of its 64 tokens, the state carried from the piece
    # before) and take all of it from three quarters of the run on: early on, many small steps learn
    # more than a few large ones (benchmarks/README.md). N halvings, undone at even shares of the
    # run; 0: off.
    batch_ramp: int = ranged(3, 0, 6)
    lr: float = ranged(1e-2, 0, 10**6, min_open=True)  # a bound: torch turns it into float32 (beyond 3e38 it fails)
    # 0.1: 0.03 nats better than none on tiny Shakespeare's unseen last plays in 105 s (benchmarks/README.md)
    weight_decay: float = ranged(0.1, 0)
    # None: WARMUP_BATCHES batches in the ramp's first steps (400 at --batch-ramp 3, 50 without; at
    # most a tenth of a run of known steps): the warmup tuned on whole-window steps, in the same
    # tokens, measured 0.01 nats better than 50 steps on the ramp's small ones (benchmarks/README.md).
    warmup_steps: int | None = ranged(None, 0)
    min_lr_ratio: float = ranged(0.02, 0, 1)  # a low floor: the last few hundred steps at a small rate are worth 0.02 nats here
    clip: float = ranged(1.0, 0)
    max_steps: int | None = ranged(None, 1)
    epochs: int | None = ranged(10, 1)
    time_budget: float | None = ranged(None, 0, min_open=True)
    val_fraction: float = ranged(0.02, 0, 0.5, min_open=True)
    eval_every: int | None = ranged(None, 1)  # None: every EVAL_EVERY steps, or once an epoch when an epoch is shorter
    patience: int | None = ranged(None, 1)
    keep: int = ranged(1, 1)  # resumable checkpoints kept: last.safetensors and keep - 1 earlier ones
    seed: int = ranged(1337, *SEED)
    transpose: int = ranged(3, 0, 24)  # MIDI augmentation: each piece moved by up to this many semitones per epoch
    stretch: float = ranged(0.05, 0, 0.5)  # MIDI augmentation: and played up to 5% faster or slower
    device: str = one_of("auto", DEVICES)
    precision: str = one_of("auto", PRECISIONS)  # auto: bf16 autocast where the CPU has it natively (hardware.py)
    threads: int | None = ranged(None, 1, 4096)  # a bound: OpenMP allocates per thread, and fails on absurd counts


# MIDI runs change one training default: a note's release can come a hundred events or more
# after its onset, so they backpropagate through longer windows (benchmarks/README.md).
MIDI_TRAIN_DEFAULTS = {"seq_len": 256}


@dataclass
class MidiConfig:
    """The MIDI event tokenizer's settings (Performance RNN's by default); saved in checkpoints."""

    resolution: float = ranged(0.01, 0.001, 1)  # seconds per TIME_SHIFT step
    max_shift: float = ranged(1.0, 0.001, 100)  # the longest single TIME_SHIFT; longer gaps repeat it
    velocity_bins: int = ranged(32, 1, 127)
    keep_drums: bool = False
    max_note: float = ranged(10.0, 0, 10**6, min_open=True)  # seconds; longer notes are ended (a guard against stuck notes)
    control: str = ""  # the controls the model reads beside each event, by name ("density,key"; seqgen.controls)


@dataclass
class MultitrackConfig(MidiConfig):
    """The multitrack MIDI tokenizer's settings: MidiConfig's, with drums kept by default, and
    the 128 General MIDI programs optionally folded into their 16 families."""

    keep_drums: bool = True
    families: bool = False
    header: bool = True  # each piece starts with a PROGRAM for each of its parts (midi_multitrack.header)


# Steps between evaluations by default, or an epoch when shorter, but no fewer than
# MIN_EVAL_EVERY: a small corpus (a fine-tuning text of 50 KB is 49 steps an epoch) overfits
# within a few epochs, and its best checkpoint would otherwise be chosen from evaluations 10
# epochs apart (benchmarks/finetune.py); an evaluation (and its checkpoints) every epoch of the
# Bach chorales (61 steps) cost 600 s runs 5% of their steps.
EVAL_EVERY, MIN_EVAL_EVERY = 500, 100

# A fine-tuning run's peak learning rate unless given: a tenth of a new run's. At 1e-2, a minute on
# the 10 bundled chorales took the demo Bach model from 0.84 to 1.85 nats/event on them; at 1e-3,
# to 0.75 (on 50 KB of Shakespeare the two rates score alike: benchmarks/RESULTS.md).
FINETUNE_LR = 1e-3

COUNT = 2**62  # a bound on the counts below: a resumed run derives int64 generator seeds from the epoch


@dataclass
class Progress:
    """Where a run stands; saved in every checkpoint so a resumed run picks up exactly here."""

    step: int = ranged(0, 0, COUNT)
    epoch: int = ranged(1, 1, COUNT)  # the epoch in progress, from 1
    batch: int = ranged(0, 0, COUNT)  # batches of that epoch already trained
    group: int = ranged(0, 0, COUNT)  # steps already taken on the next batch, a piece of its window each (batch_ramp)
    groups: int = ranged(1, 1, COUNT)  # the pieces it is split into
    tokens: int = ranged(0, 0, COUNT)
    elapsed: float = ranged(0.0, 0)  # wall-clock seconds of training, summed over resumed sessions
    best_val_loss: float | None = ranged(None, 0)
    best_step: int | None = ranged(None, 0, COUNT)
    stale_evals: int = ranged(0, 0, COUNT)  # evaluations since the best one, for --patience

    def __post_init__(self):
        if self.group >= self.groups:  # else the batch would never end
            raise ValueError(f"group = {self.group}: not below groups ({self.groups})")


# `seqgen sample`: text samples are `length` characters; MIDI samples `seconds` of music unless
# --length (events) is given, continuing the first `primer_seconds` of a --primer file.
MAX_SAMPLE_TOKENS = 1 << 26  # generated by one command, over all its samples: held in memory until written
SAMPLE_DEFAULTS = {"temperature": 0.8, "length": 500, "seconds": 30.0, "primer_seconds": 60.0}
# A continuous cache (seqgen.cache): theta and lambda good on tiny Shakespeare, War and Peace and
# the Bach chorales alike (benchmarks/README.md); at most MAX_CACHE states, B x N x H floats held.
CACHE_DEFAULTS = {"theta": 0.5, "lam": 0.2}
MAX_CACHE, MAX_THETA = 8192, 1000.0  # beyond 1000, theta h.h overflows for states of a few thousand numbers
MAX_LAMBDA = 0.999  # the model keeps at least 0.1%


def seed_entropy(seed: int) -> int:
    """A --seed (any integer torch takes) as NumPy's SeedSequence takes it: not negative."""
    return seed % 2**64


def derived_seed(seed: int, index: int) -> int:
    """A seed for part `index` of what `seed` makes (a shard of a batch job, a group of samples):
    distinct for every (seed, index) pair, and the same on every machine (NumPy's SeedSequence
    mixes the pair; plain seed + index would make part 1 of seed 7 repeat part 0 of seed 8)."""
    import numpy as np

    return int(np.random.SeedSequence([seed_entropy(seed), index]).generate_state(1, np.uint64)[0] >> 1)


def torch_seed(value: int) -> int:
    """A seed derived from --seed (say, times a constant plus the epoch) in torch's range; values
    already in it are kept as they are, so runs from before give the same numbers."""
    return value if SEED[0] <= value <= SEED[1] else value % 2**64


def to_dict(config) -> dict:
    return dataclasses.asdict(config)


def checked(cls, data):
    """A config rebuilt from `data` (read from a file), every field checked against its type and
    the CLI's range for it: ValueError names the first field that is not (TypeError: `data` is
    not a dict). Keys this version does not know are ignored (a newer seqgen may add fields);
    missing ones take their defaults."""
    if not isinstance(data, dict):
        raise TypeError(f"{describe(data)} where a table of settings belongs")
    hints = typing.get_type_hints(cls)
    values = {f.name: _checked_field(f, hints[f.name], data[f.name]) for f in dataclasses.fields(cls) if f.name in data}
    missing = [f.name for f in dataclasses.fields(cls) if f.name not in values and f.default is dataclasses.MISSING]
    if missing:
        raise ValueError(f"{missing[0]} is missing")
    return cls(**values)


def from_dict(cls, data: dict):
    """Rebuild a config, ignoring keys this version does not know (forward compatible reads)."""
    return checked(cls, data)  # data from a file is never trusted; from the CLI it passes anyway


def _checked_field(f: dataclasses.Field, hint, value):
    optional, kind = type(None) in typing.get_args(hint), _base(hint)
    if value is None and optional:
        return None
    typed = _typed(kind, value)
    span, choices = f.metadata.get("range"), f.metadata.get("choices")
    if typed is None or (span is not None and typed not in span) or (choices is not None and typed not in choices):
        raise ValueError(f"{f.name} = {describe(value)}: {_expected(kind, span, choices, optional)}")
    return typed


def _typed(kind, value):
    """`value` as a `kind`, or None if it is not one. bool is an int to Python but never a number
    here, a count is never 3.0, and a float must be finite."""
    if isinstance(value, bool) or kind is bool:
        return value if isinstance(value, bool) and kind is bool else None
    if kind is float and isinstance(value, (int, float)):
        try:
            value = float(value)
        except OverflowError:  # an integer of hundreds of digits
            return None
        return value if math.isfinite(value) else None
    return value if isinstance(value, kind) else None


def _expected(kind, span, choices, optional: bool) -> str:
    if choices is not None:
        what = f"one of {', '.join(choices)}"
    else:
        what = {bool: "true or false", int: "an integer", float: "a finite number", str: "a string"}[kind]
        what += f" {span}" if span is not None and str(span) else ""
    return f"must be {what}{' (or null)' if optional else ''}"


def describe(value) -> str:
    """A value read from a file, shown short: it may be a huge number, string or table."""
    if isinstance(value, dict):
        return "a table"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, int) and not isinstance(value, bool) and value.bit_length() > 64:
        return f"a {value.bit_length()}-bit integer"
    text = "null" if value is None else repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def bounds(cls, name: str) -> Range:
    """The CLI's range for a field (for its click option)."""
    return next(f.metadata["range"] for f in dataclasses.fields(cls) if f.name == name)


def choices(cls, name: str) -> tuple[str, ...]:
    return next(f.metadata["choices"] for f in dataclasses.fields(cls) if f.name == name)


def default(cls, name: str):
    return next(f.default for f in dataclasses.fields(cls) if f.name == name)


def field_kind(cls, name: str) -> type:
    """A field's type without its None: int, float, bool or str."""
    return _base(typing.get_type_hints(cls)[name])


def _base(hint) -> type:
    return next(t for t in typing.get_args(hint) or (hint,) if t is not type(None))
