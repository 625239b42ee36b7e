"""Multitrack MIDI: Performance RNN's events with the instruments kept.

A PROGRAM event sets the part that the NOTE_ON and NOTE_OFF events after it play, until the next
PROGRAM: a part is a General MIDI program (0-127), or the drum kit, whose pitches name drum
sounds (they are never transposed). Tracks of one program are one part. With `families`, the 128
programs fold into the 16 General MIDI families (each played as the family's first program),
for a vocabulary of 17 PROGRAM events instead of 129. With the default settings:

    ids   0..127  NOTE_ON(pitch)          ids 256..355  TIME_SHIFT(1..100 steps of 10 ms)
        128..255  NOTE_OFF(pitch)             356..387  VELOCITY(bin 0..31), only when it changes
                                              388..516  PROGRAM(0..127, then drums), when the part changes
                                                   517  PIECE: the boundary before every piece

At one instant, note-offs come first, then note-ons, each grouped by part, so that a chord of
one instrument costs one PROGRAM. Before the first PROGRAM of a piece, notes are the piano's.
"""

from __future__ import annotations

from collections import Counter
from typing import cast

import numpy as np

from ..config import COUNT, MultitrackConfig
from ..errors import SeqgenError
from ..midi_io import DRUMS, PROGRAM_NOTE_DTYPE, family_of, instrument_name, resolve_overlaps
from .base import register
from .midi_events import MidiTokenizer

FAMILIES = 16  # General MIDI's families of 8 programs each: Piano, Chromatic Percussion, ..., Sound Effects
MAX_ENSEMBLES = 1000  # the corpus's most common sets of instruments kept in a checkpoint: a bound on its size


@register
class MultitrackTokenizer(MidiTokenizer):
    """A performance of several instruments <-> events with PROGRAM events (see the module's
    docstring); its settings (MultitrackConfig) are saved in checkpoints."""

    kind = "midi-multitrack"
    name = "multitrack"
    config_class = MultitrackConfig
    note_dtype = PROGRAM_NOTE_DTYPE

    def __init__(self, config: MultitrackConfig | None = None):
        config = config or MultitrackConfig()
        # Part p plays program part_programs[p]; the last part is the drum kit.
        melodic = np.arange(FAMILIES) * 8 if config.families else np.arange(128)
        self.part_programs = np.append(melodic, DRUMS)  # (P,)
        self.parts = self.program_events = len(self.part_programs)
        self.drum_part = self.parts - 1
        super().__init__(config)
        self.config: MultitrackConfig = config

    def describe(self) -> str:
        c = self.config
        parts = "16 General MIDI families" if c.families else "128 General MIDI programs"
        return (f"multitrack MIDI events, vocabulary {self.vocab_size}: Performance RNN's, with a PROGRAM event "
                f"for each of {parts} and drums; {c.resolution * 1000:g} ms steps, {c.velocity_bins} velocity bins, "
                f"drums {'kept' if c.keep_drums else 'left out'}, notes capped at {c.max_note:g} s"
                + (f"; {len(self.ensembles)} ensemble{'s' if len(self.ensembles) != 1 else ''} of instruments "
                   f"from {sum(n for _, n in self.ensembles):,} files" if self.ensembles else "")
                + self._controls_described())

    def to_dict(self) -> dict:
        programs = self.part_programs.tolist()
        return {**super().to_dict(), "ensembles": [
            {"programs": [programs[p] for p in parts], "files": files} for parts, files in self.ensembles]}

    @classmethod
    def from_dict(cls, data: dict) -> MultitrackTokenizer:
        data = {"header": False, **data}  # checkpoints from before headers encode none
        tokenizer = cast(MultitrackTokenizer, super().from_dict(data))
        ensembles = data.get("ensembles", [])  # none in checkpoints from before they were kept
        if not isinstance(ensembles, list) or len(ensembles) > MAX_ENSEMBLES:
            raise ValueError(f"ensembles must be a list of at most {MAX_ENSEMBLES}")
        fits = []
        for e in ensembles:
            programs, files = (e.get("programs"), e.get("files")) if isinstance(e, dict) else (None, None)
            if (not isinstance(programs, list) or not programs or len(programs) > tokenizer.parts
                    or any(type(p) is not int or not 0 <= p <= DRUMS for p in programs)
                    or type(files) is not int or not 1 <= files <= COUNT):
                raise ValueError("each ensemble must be {'programs': [0-128, ...], 'files': N >= 1}")
            fits.append((tuple(sorted(set(tokenizer._part_of_program(programs).tolist()))), files))
        tokenizer.ensembles = tuple(fits)
        return tokenizer

    def fit(self, performances) -> None:
        """The corpus's ensembles: each set of parts that plays together in one of its files (after
        the folding into families, and without drums unless keep_drums), with how many files
        have it, most common first; and what MidiTokenizer.fit learns (the controls' values)."""
        performances = list(performances)
        counts: Counter[tuple[int, ...]] = Counter()
        for notes in performances:
            kept = notes if self.config.keep_drums else notes[notes["program"] != DRUMS]
            if len(kept):
                counts[tuple(np.unique(self._part_of_program(kept["program"])).tolist())] += 1
        self.ensembles = tuple(counts.most_common(MAX_ENSEMBLES))
        super().fit(performances)

    def event_name(self, token: int) -> str:
        if self.program <= token < self.boundary:
            return f"PROGRAM({self._part_name(token - self.program)})"
        return super().event_name(token)

    def _part_name(self, part: int) -> str:
        program = int(self.part_programs[part])
        if program == DRUMS:
            return "drums"
        return family_of(program) if self.config.families else instrument_name(program)

    # -- parts ------------------------------------------------------------------------------
    def parts_of(self, notes: np.ndarray) -> np.ndarray:
        if "program" not in (notes.dtype.names or ()):  # notes of one instrument: the piano's
            return np.zeros(len(notes), np.int64)
        return self._part_of_program(notes["program"])

    def _part_of_program(self, program) -> np.ndarray:
        """(N,) the part that plays each program (0-127, or DRUMS)."""
        program = np.asarray(program, dtype=np.int64)
        return np.where(program == DRUMS, self.drum_part, program // 8 if self.config.families else program)

    def pitched(self, parts: np.ndarray) -> np.ndarray:
        return parts != self.drum_part

    def _parts_of_ids(self, ids: np.ndarray) -> np.ndarray:
        is_program = (ids >= self.program) & (ids < self.boundary)
        last = np.maximum.accumulate(np.where(is_program, np.arange(len(ids)), -1))  # (N,) the PROGRAM in force
        return np.where(last >= 0, ids[np.maximum(last, 0)] - self.program, 0)

    def _notes(self, key: np.ndarray) -> np.ndarray:
        notes = super()._notes(key)
        notes["program"] = self.part_programs[key // 128]
        return notes

    def performance(self, notes: np.ndarray) -> tuple[np.ndarray, dict]:
        """(the notes it encodes: every part kept, each program's tracks merged into one part and
        the programs folded into families with `families`; drums unless keep_drums is off), and
        what that leaves out."""
        kept = notes if self.config.keep_drums else notes[notes["program"] != DRUMS]
        # Notes of one part and pitch never overlap: resolve them as one instrument's, by key.
        keyed = kept.copy()
        keyed["pitch"] += 128 * self.parts_of(kept)
        keyed = resolve_overlaps(keyed)
        keyed["program"] = self.part_programs[keyed["pitch"] // 128]
        keyed["pitch"] %= 128
        keyed = keyed[np.lexsort((keyed["pitch"], keyed["program"], keyed["start"]))]
        return keyed, {"drum_notes_left_out": len(notes) - len(kept)}

    def header(self, parts) -> np.ndarray:
        """A PROGRAM for each part that plays in the piece, in order, right after its PIECE (with
        the `header` setting): told who plays, a model samples the parts of the ensemble it was
        given (as MuseNet's instrument tokens and MMM's track headers do). Decoding reads them as
        any PROGRAM: the part in force changes, no note sounds."""
        if not self.config.header:
            return np.zeros(0, np.int64)
        return self.program + np.unique(np.asarray(list(parts), dtype=np.int64))

    def parts_named(self, names: str) -> set[int]:
        """The parts `--instruments` names: comma-separated General MIDI instrument names
        ("Acoustic Grand Piano"), family names ("bass", "strings"), program numbers (0-127) or
        "drums", in any case; one SeqgenError naming what is not one."""
        from ..midi_io import program_named

        parts = set()
        for name in (n.strip() for n in names.split(",")):
            if not name:
                continue
            programs = program_named(name)
            if programs is None:
                raise SeqgenError(f"--instruments: {name!r} is not a General MIDI instrument or family name, a program "
                                  "number 0-127, or drums (e.g. --instruments piano,bass,drums)")
            parts |= set(self._part_of_program(programs).tolist())
        if not parts:
            raise SeqgenError("--instruments names no instrument")
        return parts
