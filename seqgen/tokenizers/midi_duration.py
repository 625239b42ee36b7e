"""Multitrack MIDI with durations: a note is a NOTE_ON followed by its DURATION, never a NOTE_OFF,
so no note can be left sounding (MidiTok's TSD, with time in seconds as Performance RNN has it).

The vocabulary is the multitrack one (see midi_multitrack) with the 128 NOTE_OFF events replaced by
DURATION events: every whole number of steps up to 8, then steps about 10% apart up to the note
cap (60 with the defaults: 10 ms to 10 s). With the defaults:

    ids   0..127  NOTE_ON(pitch)          ids 188..287  TIME_SHIFT(1..100 steps of 10 ms)
        128..187  DURATION(10 ms..10 s)       288..319  VELOCITY(bin 0..31), only when it changes
                                              320..448  PROGRAM(0..127, then drums), when the part changes
                                                   449  PIECE: the boundary before every piece

A note's onset is exact to half a step, as in the other MIDI tokenizers; its length is the
nearest DURATION (within half a step up to 8 steps, within 6% beyond).
"""

from __future__ import annotations

import numpy as np

from ..config import MultitrackConfig
from ..midi_io import resolve_overlaps, sorted_notes
from .base import id_dtype, register
from .midi_events import DecodeReport, EventRules
from .midi_multitrack import MultitrackTokenizer

EXACT_STEPS = 8  # durations up to this many steps are exact
DURATION_RATIO = 1.1  # beyond, each DURATION is about this much longer than the last


def duration_steps(cap: int) -> np.ndarray:
    """The lengths (in steps) DURATION events stand for, up to the note cap."""
    steps = list(range(1, min(cap, EXACT_STEPS) + 1))
    while steps[-1] < cap:
        steps.append(min(cap, max(steps[-1] + 1, round(steps[-1] * DURATION_RATIO))))
    return np.array(steps)


class DurationRules(EventRules):
    """Masks for sampling NOTE_ON + DURATION events, tracking K samples. PIECE is never drawn
    inside a piece; with `valid_only`, a DURATION comes right after each NOTE_ON and nowhere
    else, and no note is struck twice at one instant (the decoder would make it one). `parts`,
    when given, are the only parts that may play (see EventRules)."""

    def start(self, prime, num_samples: int, device) -> None:
        """The state after `prime`, as `advance` would leave it token by token."""
        import torch

        tok = self.tok
        ids = np.asarray(prime, dtype=np.int64).ravel()  # (N,)
        time = np.cumsum(np.where((ids >= tok.time_shift) & (ids < tok.velocity), ids - tok.time_shift + 1, 0))  # (N,)
        parts = tok._parts_of_ids(ids)  # (N,)
        on = ids < tok.note_off
        struck = np.full(self.keys, -1, np.int64)  # (P*128,) the step each key was last struck
        np.maximum.at(struck, ids[on] + 128 * parts[on], time[on])
        self.struck = torch.as_tensor(struck, device=device).repeat(num_samples, 1)  # (K, P*128)
        last_on = bool(len(ids)) and int(ids[-1]) < tok.note_off
        self.after_note = torch.full((num_samples,), last_on, dtype=torch.bool, device=device)  # (K,)
        self._start_clock(ids, int(time[-1]) if len(ids) else 0, int(parts[-1]) if len(ids) else 0, num_samples, device)

    def allowed(self):
        """(K, V) bool: which events each sample may draw next."""
        import torch

        tok = self.tok
        rows = torch.arange(len(self.part), device=self.part.device)
        mask = torch.ones(len(rows), tok.vocab_size, dtype=torch.bool, device=self.part.device)
        mask[:, tok.boundary] = False
        self._mask_parts(mask)
        if self.valid_only:
            struck = self.struck.view(len(rows), tok.parts, 128)[rows, self.part]  # (K, 128)
            mask[:, tok.note_on : tok.note_off] &= struck != self.now[:, None]
            durations = self.after_note[:, None]  # (K, 1)
            mask[:, tok.first_duration : tok.time_shift] = durations
            mask[:, : tok.first_duration] &= ~durations
            mask[:, tok.time_shift :] &= ~durations
        return mask

    def advance(self, token) -> None:
        """Take in the (K,) events just drawn."""
        self._advance_clock(token)
        self.after_note = token < self.tok.note_off
        rows = self.after_note.nonzero().ravel()
        self.struck[rows, token[rows] + 128 * self.part[rows]] = self.now[rows]


@register
class DurationTokenizer(MultitrackTokenizer):
    """Multitrack notes <-> NOTE_ON + DURATION events (see the module's docstring); its settings
    are the multitrack tokenizer's (MultitrackConfig), saved in checkpoints."""

    kind = "midi-duration"
    name = "duration"
    rules_class = DurationRules

    def __init__(self, config: MultitrackConfig | None = None):
        config = config or MultitrackConfig()
        self.durations = duration_steps(max(1, round(config.max_note / config.resolution)))  # (D,)
        self.release_events = len(self.durations)
        super().__init__(config)
        self.first_duration = self.note_off  # the first DURATION id

    def describe(self) -> str:
        return super().describe().replace("multitrack MIDI events", "multitrack MIDI events with note durations", 1)

    def event_name(self, token: int) -> str:
        if self.first_duration <= token < self.time_shift:
            return f"DURATION({self.durations[token - self.first_duration] * self.config.resolution * 1000:g}ms)"
        return super().event_name(token)

    # -- events -----------------------------------------------------------------------------
    def _duration_ids(self, steps: np.ndarray) -> np.ndarray:
        """(N,) the DURATION id nearest each length (in steps), nearest in ratio beyond EXACT_STEPS."""
        upper = np.clip(np.searchsorted(self.durations, steps), 1, len(self.durations) - 1)  # (N,)
        lower = upper - 1
        nearer_lower = np.log(steps / self.durations[lower]) <= np.log(self.durations[upper] / steps)
        return self.first_duration + np.where(nearer_lower, lower, upper)

    def encode(self, notes: np.ndarray, *, transpose: int = 0, stretch: float = 1.0,
               until: float | None = None, ensemble=None) -> np.ndarray:
        """Notes -> ids: PIECE, the header of its parts (or of `ensemble`'s), then each note in
        time order (each instant's grouped by part) as its TIME_SHIFTs, PROGRAM and VELOCITY when
        they change, NOTE_ON and DURATION. With `until` (seconds), notes struck at or after it
        are left out; those struck before keep their whole length."""
        steps = self._quantise(notes, transpose, stretch)
        steps = steps[np.lexsort((steps["pitch"], steps["start"]))]  # (N,) by time, then key (part, pitch)
        header = self.header(steps["pitch"] // 128 if ensemble is None else ensemble)
        if until is not None:
            steps = steps[steps["start"] < round(until * stretch / self.config.resolution)]
        out = self._events(steps["start"], np.ones(len(steps), bool), steps["pitch"], self._bin_of[steps["velocity"]],
                           header)
        notes_at = np.flatnonzero(out < self.note_off)  # (N,) where each NOTE_ON is
        durations = self._duration_ids(np.maximum(steps["end"] - steps["start"], 1))
        return np.insert(out, notes_at + 1, durations).astype(id_dtype(self.vocab_size))

    def decode(self, ids) -> tuple[np.ndarray, DecodeReport]:
        """Ids -> (notes, report). Never fails: whatever the ids, the notes form a valid file.

        A second PIECE (after a note or a time shift) ends the piece; a NOTE_ON not followed by
        a DURATION lasts one step, and a DURATION not after a NOTE_ON is ignored (both counted as
        ignored); a note struck again while it sounds is ended there."""
        res = self.config.resolution
        ids = np.asarray(ids, dtype=np.int64).ravel()  # (N,)
        report = DecodeReport()
        is_on = (ids >= self.note_on) & (ids < self.note_off)
        is_shift = (ids >= self.time_shift) & (ids < self.velocity)
        begun = np.cumsum(is_on | is_shift)  # (N,)
        second = np.flatnonzero((ids == self.boundary) & (begun > 0))
        if len(second):
            report.ignored += len(ids) - int(second[0]) - 1
            ids, is_on, is_shift = ids[: second[0]], is_on[: second[0]], is_shift[: second[0]]
        report.ignored += int(((ids < 0) | (ids > self.boundary)).sum())
        time = np.cumsum(np.where(is_shift, ids - self.time_shift + 1, 0))  # (N,) the step of each id
        is_duration = (ids >= self.first_duration) & (ids < self.time_shift)
        after_on = np.zeros(len(ids), bool)
        after_on[1:] = is_on[:-1]
        report.ignored += int((is_duration & ~after_on).sum())
        on = np.flatnonzero(is_on)  # (M,)
        following = np.minimum(on + 1, max(len(ids) - 1, 0))
        has_duration = (on + 1 < len(ids)) & is_duration[following]
        report.ignored += int((~has_duration).sum())
        which = np.clip(ids[following] - self.first_duration, 0, len(self.durations) - 1)  # (M,)
        length = np.where(has_duration, self.durations[which], 1)  # (M,) steps
        is_velocity = (ids >= self.velocity) & (ids < self.program)
        last_velocity = np.maximum.accumulate(np.where(is_velocity, np.arange(len(ids)), -1))  # (N,)
        given = last_velocity[on]
        bins = np.where(given >= 0, ids[np.maximum(given, 0)] - self.velocity, 0)

        key = ids[on] - self.note_on + 128 * self._parts_of_ids(ids)[on]
        steps = np.zeros(len(on), dtype=[("pitch", np.int64), ("velocity", np.int64), ("start", np.int64), ("end", np.int64)])
        steps["pitch"], steps["start"] = key, time[on]
        steps["end"] = time[on] + length
        steps["velocity"] = np.where(given >= 0, self._velocity_of[bins], self._velocity_of[self._bin_of[64]])
        steps = resolve_overlaps(steps)  # a key struck again ends its sounding note; unisons become one
        report.ignored += len(on) - len(steps)
        notes = self._notes(steps["pitch"])
        notes["velocity"] = steps["velocity"]
        notes["start"], notes["end"] = steps["start"] * res, steps["end"] * res
        return sorted_notes(notes), report

    def chord(self, pitches, velocity: int = 80, ensemble=None) -> np.ndarray:
        """MidiTokenizer.chord's primer, each note held a second."""
        ids = super().chord(pitches, velocity, ensemble)
        second = self._duration_ids(np.array([max(1, round(1.0 / self.config.resolution))]))[0]
        notes_at = np.flatnonzero(ids < self.note_off)
        return np.insert(ids, notes_at + 1, second).astype(id_dtype(self.vocab_size))
