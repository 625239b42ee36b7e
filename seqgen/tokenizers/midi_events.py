"""MIDI as a sequence of events: the Performance RNN vocabulary (Oore et al. 2018, as in Magenta).

A performance (notes, see seqgen.midi_io) becomes events, with the default settings:

    ids   0..127  NOTE_ON(pitch)          ids 256..355  TIME_SHIFT(1..100 steps of 10 ms)
        128..255  NOTE_OFF(pitch)             356..387  VELOCITY(bin 0..31), only when it changes
                                                   388  PIECE: the boundary before every piece

The first 388 ids are Magenta's layout; PIECE comes after them. The notes are quantised when
encoded, so the same notes can be encoded again transposed or stretched for augmentation.

A silence of over MAX_SILENCE seconds splits a performance into separate pieces (`split_at_silences`):
events grow with time, not notes, so a tiny file with a gap of years would otherwise encode to
billions of TIME_SHIFTs.
"""

from __future__ import annotations

import itertools
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING

import numpy as np

from ..config import MidiConfig, from_dict, seed_entropy
from ..controls import ControlSet, Timeline
from ..errors import SeqgenError
from ..midi_io import DRUMS, NOTE_DTYPE, one_part, read_performance, resolve_overlaps, sorted_notes
from .base import id_dtype, register

if TYPE_CHECKING:
    from ..sample import Rules

# A silence longer than this (seconds, after every note has ended or reached the note cap) ends a
# piece: what follows is a new piece. A minute is far longer than any rest inside real music, and
# bounds the events of a piece by its notes: at most 60 TIME_SHIFTs of 1 s between two onsets.
MAX_SILENCE = 60.0
# Control values of the training data kept in a checkpoint, for samples given none (`fit`): taken
# at evenly spaced moments of the whole corpus.
MAX_CONTROL_DRAWS = 256
PRIMER_CONTROLS = 5.0  # seconds: a primer's controls not asked for are its own, averaged over its last seconds


@dataclass
class DecodeReport:
    """What the decoder had to repair in a token sequence; none of it reaches the file."""

    ignored: int = 0  # NOTE_OFF of a silent pitch, a pitch struck twice at one instant, tokens after a PIECE
    closed_at_end: int = 0  # notes still sounding when the events ran out
    capped: int = 0  # notes ended at the maximum note length


@register
class MidiTokenizer:
    """A performance (notes) <-> Performance RNN events; its settings (MidiConfig) are saved in
    checkpoints. Also what sampling needs of it: primers, event rules, the clock of each event."""

    kind = "midi"
    name = "performance"  # as `seqgen train --tokenizer` names it
    config_class = MidiConfig
    unit = "event"
    reads = "midi"
    # One part: every note is a pitch of one instrument. A tokenizer of several parts (see
    # midi_multitrack) has a PROGRAM event per part, and keys a note by part * 128 + pitch.
    parts = 1
    program_events = 0
    release_events = 128  # a NOTE_OFF per pitch (midi_duration has DURATION events instead)
    rules_class: type  # what `rules` returns: EventRules (set below, once defined)
    # ((parts, files), ...): the sets of parts that play together in the corpus's files, most
    # common first, which a sample draws from (`fit`, `rules`); a tokenizer of one part has none.
    ensembles: tuple[tuple[tuple[int, ...], int], ...] = ()
    note_dtype = NOTE_DTYPE
    # (D, control_size): the training data's control values, which samples given none draw from (`fit`)
    control_draws = np.zeros((0, 0), np.float32)

    def __init__(self, config: MidiConfig | None = None):
        self.config = config = config or MidiConfig()
        if not 0.001 <= config.resolution <= 1.0:
            raise SeqgenError("the MIDI time resolution must be between 0.001 and 1 second")
        self.shift_steps = round(config.max_shift / config.resolution)
        if not 1 <= self.shift_steps <= 10_000:
            raise SeqgenError("the maximum time shift must be 1 to 10,000 steps of the resolution")
        if not 1 <= config.velocity_bins <= 127:
            raise SeqgenError("velocity bins must be between 1 and 127")
        # The first id of each event type; NOTE_OFF's block holds a tokenizer's release events.
        self.note_on, self.note_off = 0, 128
        self.time_shift = self.note_off + self.release_events
        self.velocity = self.time_shift + self.shift_steps
        self.program = self.velocity + config.velocity_bins  # PROGRAM events (none in this vocabulary)
        self.boundary = self.program + self.program_events  # PIECE
        self.cap_steps = max(1, round(config.max_note / config.resolution))
        # Velocities 1..127 fall into equal bins; a bin decodes to the middle of its velocities.
        v = np.arange(1, 128)
        self._bin_of = np.concatenate([[0], (v - 1) * config.velocity_bins // 127])  # (128,)
        self._velocity_of = np.array([int(np.median(v[self._bin_of[1:] == b])) for b in range(config.velocity_bins)])
        # Seconds each token moves the clock: what `seqgen sample --seconds` counts.
        self.token_seconds = np.zeros(self.vocab_size)
        self.token_seconds[self.time_shift : self.velocity] = np.arange(1, self.shift_steps + 1) * config.resolution
        self.control_set = ControlSet(config.control)  # what the model reads beside each event (seqgen.controls)
        config.control = str(self.control_set)  # in one spelling: " Key, density" is "key,density"

    @property
    def vocab_size(self) -> int:
        return self.boundary + 1

    @property
    def control_size(self) -> int:
        return self.control_set.size

    def to_dict(self) -> dict:
        settings = asdict(self.config)
        if not self.control_size:  # as before controls: a run's corpus digest hashes these settings
            del settings["control"]
            return {"kind": self.kind, **settings}
        return {"kind": self.kind, **settings, "control_draws": self.control_draws.astype(np.float64).round(4).tolist()}

    def options(self) -> dict:
        return {"tokenizer": self.name, **asdict(self.config)}

    def extended(self, other) -> tuple[MidiTokenizer, np.ndarray]:
        """`other`, fitted to the fine-tuning corpus with this one's settings (`options`): its
        vocabulary is this one's, id for id."""
        if type(other) is not type(self) or asdict(other.config) != asdict(self.config):
            raise SeqgenError(f"the corpus reads as {other.describe()}; the model was trained on {self.describe()}")
        return other, np.arange(self.vocab_size)

    @classmethod
    def from_dict(cls, data: dict) -> MidiTokenizer:
        tokenizer = cls(from_dict(cls.config_class, data))
        if tokenizer.control_size:
            draws = data.get("control_draws", [])
            if not isinstance(draws, list) or len(draws) > MAX_CONTROL_DRAWS or any(
                    not isinstance(row, list) or len(row) != tokenizer.control_size
                    or any(type(v) not in (int, float) or not 0 <= v <= 100 for v in row) for row in draws):
                raise ValueError(f"control_draws must be at most {MAX_CONTROL_DRAWS} lists of "
                                 f"{tokenizer.control_size} numbers from 0 to 100")
            tokenizer.control_draws = np.array(draws, np.float32).reshape(len(draws), tokenizer.control_size)
        return tokenizer

    def describe(self) -> str:
        c = self.config
        return (f"MIDI events, vocabulary {self.vocab_size} (Performance RNN): 128 NOTE_ON, 128 NOTE_OFF, "
                f"{self.shift_steps} TIME_SHIFT of {c.resolution * 1000:g} ms (up to {c.max_shift:g} s), "
                f"{c.velocity_bins} VELOCITY bins, PIECE; drums {'kept' if c.keep_drums else 'left out'}, "
                f"notes capped at {c.max_note:g} s{self._controls_described()}")

    def _controls_described(self) -> str:
        return f"; controls: {self.control_set.describe()}" if self.control_size else ""

    def reading(self) -> dict:
        return {}  # a MIDI corpus is read the same for every model; the tokenizer's settings do the rest

    def no_notes(self) -> str:
        return "no notes" + ("" if self.config.keep_drums else " (drums are left out)")

    def event_name(self, token: int) -> str:
        if token < self.note_off:
            return f"NOTE_ON({token})"
        if token < self.time_shift:
            return f"NOTE_OFF({token - self.note_off})"
        if token < self.velocity:
            return f"TIME_SHIFT({(token - self.time_shift + 1) * self.config.resolution * 1000:g}ms)"
        if token < self.program:
            return f"VELOCITY({token - self.velocity})"
        return "PIECE"

    # -- files ------------------------------------------------------------------------------
    def read_notes(self, source, name: str | None = None) -> np.ndarray:
        """The notes it encodes of a MIDI file (a path, bytes, or a binary file object; `name` is
        what errors call it): see `performance`."""
        return self.performance(read_performance(source, name=name))[0]

    def performance(self, notes: np.ndarray) -> tuple[np.ndarray, dict]:
        """(the notes it encodes of a performance read with its instruments, what that leaves out).

        One part: every instrument merged (midi_io.one_part), drums only with keep_drums. What
        is left out is counted for the corpus summary: the instrument parts merged (when more
        than one) and the drum notes."""
        kept = notes if self.config.keep_drums else notes[notes["program"] != DRUMS]
        parts = len(np.unique(kept["program"]))
        return one_part(notes, keep_drums=self.config.keep_drums), {
            "merged": parts if parts > 1 else 0, "drum_notes_left_out": len(notes) - len(kept)}

    def fit(self, performances) -> None:
        """Learn what the corpus's performances (notes read with their instruments) tell about
        sampling: with controls, values of them that samples given none draw from
        (`control_inputs`), so that such samples play as the corpus does. (A tokenizer of several
        parts learns more: see midi_multitrack.)"""
        if not self.control_size:
            return
        pieces = [piece for notes in performances for piece in self.split(self.performance(notes)[0])[0] if len(piece)]
        if not pieces:
            return
        # MAX_CONTROL_DRAWS moments evenly spaced over the whole corpus's time, pieces end to end:
        # a piece counts for its length, and a passage for the time it takes (not its events).
        ends = np.cumsum([self.duration(p) for p in pieces])  # (P,)
        moments = (np.arange(MAX_CONTROL_DRAWS) + 0.5) / MAX_CONTROL_DRAWS * ends[-1]  # (D,)
        holder = np.minimum(np.searchsorted(ends, moments, side="right"), len(pieces) - 1)  # (D,) the piece of each
        draws = []
        for i in np.unique(holder).tolist():
            ids = self.encode(pieces[i])
            timeline = self.timeline(ids)
            at = moments[holder == i] - (ends[i - 1] if i else 0.0)  # seconds into the piece
            draws.append(self.control_set.values(timeline)[np.minimum(np.searchsorted(timeline.times, at), len(ids) - 1)])
        self.control_draws = np.concatenate(draws)

    def controls(self, ids) -> np.ndarray:
        """(N, control_size) float32: the control values at each of the ids, computed piece by
        piece (each PIECE starts one), from what the ids decode to."""
        ids = np.asarray(ids, dtype=np.int64).ravel()
        out = np.zeros((len(ids), self.control_size), np.float32)
        if not self.control_size:
            return out
        bounds = sorted({0, *np.flatnonzero(ids == self.boundary).tolist(), len(ids)})
        for a, b in itertools.pairwise(bounds):
            out[a:b] = self.control_set.values(self.timeline(ids[a:b]))
        return out

    def timeline(self, ids: np.ndarray) -> Timeline:
        """One piece's events and notes in time, as the controls read them."""
        shift = self.token_seconds[ids]  # (N,)
        clock = np.cumsum(shift)
        notes, _ = self.decode(ids)
        # Rounded to the microsecond: a sum of shifts and the decoder's step times differ in the last
        # bits, and a note at the edge of a window would be in or out by chance.
        end = max(float(clock[-1]) if len(ids) else 0.0, float(notes["end"].max()) if len(notes) else 0.0)
        return Timeline(np.round(clock - shift, 6), round(end, 6), np.round(notes["start"], 6),
                        np.round(notes["end"], 6), notes["pitch"], self.pitched(self.parts_of(notes)))

    def control_inputs(self, asked: dict, num_samples: int, seed: int | None = None, primer=None) -> np.ndarray:
        """(K, control_size): what each sample is told: the controls `asked` for (sampling option
        -> value: {"density": 4, "key": "D minor"}), the others drawn from the training data's
        (`fit`), or, after a `primer` (its ids), the primer's own over its last PRIMER_CONTROLS
        seconds: a piece in D minor goes on in D minor unless asked otherwise."""
        draws = self.control_draws
        if primer is not None and len(primer) > 1:
            timeline = self.timeline(np.asarray(primer, dtype=np.int64))
            recent = timeline.times >= timeline.times[-1] - PRIMER_CONTROLS  # (N,)
            draws = self.control_set.values(timeline)[recent].mean(0, keepdims=True)  # (1, C): the one to draw
        return self.control_set.inputs(asked, draws, num_samples, seed)

    def controls_told(self, vector: np.ndarray) -> dict:
        """What a sample told `vector` (control_size,) was asked for: {"density": 4.0, "key": "D minor"}."""
        return self.control_set.explain(vector)

    def split(self, notes: np.ndarray) -> tuple[list[np.ndarray], list[float]]:
        """(the pieces of a performance, the silences between them in seconds): see `split_at_silences`."""
        return split_at_silences(notes, self.config.max_note)

    def duration(self, notes: np.ndarray) -> float:
        """Seconds until the last note ends (or reaches the note cap)."""
        return float(_capped_end(notes, self.config.max_note).max()) if len(notes) else 0.0

    def chord(self, pitches, velocity: int = 80, ensemble=None) -> np.ndarray:
        """PIECE, then the pitches struck together at time 0 and left sounding: a primer. In a
        tokenizer of several parts, after the header of `ensemble`, played by its first pitched
        part (the piano's without one)."""
        pitches = sorted(set(pitches))
        if any(not 0 <= p <= 127 for p in pitches):
            raise SeqgenError("MIDI pitches are 0 to 127")
        part = min((p for p in ensemble or () if self.pitched(np.array([p]))[0]), default=0)
        header = self.header(sorted({part, *(ensemble or ())})).tolist()
        program = [self.program + part] if self.program_events and header[-1:] != [self.program + part] else []
        events = [self.boundary, *header, *program, self.velocity + int(self._bin_of[velocity])]
        return np.array(events + [self.note_on + p for p in pitches], dtype=id_dtype(self.vocab_size))

    def seconds(self, ids) -> float:
        """How far the events move the clock."""
        return float(self.token_seconds[np.asarray(ids, dtype=np.int64)].sum())

    def rules(self, valid_only: bool = True, parts=None) -> Rules:
        """What a sampler may draw next (see `EventRules`); `parts`, when given, the only parts
        that may play (see `ensembles_for`)."""
        return self.rules_class(self, valid_only, parts)

    def ensembles_for(self, prime, num_samples: int, instruments: str | None = None,
                      seed: int | None = None) -> list[frozenset[int] | None]:
        """The parts each sample may play (None: any). `instruments` (names, families or program
        numbers) names them for every sample (of a family, the programs the corpus has, if any),
        and "any" lets the model choose. By default each
        sample plays one of the corpus's ensembles, among those that hold every part the prime
        plays (none, no limit, if no ensemble does), each as often as the corpus's files have
        it. The draw is systematic (one random offset, then K evenly spaced points on the
        cumulative file counts), so a batch has the corpus's mix: 8 samples of a corpus of half
        piano solos, half bands are 4 and 4, not anywhere from 0 to 8 as independent draws."""
        if instruments is not None and instruments.strip().lower() != "any":
            named = self.parts_named(instruments)
            # Of a family's programs, those the corpus has: "bass" is its bass, not all eight.
            known = named & set().union(*(parts for parts, _ in self.ensembles))
            return [frozenset(known or named)] * num_samples
        primed = set(self.played(prime).tolist())
        holding = [(parts, files) for parts, files in self.ensembles if primed <= set(parts)]
        if instruments is not None or not holding:
            return [None] * num_samples
        rng = np.random.default_rng(None if seed is None else seed_entropy(seed))
        cumulative = np.cumsum([files for _, files in holding], dtype=np.float64)  # (E,)
        points = (rng.random() + np.arange(num_samples)) / num_samples * cumulative[-1]  # (K,)
        picks = rng.permutation(np.searchsorted(cumulative, points, side="right"))
        return [frozenset(holding[i][0]) for i in picks]

    def played(self, ids) -> np.ndarray:
        """The parts that strike a note in `ids`, sorted."""
        ids = np.asarray(ids, dtype=np.int64).ravel()
        return np.unique(self._parts_of_ids(ids)[(ids >= self.note_on) & (ids < self.note_on + 128)])

    def parts_named(self, names: str) -> set[int]:
        """The parts `--instruments` names (see midi_multitrack); one part has none to choose."""
        raise SeqgenError("--instruments needs a model of several instruments (trained with --tokenizer duration "
                          "or multitrack); this one plays one part")

    # -- events -----------------------------------------------------------------------------
    def encode(self, notes: np.ndarray, *, transpose: int = 0, stretch: float = 1.0,
               until: float | None = None, ensemble=None) -> np.ndarray:
        """Notes -> ids: PIECE, the header (tokenizers of several parts: `header`), then the
        events in time order.

        At each instant, NOTE_OFFs come first (so a repeated pitch is released, then struck),
        then each NOTE_ON preceded by a VELOCITY event when its bin differs from the last one.
        With `until` (seconds), events at or after that time are left out: notes still sounding
        then stay open, for a model to continue.
        """
        steps = self._quantise(notes, transpose, stretch)
        header = self.header(steps["pitch"] // 128 if ensemble is None else ensemble)
        pitch, bins, start, end = steps["pitch"], self._bin_of[steps["velocity"]], steps["start"], steps["end"]
        n = len(steps)
        # Rows 0..n-1 are the note-offs, n..2n-1 the note-ons. Sorting by (time, order, pitch), with
        # order 0 for offs and 1 for ons, gives the event order described above.
        time = np.concatenate([end, start])
        order = np.concatenate([np.zeros(n, np.int64), np.ones(n, np.int64)])
        pitches = np.concatenate([pitch, pitch])
        rank = np.lexsort((pitches, order, time))
        if until is not None:  # time order: the events before the limit are a prefix
            rank = rank[: np.searchsorted(time[rank], round(until * stretch / self.config.resolution))]
        return self._events(time[rank], order[rank] == 1, pitches[rank], np.concatenate([bins, bins])[rank], header)

    def header(self, parts) -> np.ndarray:
        """The ids that announce a piece's parts after its PIECE: none here (one part); see
        midi_multitrack."""
        return np.zeros(0, np.int64)

    def _events(self, time: np.ndarray, is_on: np.ndarray, key: np.ndarray, bins: np.ndarray,
                header: np.ndarray) -> np.ndarray:
        """PIECE, the header, then each event (all (E,), in order) preceded by the TIME_SHIFTs from the one
        before (as many of the longest shift as fit, then the rest), by a PROGRAM when its part
        differs from the event before's (tokenizers of several parts), and, for a NOTE_ON, by a
        VELOCITY when its bin differs from the last NOTE_ON's. Computed as arrays, not a loop:
        training encodes every piece again each epoch."""
        gap = np.diff(time, prepend=0)  # (E,) steps since the event before
        full, rest = np.divmod(gap, self.shift_steps)  # (E,) longest shifts, then one of `rest` steps
        has_rest = rest > 0
        part = key // 128  # (E,)
        # The first event names its part unless the header's last PROGRAM already has: a sampler never
        # draws a PROGRAM of the part in force, so the data never holds one.
        in_force = int(header[-1]) - self.program if len(header) else -1
        switch = np.diff(part, prepend=in_force) != 0 if self.program_events else np.zeros(len(time), bool)  # (E,)
        on_bins = bins[is_on]
        changed = np.zeros(len(time), bool)  # (E,) a NOTE_ON whose bin differs from the last NOTE_ON's
        changed[is_on] = np.diff(on_bins, prepend=-1) != 0
        size = full + has_rest + switch + changed + 1  # (E,) tokens for each event
        first = 1 + len(header) + np.cumsum(size) - size  # (E,) where each event's tokens begin, after the header
        out = np.full(1 + len(header) + int(size.sum()), self.time_shift + self.shift_steps - 1,
                      dtype=id_dtype(self.vocab_size))
        out[0] = self.boundary
        out[1 : 1 + len(header)] = header
        out[(first + full)[has_rest]] = self.time_shift + rest[has_rest] - 1
        out[(first + full + has_rest)[switch]] = self.program + part[switch]
        out[(first + size - 2)[changed]] = self.velocity + bins[changed]
        out[first + size - 1] = np.where(is_on, self.note_on, self.note_off) + key % 128
        return out

    # -- parts: one here; several in tokenizers with PROGRAM events ---------------------------
    def parts_of(self, notes: np.ndarray) -> np.ndarray:
        """(N,) the part each note belongs to."""
        return np.zeros(len(notes), np.int64)

    def pitched(self, parts: np.ndarray) -> np.ndarray:
        """(N,) whether notes of these parts are pitches (transposable), not drum sounds."""
        return np.ones(len(parts), bool)

    def _parts_of_ids(self, ids: np.ndarray) -> np.ndarray:
        """(N,) the part in force at each id: that of the last PROGRAM before it."""
        return np.zeros(len(ids), np.int64)

    def _notes(self, key: np.ndarray) -> np.ndarray:
        """Empty notes of the given keys, with their pitch (and part) filled in."""
        notes = np.zeros(len(key), dtype=self.note_dtype)
        notes["pitch"] = key % 128
        return notes

    def augmented(self, notes: np.ndarray, rng: np.random.Generator, transpose: int, stretch: float) -> np.ndarray:
        """`encode` after a random transposition (up to +-`transpose` semitones, never moving a note
        outside 0..127) and time stretch (a factor within 1 +- `stretch`)."""
        low, high = -transpose, transpose
        pitched = notes["pitch"][self.pitched(self.parts_of(notes))]
        if len(pitched):
            low, high = max(low, -int(pitched.min())), min(high, 127 - int(pitched.max()))
        shift = int(rng.integers(low, high + 1)) if high >= low else 0
        factor = float(rng.uniform(1 - stretch, 1 + stretch)) if stretch else 1.0
        return self.encode(notes, transpose=shift, stretch=factor)

    def _quantise(self, notes: np.ndarray, transpose: int, stretch: float) -> np.ndarray:
        """Notes on the integer step grid: every note lasts from one step to the cap (as the
        decoder will play it), and no two notes of one pitch overlap."""
        q = np.zeros(len(notes), dtype=[("pitch", np.int64), ("velocity", np.int64), ("start", np.int64), ("end", np.int64)])
        parts = self.parts_of(notes)  # (N,)
        pitch = notes["pitch"] + np.where(self.pitched(parts), transpose, 0)
        if len(q) and (pitch.min() < 0 or pitch.max() > 127):
            raise ValueError("transposition moves notes outside 0..127")
        q["pitch"] = pitch + 128 * parts  # a note's key: notes of one key never overlap
        q["velocity"] = np.clip(notes["velocity"], 1, 127)
        scale = stretch / self.config.resolution
        q["start"] = np.rint(notes["start"] * scale)
        q["end"] = np.clip(np.rint(notes["end"] * scale), q["start"] + 1, q["start"] + self.cap_steps)
        return resolve_overlaps(q)

    def decode(self, ids) -> tuple[np.ndarray, DecodeReport]:
        """Ids -> (notes, report). Never fails: whatever the ids, the notes form a valid file.

        The rules, as if reading one event at a time: a second PIECE (after a note or a time shift)
        ends the piece; a NOTE_ON of a pitch already struck at this instant is ignored; a NOTE_ON
        of a sounding pitch ends that note first; a NOTE_OFF of a silent pitch is ignored; a note
        sounds at most the cap; notes sounding when the events run out end there. Computed per
        pitch as arrays (a primer may hold millions of events): a note's end is the next event
        of its pitch, if that comes within the cap."""
        res, cap = self.config.resolution, self.cap_steps
        ids = np.asarray(ids, dtype=np.int64).ravel()  # (N,)
        report = DecodeReport()
        is_on = (ids >= self.note_on) & (ids < self.note_off)
        is_shift = (ids >= self.time_shift) & (ids < self.velocity)
        begun = np.cumsum(is_on | is_shift)  # (N,) notes and shifts up to each id
        second = np.flatnonzero((ids == self.boundary) & (begun > 0))
        if len(second):  # a boundary after the piece began ends it
            report.ignored += len(ids) - int(second[0]) - 1
            ids, is_on, is_shift = ids[: second[0]], is_on[: second[0]], is_shift[: second[0]]
        report.ignored += int(((ids < 0) | (ids > self.boundary)).sum())
        time = np.cumsum(np.where(is_shift, ids - self.time_shift + 1, 0))  # (N,) the step of each id
        now = int(time[-1]) if len(ids) else 0
        is_velocity = (ids >= self.velocity) & (ids < self.program)
        last_velocity = np.maximum.accumulate(np.where(is_velocity, np.arange(len(ids)), -1))  # (N,) -1: none yet

        # NOTE_ONs and NOTE_OFFs by key (part * 128 + pitch), each key's in order.
        index = np.flatnonzero(is_on | ((ids >= self.note_off) & (ids < self.time_shift)))  # (E,)
        on = is_on[index]
        pitch = ids[index] - np.where(on, self.note_on, self.note_off) + 128 * self._parts_of_ids(ids)[index]
        by_pitch = np.argsort(pitch, kind="stable")
        index, on, pitch, t = index[by_pitch], on[by_pitch], pitch[by_pitch], time[index[by_pitch]]
        ons = np.flatnonzero(on)
        again = np.zeros(len(index), bool)  # a NOTE_ON at the step of its pitch's NOTE_ON before
        again[ons[1:]] = (pitch[ons[1:]] == pitch[ons[:-1]]) & (t[ons[1:]] == t[ons[:-1]])
        report.ignored += int(again.sum())
        index, on, pitch, t = index[~again], on[~again], pitch[~again], t[~again]
        # Each note ends at the next event of its pitch when that comes within the cap.
        t_next = np.append(t[1:], -1)
        ended = np.append(pitch[1:] == pitch[:-1], False) & (t_next - t <= cap) & on  # (E,)
        released = np.zeros(len(on), bool)  # a NOTE_OFF that ends a note
        released[1:] = ended[:-1] & ~on[1:]
        report.ignored += int((~on & ~released).sum())
        capped = on & ~ended & (now - t > cap)
        at_end = on & ~ended & ~capped
        report.capped, report.closed_at_end = int(capped.sum()), int(at_end.sum())
        end = np.where(ended, t_next, np.where(capped, t + cap, now))[on]

        start, notes = t[on], self._notes(pitch[on])
        given = last_velocity[index[on]]  # the VELOCITY event in force at each onset, -1 before any
        bins = np.where(given >= 0, ids[np.maximum(given, 0)] - self.velocity, 0)
        notes["velocity"] = np.where(given >= 0, self._velocity_of[bins], self._velocity_of[self._bin_of[64]])
        notes["start"] = start * res
        notes["end"] = np.maximum(end, start + 1) * res
        return sorted_notes(notes), report


class EventRules:
    """Masks for sampling MIDI events, tracking K samples as they grow. PIECE is never drawn
    inside a piece; with `valid_only`, neither is a NOTE_OFF for a silent note nor a NOTE_ON for
    a sounding one or one already struck at this instant: events the decoder would ignore. The
    model then spends that probability on the events it could mean, say releasing the bass note
    it loses track of instead of one an octave away that is not sounding.

    A note is a key, part * 128 + pitch, where the part is the one the last PROGRAM event set
    (tokenizers of several parts). `parts`, when given, are the only parts that may play: PROGRAM
    events of others are never drawn, and no NOTE_ON while another is in force."""

    def __init__(self, tokenizer: MidiTokenizer, valid_only: bool, parts=None):
        self.tok, self.valid_only = tokenizer, valid_only
        self.keys = tokenizer.parts * 128
        self.playing = None if parts is None else sorted(parts)

    def start(self, prime, num_samples: int, device) -> None:
        """The state after `prime`, as `advance` would leave it token by token, computed in one
        pass over the whole prime (a primer may hold millions of events)."""
        import torch

        opened, struck, now, part = self.after(prime)
        self.opened = torch.as_tensor(opened, device=device).repeat(num_samples, 1)  # (K, P*128) onset step; -1 silent
        self.struck = torch.as_tensor(struck, device=device).repeat(num_samples, 1)  # (K, P*128) last onset step
        self._start_clock(prime, now, part, num_samples, device)

    def _start_clock(self, prime, now: int, part: int, num_samples: int, device) -> None:
        """The state every sampler of parts keeps: the step, the part in force, who may play, and
        whether a PROGRAM has come yet (the piece's header may begin with the piano's, which a
        piece is played by before any PROGRAM, so it changes nothing but says who plays)."""
        import torch

        tok = self.tok
        ids = np.asarray(prime, dtype=np.int64).ravel()
        self.now = torch.full((num_samples,), now, dtype=torch.long, device=device)  # (K,) steps
        self.part = torch.full((num_samples,), part, dtype=torch.long, device=device)  # (K,) the part in force
        announced = not len(tok.header([0])) or bool(((ids >= tok.program) & (ids < tok.boundary)).any())
        self.announced = torch.full((num_samples,), announced, dtype=torch.bool, device=device)  # (K,)
        self.allowed_parts = torch.ones(self.tok.parts, dtype=torch.bool, device=device)  # (P,)
        if self.playing is not None:
            self.allowed_parts[:] = False
            self.allowed_parts[self.playing] = True

    def after(self, prime) -> tuple[np.ndarray, np.ndarray, int, int]:
        """(opened (P*128,), struck (P*128,), now, part): the state after the ids of `prime`.

        struck is the step of each key's last NOTE_ON: one ignored as a second strike comes at
        the step of the NOTE_ON it repeats, so it changes nothing. A key is open when its last
        NOTE_ON that counts (the first at its step) comes after its last NOTE_OFF."""
        tok = self.tok
        ids = np.asarray(prime, dtype=np.int64).ravel()  # (N,)
        shift = np.where((ids >= tok.time_shift) & (ids < tok.velocity), ids - tok.time_shift + 1, 0)
        time = np.cumsum(shift)  # (N,) the step of each id
        index = np.arange(len(ids))
        parts = tok._parts_of_ids(ids)  # (N,)
        on = (ids >= tok.note_on) & (ids < tok.note_off)
        off = (ids >= tok.note_off) & (ids < tok.time_shift)
        on_key, on_time, on_index = ids[on] - tok.note_on + 128 * parts[on], time[on], index[on]
        by_key = np.argsort(on_key, kind="stable")  # (ONs,) by key, then in order (so in time)
        k, t = on_key[by_key], on_time[by_key]
        counts = np.ones(len(k), bool)  # the first NOTE_ON of a key at its step
        counts[1:] = (k[1:] != k[:-1]) | (t[1:] != t[:-1])
        struck = np.full(self.keys, -1, np.int64)
        np.maximum.at(struck, on_key, on_time)
        last_on, last_off = np.full(self.keys, -1, np.int64), np.full(self.keys, -1, np.int64)
        np.maximum.at(last_on, k[counts], on_index[by_key][counts])
        np.maximum.at(last_off, ids[off] - tok.note_off + 128 * parts[off], index[off])
        opened = np.full(self.keys, -1, np.int64)
        sounding = last_on > last_off
        opened[sounding] = time[last_on[sounding]]
        return opened, struck, int(time[-1]) if len(ids) else 0, int(parts[-1]) if len(ids) else 0

    def allowed(self):
        """(K, V) bool: which events each sample may draw next."""
        import torch

        tok = self.tok
        rows = torch.arange(len(self.now), device=self.now.device)
        mask = torch.ones(len(self.now), tok.vocab_size, dtype=torch.bool, device=self.now.device)
        mask[:, tok.boundary] = False
        if self.valid_only:
            # A note the decoder has ended at the cap no longer sounds. Of the part in force:
            opened = self.opened.view(len(rows), tok.parts, 128)[rows, self.part]  # (K, 128)
            struck = self.struck.view(len(rows), tok.parts, 128)[rows, self.part]  # (K, 128)
            sounding = (opened >= 0) & (self.now[:, None] - opened <= tok.cap_steps)  # (K, 128)
            mask[:, tok.note_on : tok.note_on + 128] = ~sounding & (struck != self.now[:, None])
            mask[:, tok.note_off : tok.note_off + 128] = sounding
        self._mask_parts(mask)
        return mask

    def restrict(self, logits, temperature: float = 1.0):
        """(K, V) logits -> the same with what may not come next at -inf. When some parts may not
        play, the model's odds of changing part (at the sampling `temperature`) are kept and only
        which part it changes to is limited: masked alone, the forbidden PROGRAMs' probability
        would go mostly to notes and time shifts, and a sample would keep to the first of its
        instruments."""
        import torch

        tok, mask = self.tok, self.allowed()  # (K, V)
        if tok.program_events and not bool(self.allowed_parts.all()):
            rows = torch.arange(len(self.part), device=self.part.device)
            scale = temperature or 1.0  # greedy decoding has no odds to keep
            programs = logits[:, tok.program : tok.boundary].float() / scale  # (K, P) as sampled
            changes = torch.ones_like(mask[:, tok.program : tok.boundary])
            changes[rows, self.part] = ~self.announced  # a PROGRAM of the part in force changes nothing
            allowed = changes & self.allowed_parts[None, :]  # (K, P)
            every = programs.masked_fill(~changes, float("-inf")).logsumexp(-1)  # (K,)
            kept = programs.masked_fill(~allowed, float("-inf")).logsumexp(-1)  # (K,)
            lift = torch.where(torch.isfinite(kept), every - kept, torch.zeros_like(kept)) * scale  # (K,)
            logits = logits.clone()
            logits[:, tok.program : tok.boundary] += (lift[:, None] * allowed).to(logits.dtype)
        return logits.masked_fill(~mask, float("-inf"))

    def _mask_parts(self, mask) -> None:
        """Only the allowed parts' PROGRAM events (never the one in force, with valid_only), and
        no NOTE_ON while a part not allowed is in force."""
        tok = self.tok
        if not tok.program_events:
            return
        programs = self.allowed_parts[None, :].repeat(len(self.part), 1)  # (K, P)
        if self.valid_only:  # a PROGRAM of the part in force changes nothing (but the first announces it)
            programs[range(len(self.part)), self.part] &= ~self.announced
        mask[:, tok.program : tok.boundary] = programs
        mask[:, tok.note_on : tok.note_on + 128] &= self.allowed_parts[self.part][:, None]

    def advance(self, token) -> None:
        """Take in the (K,) events just drawn."""
        import torch

        tok = self.tok
        self._advance_clock(token)
        rows = torch.arange(len(token), device=token.device)
        on = token < tok.note_off
        rows_on, key_on = rows[on], token[on] + 128 * self.part[on]
        again = self.struck[rows_on, key_on] == self.now[on]  # struck twice at one instant: the decoder ignores it
        rows_on, key_on = rows_on[~again], key_on[~again]
        self.opened[rows_on, key_on] = self.now[rows_on]
        self.struck[rows_on, key_on] = self.now[rows_on]
        off = (token >= tok.note_off) & (token < tok.time_shift)
        self.opened[rows[off], token[off] - tok.note_off + 128 * self.part[off]] = -1

    def _advance_clock(self, token) -> None:
        """Move each sample's step by its TIME_SHIFT, and its part by its PROGRAM."""
        import torch

        tok = self.tok
        shift = (token >= tok.time_shift) & (token < tok.velocity)
        self.now += torch.where(shift, token - tok.time_shift + 1, torch.zeros_like(token))
        program = (token >= tok.program) & (token < tok.boundary)
        self.part = torch.where(program, token - tok.program, self.part)
        self.announced |= program


MidiTokenizer.rules_class = EventRules


def _capped_end(notes: np.ndarray, max_note: float) -> np.ndarray:
    """(N,) when each note stops sounding as encoded: its end, or the note cap."""
    return np.minimum(notes["end"], notes["start"] + max_note)


def split_at_silences(notes: np.ndarray, max_note: float, limit: float = MAX_SILENCE) -> tuple[list, list]:
    """(pieces, silences): the performance cut wherever nothing sounds for over `limit` seconds
    (notes sounding at most `max_note`, as they are encoded), and the length of each cut silence.

    Each piece after a cut starts at its first note; so does the first piece when its first note
    comes after more than `limit` seconds. Notes must be in time order (as `read_notes` gives)."""
    if not len(notes):
        return [notes], []
    end = np.maximum.accumulate(_capped_end(notes, max_note))  # (N,) when the notes so far have all ended
    gap = notes["start"] - np.concatenate([[0.0], end[:-1]])  # (N,) silence before each note
    cuts = np.flatnonzero(gap > limit)
    bounds = [0, *cuts[cuts > 0].tolist(), len(notes)]
    pieces = []
    for a, b in itertools.pairwise(bounds):
        piece = notes[a:b]
        if gap[a] > limit:  # starts after a long silence: at its first note
            piece = piece.copy()
            first = piece["start"][0]
            piece["start"] -= first
            piece["end"] -= first
        pieces.append(piece)
    return pieces, gap[cuts[cuts > 0]].tolist()
