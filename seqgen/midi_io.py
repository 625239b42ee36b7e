"""MIDI files and the performances in them: the only module that imports pretty_midi and mido.

A performance is an array of notes (pitch, velocity, start and end in seconds), read from a file
once and normalised deliberately (see `read_notes`); tokenizers turn it into events and back.
This module also writes notes as a MIDI file, renders them as audio and draws them as a piano
roll.
"""

from __future__ import annotations

import dataclasses
import io
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .errors import SeqgenError
from .files import read_regular

NOTE_DTYPE = np.dtype([("pitch", np.int16), ("velocity", np.int16), ("start", np.float64), ("end", np.float64)])
NOTE_FIELDS = ("pitch", "velocity", "start", "end")
# Notes with their instrument: a General MIDI program (0-127), or DRUMS for the drum kit.
PROGRAM_NOTE_DTYPE = np.dtype([*NOTE_DTYPE.descr, ("program", np.int16)])
DRUMS = 128
SUSTAIN = 64  # the sustain pedal's MIDI controller number; values >= 64 mean "down"


def notes_array(rows=()) -> np.ndarray:
    """A structured array of notes from (pitch, velocity, start, end) rows."""
    return np.array([tuple(r) for r in rows], dtype=NOTE_DTYPE)


def sorted_notes(notes: np.ndarray) -> np.ndarray:
    return notes[np.lexsort((notes["pitch"], notes["start"]))] if len(notes) else notes


def resolve_overlaps(notes: np.ndarray) -> np.ndarray:
    """Notes of one pitch never overlap: a later note ends the earlier one where it starts, and two
    notes struck at the same instant become one (the longer, the louder). One channel of MIDI
    cannot hold two notes of one pitch at once, so this is the only faithful merge."""
    if len(notes) < 2:
        return notes
    notes = notes[np.lexsort((-notes["end"], notes["start"], notes["pitch"]))]
    same = notes["pitch"][1:] == notes["pitch"][:-1]
    unison = same & (notes["start"][1:] == notes["start"][:-1])
    if unison.any():
        keep = np.ones(len(notes), bool)
        keep[1:] = ~unison
        group = np.cumsum(keep) - 1  # each note's surviving representative
        loudest = np.zeros(keep.sum(), dtype=notes["velocity"].dtype)
        np.maximum.at(loudest, group, notes["velocity"])
        notes = notes[keep].copy()
        notes["velocity"] = loudest
        same = notes["pitch"][1:] == notes["pitch"][:-1]
    cut = same & (notes["start"][1:] < notes["end"][:-1])
    notes["end"][:-1][cut] = notes["start"][1:][cut]
    return notes


def _pretty_midi():
    import pretty_midi

    return pretty_midi


def read_performance(source, *, name: str | None = None) -> np.ndarray:
    """Every note in a MIDI file with its instrument (PROGRAM_NOTE_DTYPE; drums as DRUMS), in time
    order: the sustain pedal (CC64) of each instrument holds its released notes until the pedal
    comes up, as on a piano, and notes of zero or negative length are dropped (they never sound).
    Overlapping notes are left as they are: how to resolve them depends on which notes are one
    part (see `read_notes`). Raises SeqgenError naming the problem when the file cannot be read.
    """
    import mido

    pretty_midi = _pretty_midi()
    name = name or (str(source) if isinstance(source, (str, Path)) else "MIDI data")
    if isinstance(source, (bytes, bytearray)):
        source = io.BytesIO(source)
    try:
        with warnings.catch_warnings():  # mido and pretty_midi warn about harmless meta events
            warnings.simplefilter("ignore")
            midi = mido.MidiFile(filename=source) if isinstance(source, (str, Path)) else mido.MidiFile(file=source)
            if midi.ticks_per_beat & 0x8000:  # the division's top bit: frames per second, not ticks per beat
                raise SeqgenError(f"{name}: SMPTE time division (frames per second) is not supported; "
                                  "re-save the file with ticks per beat")
            # pretty_midi refuses files whose last tick is past 10^7 (its tick table would not fit
            # in memory), so a corrupt length cannot exhaust it.
            pm = pretty_midi.PrettyMIDI(mido_object=midi)
    except SeqgenError:
        raise
    except EOFError:
        raise SeqgenError(f"{name}: not a readable MIDI file (it ends too soon: truncated)") from None
    except Exception as e:  # mido and pretty_midi raise many types on corrupt files
        reason = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise SeqgenError(f"{name}: not a readable MIDI file ({reason})") from None
    parts = []
    for instrument in pm.instruments:
        notes = notes_array((n.pitch, n.velocity, n.start, n.end) for n in instrument.notes)
        notes = _sustain(notes, instrument.control_changes)
        part = np.zeros(len(notes), PROGRAM_NOTE_DTYPE)
        for field in NOTE_FIELDS:
            part[field] = notes[field]
        part["program"] = DRUMS if instrument.is_drum else instrument.program
        parts.append(part)
    notes = np.concatenate(parts) if parts else np.zeros(0, PROGRAM_NOTE_DTYPE)
    notes = notes[notes["end"] > notes["start"]]
    return notes[np.argsort(notes["start"], kind="stable")]


def one_part(notes: np.ndarray, *, keep_drums: bool = False) -> np.ndarray:
    """A performance's notes as one instrument's (NOTE_DTYPE): every instrument merged, drums
    only with `keep_drums`, notes of one pitch never overlapping (see `resolve_overlaps`)."""
    if not keep_drums:
        notes = notes[notes["program"] != DRUMS]
    merged = np.zeros(len(notes), NOTE_DTYPE)
    for field in NOTE_FIELDS:
        merged[field] = notes[field]
    return sorted_notes(resolve_overlaps(merged))


def read_notes(source, *, keep_drums: bool = False, name: str | None = None) -> np.ndarray:
    """One performance from a MIDI file as one instrument's notes: `one_part(read_performance())`."""
    return one_part(read_performance(source, name=name), keep_drums=keep_drums)


def family_of(program: int) -> str:
    """The General MIDI family of a program (pretty_midi's names: Piano, Bass, Strings, ...), or Drums."""
    return "Drums" if program == DRUMS else _pretty_midi().program_to_instrument_class(int(program))


def instrument_name(program: int) -> str:
    """A program's General MIDI name ("Acoustic Grand Piano"), or Drums."""
    return "Drums" if program == DRUMS else _pretty_midi().program_to_instrument_name(int(program))


def program_named(name: str) -> list[int] | None:
    """The programs a name means, in any case: a program number (0-127), "drums", a General MIDI
    family ("bass": its 8 programs) or instrument ("Electric Bass (finger)"); None if none."""
    from pretty_midi.constants import INSTRUMENT_CLASSES, INSTRUMENT_MAP

    key = name.strip().lower()
    if key.isdigit():
        return [int(key)] if int(key) < 128 else None
    if key in ("drums", "drum", "drum kit", "percussion"):
        return [DRUMS]
    families = [c.lower() for c in INSTRUMENT_CLASSES]
    if key in families:
        return list(range(families.index(key) * 8, families.index(key) * 8 + 8))
    names = [n.lower() for n in INSTRUMENT_MAP]
    return [names.index(key)] if key in names else None


def instrument_counts(notes: np.ndarray) -> dict:
    """What a performance (PROGRAM_NOTE_DTYPE) holds: its notes, its instruments (the drum kit
    counts as one) and its drum notes."""
    programs = np.unique(notes["program"])
    return {"notes": len(notes), "instruments": len(programs), "drum_notes": int((notes["program"] == DRUMS).sum())}


def hanging_notes(path: str | Path | bytes) -> int:
    """NOTE_ONs in a MIDI file that no NOTE_OFF ever ends: stuck notes, which ring until a player
    is reset. Counted on the raw messages, since readers such as pretty_midi quietly drop them."""
    import mido

    try:
        midi = mido.MidiFile(file=io.BytesIO(path)) if isinstance(path, bytes) else mido.MidiFile(str(path))
    except Exception as e:  # mido raises many types on corrupt files
        name = "MIDI data" if isinstance(path, bytes) else path
        raise SeqgenError(f"{name}: not a readable MIDI file ({e})") from None
    open_notes: dict[tuple[int, int], int] = {}
    for track in midi.tracks:
        for message in track:
            key = (getattr(message, "channel", 0), getattr(message, "note", 0))
            if message.type == "note_on" and message.velocity > 0:
                open_notes[key] = open_notes.get(key, 0) + 1
            elif message.type in ("note_off", "note_on") and open_notes.get(key):
                open_notes[key] -= 1
    return sum(open_notes.values())


def _sustain(notes: np.ndarray, control_changes) -> np.ndarray:
    """Extend every note released while the pedal is down to the moment the pedal comes up."""
    pedal = sorted((c.time, c.value >= 64) for c in control_changes if c.number == SUSTAIN)
    if not pedal or not len(notes):
        return notes
    intervals, down_at = [], None
    for t, down in pedal:
        if down and down_at is None:
            down_at = t
        elif not down and down_at is not None:
            intervals.append((down_at, t))
            down_at = None
    if down_at is not None:  # held to the end of the piece
        intervals.append((down_at, max(float(notes["end"].max()), down_at)))
    if not intervals:
        return notes
    downs, ups = np.array(intervals).T
    i = np.searchsorted(downs, notes["end"], side="right") - 1  # the last pedal press at or before each release
    held = (i >= 0) & (notes["end"] < ups[np.maximum(i, 0)])
    notes = notes.copy()
    notes["end"][held] = ups[i[held]]
    return notes


def midi_bytes(notes: np.ndarray, *, program: int = 0, tempo: float = 120.0) -> bytes:
    """A standard MIDI file of the notes: on one instrument (General MIDI `program`), or, for
    notes with their instruments (PROGRAM_NOTE_DTYPE), one track per program named by its General
    MIDI name, the drums on the drum channel."""
    pretty_midi = _pretty_midi()
    pm = pretty_midi.PrettyMIDI(initial_tempo=tempo)
    programs = notes["program"] if "program" in (notes.dtype.names or ()) else np.full(len(notes), program)
    for part in sorted(set(programs.tolist())):
        drums = part == DRUMS
        instrument = pretty_midi.Instrument(program=0 if drums else part, is_drum=drums, name=instrument_name(part))
        instrument.notes = [pretty_midi.Note(int(n["velocity"]), int(n["pitch"]), float(n["start"]), float(n["end"]))
                            for n in notes[programs == part]]
        pm.instruments.append(instrument)
    buffer = io.BytesIO()
    pm.write(buffer)
    return buffer.getvalue()


# -- audio: what --wav writes ---------------------------------------------------------------------
GENERAL_MIDI_FONT = "TimGM6mb.sf2"  # the General MIDI sound font that ships inside pretty_midi
MAX_SOUND_FONT = 2 << 30  # bytes of a --soundfont: the largest General MIDI fonts are a few hundred MB
MAX_WAV_SECONDS = 1200.0  # a WAV holds at most the first 20 minutes (212 MB of 16-bit stereo)
RELEASE_SECONDS = 1.0  # rendered after the last note ends: its release and the room's ring
SILENCE_BLOCK = 0.25  # seconds: with nothing held, a silent block of this length skips to the next note
DRUM_CHANNEL = 9  # MIDI channel 10: General MIDI's drum kit (bank 128)
SINE = "sine waves, drums silent (pip install --no-deps tinysoundfont for General MIDI instruments)"


@dataclass(frozen=True)
class Renderer:
    """How `seqgen sample --wav` renders notes: General MIDI instruments from a sound font with
    tinysoundfont (`data`: the font's bytes) or FluidSynth, or, with neither installed, pretty_midi's
    sine waves (no font)."""

    engine: str  # "tinysoundfont", "FluidSynth" or "sine"
    font: Path | None = None
    data: bytes | None = dataclasses.field(default=None, repr=False)

    def describe(self) -> str:
        return SINE if self.font is None else f"{self.engine} and {self.font.name}"


def general_midi_font() -> Path:
    return Path(_pretty_midi().__file__).with_name(GENERAL_MIDI_FONT)


def _engine() -> str | None:
    """The sound-font synthesiser installed here: tinysoundfont first (pip installs it, so the same
    sound on every machine), then FluidSynth (pyfluidsynth and the libfluidsynth library)."""
    try:
        import tinysoundfont  # noqa: F401

        return "tinysoundfont"
    except ImportError:
        pass
    try:
        import fluidsynth  # noqa: F401

        return "FluidSynth"
    except (ImportError, OSError, AttributeError):  # pyfluidsynth without its library fails as it loads
        return None


def audio_renderer(soundfont: Path | None = None) -> Renderer:
    """The renderer --wav uses, checked before anything is sampled: a --soundfont that is missing,
    not a regular file or not a SoundFont is a SeqgenError, and so is one that no synthesiser
    installed here can play (the sine waves play no font)."""
    engine = _engine()
    if engine is None:
        if soundfont is not None:
            raise SeqgenError("--soundfont needs tinysoundfont (pip install --no-deps tinysoundfont) "
                              "or FluidSynth to play it, and neither is installed")
        return Renderer("sine")
    font = soundfont if soundfont is not None else general_midi_font()
    data = read_regular(font, MAX_SOUND_FONT, "--soundfont")
    if data[:4] != b"RIFF" or data[8:12] != b"sfbk":
        raise SeqgenError(f"{font}: not a SoundFont (an .sf2 file starts with a RIFF sfbk header)")
    if engine == "FluidSynth":
        return Renderer(engine, font)
    try:
        _synth(data)
    except Exception as e:  # tinysoundfont's own words for a font it cannot parse
        raise SeqgenError(f"{font}: not a SoundFont tinysoundfont can read ({e})") from None
    return Renderer(engine, font, data)


def _synth(data: bytes, rate: int = 44100):
    import tinysoundfont

    synth = tinysoundfont.Synth(samplerate=rate)
    return synth, synth.sfload(data)


def audio(notes: np.ndarray, *, program: int = 0, tempo: float = 120.0, rate: int = 44100,
          renderer: Renderer | None = None) -> tuple[np.ndarray, str]:
    """(float samples, how they were made): General MIDI instruments with tinysoundfont (stereo,
    frames x 2) or FluidSynth (mono), else pretty_midi's sine waves (mono; drums silent). Notes with
    their instruments (PROGRAM_NOTE_DTYPE) each play their own, the drums the drum kit; others play
    `program`. At most the first MAX_WAV_SECONDS are rendered, and `how` says when a piece is cut."""
    renderer = renderer or audio_renderer()
    length = float(notes["end"].max()) if len(notes) else 0.0
    how = renderer.describe()
    if length > MAX_WAV_SECONDS:  # the WAV is its first MAX_WAV_SECONDS (and their release)
        notes = notes[notes["start"] < MAX_WAV_SECONDS].copy()
        notes["end"] = np.minimum(notes["end"], MAX_WAV_SECONDS)
        how += f"; its first {MAX_WAV_SECONDS:g} s of {length:.0f}"
    if renderer.engine == "tinysoundfont":
        assert renderer.data is not None
        programs = notes["program"] if "program" in (notes.dtype.names or ()) else np.full(len(notes), program)
        samples, missing = _tinysoundfont_audio(notes, programs, renderer.data, rate, min(length, MAX_WAV_SECONDS))
        return samples, how + (f"; not in the font, left silent: {', '.join(missing)}" if missing else "")
    pm = _pretty_midi().PrettyMIDI(io.BytesIO(midi_bytes(notes, program=program, tempo=tempo)))
    if renderer.engine == "FluidSynth":
        return pm.fluidsynth(rate, str(renderer.font)), how  # (fs, the font: one signature in pretty_midi 0.2.10 and 0.2.11)
    with np.errstate(invalid="ignore"):  # all silent (drums alone): pretty_midi divides 0 by 0
        return np.nan_to_num(pm.synthesize(fs=rate)), how


def _tinysoundfont_audio(notes: np.ndarray, programs: np.ndarray, data: bytes, rate: int,
                         seconds: float) -> tuple[np.ndarray, list[str]]:
    """(stereo float32 samples of `seconds` and the release after them, frames x 2; the
    instruments the font lacks, left silent): each program on a channel of its own and the drums on
    the drum channel, 15 programs a pass (a MIDI synthesiser has 16 channels), the passes added."""
    if not len(notes):
        return np.zeros((0, 2), np.float32), []
    out = np.zeros((int(np.ceil((seconds + RELEASE_SECONDS) * rate)), 2), np.float32)
    melodic = sorted(set(programs.tolist()) - {DRUMS})
    passes = [melodic[i:i + 15] for i in range(0, len(melodic), 15)] or [[]]
    if DRUMS in programs:
        passes[0].append(DRUMS)
    missing = []
    for these in passes:
        synth, sfid = _synth(data, rate)
        free = iter(c for c in range(16) if c != DRUM_CHANNEL)
        channel_of = {}
        for part in these:
            drums = part == DRUMS
            channel = DRUM_CHANNEL if drums else next(free)
            try:  # tinysoundfont falls back to bank 0's preset of that number, and for drums to the first kit
                synth.program_select(channel, sfid, 0, 0 if drums else part, is_drums=drums)
                channel_of[part] = channel
            except RuntimeError:  # a font that is not General MIDI
                missing.append(instrument_name(part))
        mine = np.isin(programs, list(channel_of))
        _play(synth, notes[mine], np.array([channel_of[p] for p in programs[mine].tolist()], np.int64), out, rate)
    return out, missing


def _play(synth, notes: np.ndarray, channels: np.ndarray, out: np.ndarray, rate: int) -> None:
    """Adds the notes, played on `synth`, into `out`: the samples up to each note-on or note-off,
    then the event (an instant's note-offs before its note-ons: a pitch struck again). Rendering
    costs the time that sounds: once nothing is held and the releases have died away, the silence
    up to the next note is skipped."""
    starts = np.round(notes["start"] * rate).astype(np.int64)
    ends = np.maximum(np.round(notes["end"] * rate).astype(np.int64), starts + 1)  # every note sounds
    frames = np.concatenate([ends, starts])
    order = np.lexsort((np.repeat([0, 1], len(notes)), frames))  # by time, the note-offs first
    block = max(1, int(SILENCE_BLOCK * rate))
    cursor, held = 0, 0
    for i in [*order.tolist(), None]:
        until = len(out) if i is None else int(frames[i])
        while cursor < until:
            n = min(until - cursor, block)
            chunk = np.frombuffer(synth.generate(n), np.float32).reshape(n, 2)
            out[cursor:cursor + n] += chunk
            cursor += n
            if held == 0 and not chunk.any():  # silent, with nothing held: so until the next note-on
                cursor = until
        if i is None:
            return
        note = i % len(notes)
        if i < len(notes):
            synth.noteoff(int(channels[note]), int(notes["pitch"][note]))
            held -= 1
        else:
            synth.noteon(int(channels[note]), int(notes["pitch"][note]), int(notes["velocity"][note]))
            held += 1


def wav_bytes(samples: np.ndarray, rate: int = 44100) -> bytes:
    """A 16-bit WAV file of float samples (mono, or frames x channels), peak-normalised."""
    import wave

    peak = float(np.abs(samples).max()) if samples.size else 0.0
    pcm = (samples / peak * 0.9 * 32767 if peak > 0 else samples).astype("<i2")
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as w:
        w.setnchannels(1 if samples.ndim == 1 else samples.shape[1])
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(pcm.tobytes())
    return buffer.getvalue()


def matplotlib_pyplot():
    try:
        import matplotlib

        matplotlib.use("Agg")  # files only: no display needed
        import matplotlib.pyplot as plt
    except ImportError:
        raise SeqgenError("--plot needs matplotlib: pip install matplotlib (or seqgen[plot])") from None
    return plt


def piano_roll_png(notes: np.ndarray, title: str = "") -> bytes:
    """A piano-roll picture of the notes (needs matplotlib)."""
    plt = matplotlib_pyplot()
    fig, ax = plt.subplots(figsize=(12, 4), dpi=100)
    if "program" in (notes.dtype.names or ()):  # a colour per instrument, named in a legend
        programs = sorted(set(notes["program"].tolist()))
        for i, part in enumerate(programs):
            colour = plt.cm.tab10(i % 10)
            these = notes[notes["program"] == part]
            for n in these:
                ax.add_patch(plt.Rectangle((n["start"], n["pitch"] - 0.4), n["end"] - n["start"], 0.8, color=colour,
                                           alpha=0.4 + 0.6 * float(n["velocity"]) / 127))
            ax.plot([], [], color=colour, linewidth=6, label=instrument_name(part))
        ax.legend(loc="upper right", fontsize="small")
    else:  # one instrument: colour by velocity
        for pitch, velocity, start, end in notes.tolist():
            ax.add_patch(plt.Rectangle((start, pitch - 0.4), end - start, 0.8, color=plt.cm.viridis(velocity / 127)))
    low, high = (int(notes["pitch"].min()), int(notes["pitch"].max())) if len(notes) else (60, 72)
    ax.set_xlim(0, max(float(notes["end"].max()) if len(notes) else 1.0, 1.0))
    ax.set_ylim(low - 2, high + 2)
    ax.set_xlabel("seconds")
    ax.set_ylabel("MIDI pitch")
    ax.set_title(title)
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    plt.close(fig)
    return buffer.getvalue()
