"""MIDI files built inside the tests with pretty_midi."""

from __future__ import annotations

import io

import numpy as np
import pretty_midi


def midi_file(notes=(), *, drums=(), pedal=(), program=0, extra_instruments=()) -> bytes:
    """A MIDI file's bytes: `notes` and `drums` are (pitch, velocity, start, end) rows, `pedal`
    (time, value) sustain controller events on the first instrument."""
    pm = pretty_midi.PrettyMIDI()
    piano = pretty_midi.Instrument(program=program)
    piano.notes = [pretty_midi.Note(v, p, s, e) for p, v, s, e in notes]
    piano.control_changes = [pretty_midi.ControlChange(64, value, t) for t, value in pedal]
    pm.instruments.append(piano)
    for rows in extra_instruments:
        extra = pretty_midi.Instrument(program=48)
        extra.notes = [pretty_midi.Note(v, p, s, e) for p, v, s, e in rows]
        pm.instruments.append(extra)
    if drums:
        kit = pretty_midi.Instrument(program=0, is_drum=True)
        kit.notes = [pretty_midi.Note(v, p, s, e) for p, v, s, e in drums]
        pm.instruments.append(kit)
    buffer = io.BytesIO()
    pm.write(buffer)
    return buffer.getvalue()


def tune(transpose: int = 0, length: int = 24, step: float = 0.25) -> list[tuple]:
    """A small two-voice piece: a rising and falling melody over a held bass note per bar."""
    melody = [60, 62, 64, 65, 67, 65, 64, 62]
    rows = [(melody[i % 8] + transpose, 80 + 8 * (i % 3), i * step, (i + 1) * step) for i in range(length)]
    rows += [(48 + transpose, 64, bar * 8 * step, (bar + 1) * 8 * step) for bar in range(length // 8)]
    return rows


# -- hostile files: tiny files that describe enormous performances ------------------------------
def raw_midi(events, *, ticks_per_beat: int = 1, tempo: int | None = None) -> bytes:
    """A one-track MIDI file from (delta ticks, message) pairs, messages as mido.Message
    arguments; `tempo` (microseconds per beat) as a set_tempo at tick 0."""
    import mido

    track = mido.MidiTrack()
    if tempo is not None:
        track.append(mido.MetaMessage("set_tempo", tempo=tempo, time=0))
    for delta, (kind, note) in events:
        track.append(mido.Message(kind, note=note, velocity=64, time=delta))
    buffer = io.BytesIO()
    mido.MidiFile(ticks_per_beat=ticks_per_beat, tracks=[track]).save(file=buffer)
    return buffer.getvalue()


def years_gap_file() -> bytes:
    """52 bytes: 1 tick a beat at the slowest tempo (0xFFFFFF us a beat, 16.8 s a tick), and a
    gap of 9,999,990 ticks (under pretty_midi's 10^7-tick guard) between two notes: 5.3 years."""
    return raw_midi([(0, ("note_on", 60)), (1, ("note_off", 60)), (9_999_990, ("note_on", 62)),
                     (1, ("note_off", 62))], tempo=0xFFFFFF)


def days_gap_file() -> bytes:
    """45 bytes: the default tempo (0.5 s a tick at 1 tick a beat), a 58-day gap between two notes."""
    return raw_midi([(0, ("note_on", 60)), (1, ("note_off", 60)), (9_999_990, ("note_on", 62)),
                     (1, ("note_off", 62))])


def note_train(pitches, gap: int, length: int, *, ticks_per_beat: int, tempo: int) -> bytes:
    """A MIDI file of one note after another, built as bytes with numpy (mido takes 16 s for a
    million notes): each note sounds `length` ticks, the next starts `gap` ticks after it ends."""
    import struct

    assert 0 <= gap < 128 and 0 < length < 128
    pitches = np.asarray(pitches, dtype=np.uint8)
    notes = np.empty((len(pitches), 8), np.uint8)  # delta, NOTE_ON, pitch, velocity, delta, NOTE_OFF, pitch, 0
    notes[:] = [gap, 0x90, 0, 64, length, 0x80, 0, 0]
    notes[0, 0] = 0
    notes[:, 2] = notes[:, 6] = pitches
    tempo_event = b"\x00\xff\x51\x03" + tempo.to_bytes(3, "big")
    track = tempo_event + notes.tobytes() + b"\x00\xff\x2f\x00"
    return (b"MThd" + struct.pack(">IHHH", 6, 0, 1, ticks_per_beat)
            + b"MTrk" + struct.pack(">I", len(track)) + track)


def dense_file(notes: int = 120_000) -> bytes:
    """About 1 MB (8 bytes a note): notes 50 s apart (3 ticks of 16.8 s), each sounding one tick
    (held to the 10 s note cap), so every silence (40 s) is under the limit: one piece of about
    50 events a note."""
    return note_train(36 + np.arange(notes) % 48, 2, 1, ticks_per_beat=1, tempo=0xFFFFFF)


def many_notes_file(notes: int = 1_000_000) -> bytes:
    """`notes` short notes (8 MB), one every 62.5 ms (3 ticks of 20.8 ms), sounding 2 ticks: one
    piece of 17 hours."""
    return note_train(48 + np.arange(notes) % 24, 1, 2, ticks_per_beat=24, tempo=500_000)
