"""MIDI files built inside the tests with pretty_midi."""

from __future__ import annotations

import io

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
