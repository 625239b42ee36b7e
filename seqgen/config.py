"""Every default lives here; the CLI reads its defaults from these dataclasses."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

CELLS = ("lstm", "gru", "rnn", "irnn")
DEVICES = ("auto", "cpu", "cuda", "mps")
PRECISIONS = ("auto", "fp32", "bf16")
KINDS = ("text", "midi")


@dataclass
class ModelConfig:
    vocab_size: int
    cell: str = "lstm"
    layers: int = 1
    hidden: int = 384
    embed: int = 64
    dropout: float = 0.0
    residual: bool = False

    def __post_init__(self):
        if self.cell not in CELLS:
            raise ValueError(f"unknown cell {self.cell!r}; choose one of {', '.join(CELLS)}")


@dataclass
class TrainConfig:
    # Tuned for a laptop CPU: 105 s on 2 cores of tiny Shakespeare (benchmarks/README.md). In
    # short runs optimizer steps are scarce, so small batches and one wide layer win.
    seq_len: int = 64
    batch_size: int = 16
    lr: float = 1e-2
    weight_decay: float = 0.1  # 0.03 nats better on tiny Shakespeare's unseen last plays in 105 s (benchmarks/README.md)
    warmup_steps: int = 50
    min_lr_ratio: float = 0.02  # a low floor: the last few hundred steps at a small rate are worth 0.02 nats here
    clip: float = 1.0
    max_steps: int | None = None
    epochs: int | None = 10
    time_budget: float | None = None
    val_fraction: float = 0.02
    eval_every: int = 500
    patience: int | None = None
    keep: int = 1  # resumable checkpoints kept: last.safetensors and keep - 1 earlier ones
    seed: int = 1337
    transpose: int = 3  # MIDI augmentation: each piece moved by up to this many semitones per epoch
    stretch: float = 0.05  # MIDI augmentation: and played up to 5% faster or slower
    device: str = "auto"
    precision: str = "auto"  # bf16 autocast where the hardware computes it natively (see hardware.pick_precision)
    threads: int | None = None


# MIDI runs change one training default: a note's release can come a hundred events or more
# after its onset, so they backpropagate through longer windows (benchmarks/README.md).
MIDI_TRAIN_DEFAULTS = {"seq_len": 256}


@dataclass
class MidiConfig:
    """The MIDI event tokenizer's settings (Performance RNN's by default); saved in checkpoints."""

    resolution: float = 0.01  # seconds per TIME_SHIFT step
    max_shift: float = 1.0  # the longest single TIME_SHIFT; longer gaps repeat it
    velocity_bins: int = 32
    keep_drums: bool = False
    max_note: float = 10.0  # seconds; longer notes are ended (a guard against stuck notes)


# `seqgen sample`: text samples are `length` characters; MIDI samples `seconds` of music unless
# --length (events) is given, continuing the first `primer_seconds` of a --primer file.
SAMPLE_DEFAULTS = {"temperature": 0.8, "length": 500, "seconds": 30.0, "primer_seconds": 60.0}


def to_dict(config) -> dict:
    return dataclasses.asdict(config)


def from_dict(cls, data: dict):
    """Rebuild a config, ignoring keys this version does not know (forward compatible reads)."""
    names = {f.name for f in dataclasses.fields(cls)}
    return cls(**{k: v for k, v in data.items() if k in names})


def default(cls, name: str):
    return next(f.default for f in dataclasses.fields(cls) if f.name == name)
