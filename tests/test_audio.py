"""`seqgen sample --wav`: General MIDI instruments and drums with tinysoundfont and pretty_midi's
sound font, another font with --soundfont, and the sine waves where no synthesiser is installed."""

import importlib.util
import io
import sys
import time
import wave
from pathlib import Path

import numpy as np
import pytest

from seqgen import midi_io
from seqgen.midi_io import DRUMS, PROGRAM_NOTE_DTYPE, Renderer, audio, audio_renderer, read_performance, wav_bytes

from .conftest import invoke

ROOT = Path(__file__).resolve().parents[1]
MUSIC_MODEL = ROOT / "checkpoints" / "bach-chorales-lstm"  # a one-part model that ships with seqgen
QUARTET = ROOT / "corpora" / "string-quartets-sample" / "haydn-opus1no1-movement2.mid"
RATE = 44100
PIANO, ORGAN, VIOLIN, TRUMPET = 0, 19, 40, 56
KICK, SNARE, HI_HAT = 36, 38, 42

needs_tinysoundfont = pytest.mark.skipif(
    importlib.util.find_spec("tinysoundfont") is None,
    reason="tinysoundfont is not installed (pip install --no-deps tinysoundfont: see docs/music.md)")


def notes(*rows) -> np.ndarray:
    """(pitch, velocity, start, end, program) rows as a performance with its instruments."""
    return np.array(list(rows), dtype=PROGRAM_NOTE_DTYPE)


def band() -> np.ndarray:
    """Two instruments and drums: a piano chord, a violin line, and a bar of kick, snare and hi-hat."""
    return notes((60, 90, 0.0, 1.0, PIANO), (64, 90, 0.0, 1.0, PIANO), (67, 90, 0.0, 1.0, PIANO),
                 (72, 90, 0.0, 0.5, VIOLIN), (74, 90, 0.5, 1.0, VIOLIN),
                 (KICK, 110, 0.0, 0.1, DRUMS), (HI_HAT, 80, 0.25, 0.35, DRUMS), (SNARE, 110, 0.5, 0.6, DRUMS),
                 (HI_HAT, 80, 0.75, 0.85, DRUMS))


def mono(samples: np.ndarray) -> np.ndarray:
    return samples.mean(axis=1) if samples.ndim == 2 else samples


def spectrum(samples: np.ndarray, start: float = 0.0, seconds: float = 0.5) -> np.ndarray:
    """Magnitudes of the first `seconds` from `start` (1/seconds Hz a bin), normalised."""
    part = mono(samples)[int(start * RATE):int((start + seconds) * RATE)]
    magnitudes = np.abs(np.fft.rfft(part * np.hanning(len(part))))
    return magnitudes / (np.linalg.norm(magnitudes) or 1.0)


def centroid(samples: np.ndarray) -> float:
    """The spectral centroid (Hz): where a sound's energy sits; brighter sounds sit higher."""
    power = spectrum(samples) ** 2
    return float((np.fft.rfftfreq(int(0.5 * RATE), 1 / RATE)[:len(power)] * power).sum() / power.sum())


def near(samples: np.ndarray, hz: float, width: float = 15.0) -> float:
    """The share of the energy within `width` Hz of `hz`, in the first half second."""
    power = spectrum(samples) ** 2
    freqs = np.fft.rfftfreq(int(0.5 * RATE), 1 / RATE)[:len(power)]
    return float(power[np.abs(freqs - hz) < width].sum() / power.sum())


def decay(samples: np.ndarray) -> float:
    """How loud the sound still is 0.4 to 0.6 s after it starts, against its first 0.1 s (RMS)."""
    x = mono(samples)
    return float(np.sqrt(np.mean(x[int(0.4 * RATE):int(0.6 * RATE)] ** 2) / np.mean(x[int(0.02 * RATE):int(0.12 * RATE)] ** 2)))


@pytest.fixture(scope="module")
def font_renderer():
    if importlib.util.find_spec("tinysoundfont") is None:
        pytest.skip("tinysoundfont is not installed")
    return audio_renderer()


@needs_tinysoundfont
def test_tinysoundfont_plays_the_instruments_and_the_drums(font_renderer):
    assert font_renderer.engine == "tinysoundfont" and font_renderer.font.name == "TimGM6mb.sf2"
    samples, how = audio(band(), renderer=font_renderer)
    assert how == "tinysoundfont and TimGM6mb.sf2"
    assert samples.shape[1] == 2 and 2.0 <= len(samples) / RATE <= 2.1  # the piece, then a second of release
    assert np.abs(samples).max() > 0.01
    drums, _ = audio(band()[band()["program"] == DRUMS], renderer=font_renderer)
    assert np.abs(drums[:int(0.1 * RATE)]).max() > 0.01  # the kick sounds (the sine waves leave drums silent)
    sine, _ = audio(band()[band()["program"] == DRUMS], renderer=Renderer("sine"))
    assert not np.abs(sine).any()

    with wave.open(io.BytesIO(wav_bytes(samples))) as w:  # a 16-bit stereo WAV, peak at 90%
        assert (w.getnchannels(), w.getsampwidth(), w.getframerate()) == (2, 2, RATE)
        pcm = np.frombuffer(w.readframes(w.getnframes()), "<i2")
    assert np.abs(pcm).max() == pytest.approx(0.9 * 32767, abs=2)


@needs_tinysoundfont
def test_a_piano_note_and_a_drum_hit_are_not_sine_waves(font_renderer):
    middle_c = notes((60, 100, 0.0, 0.6, PIANO))
    piano, _ = audio(middle_c, renderer=font_renderer)
    sine, _ = audio(middle_c, renderer=Renderer("sine"))
    # A sine wave is all fundamental (261.6 Hz); a piano's energy spreads over its harmonics.
    assert near(sine, 261.6) > 0.95
    assert near(piano, 261.6) < 0.8 and sum(near(piano, 261.6 * k) for k in (2, 3, 4)) > 0.05
    snare, _ = audio(notes((SNARE, 110, 0.0, 0.2, DRUMS)), renderer=font_renderer)
    assert np.abs(snare).max() > 0.01 and centroid(snare) > 1000  # noise, bright: nothing like a pitched note


@needs_tinysoundfont
def test_each_program_plays_its_own_instrument(font_renderer):
    g4 = 440 * 2 ** (-2 / 12)
    sounds = {p: audio(notes((67, 100, 0.0, 0.6, p)), renderer=font_renderer)[0] for p in (PIANO, ORGAN, TRUMPET)}
    # Where the energy of the same note lies among its first ten harmonics: a piano's in the
    # fundamental, an organ's in the octave, a trumpet's in the third harmonic and above.
    harmonics = {p: np.array([near(s, g4 * k, 20) for k in range(1, 11)]) for p, s in sounds.items()}
    for p, h in harmonics.items():
        harmonics[p] = h / np.linalg.norm(h)
    for a, b in ((PIANO, ORGAN), (PIANO, TRUMPET), (ORGAN, TRUMPET)):
        assert float(harmonics[a] @ harmonics[b]) < 0.6, (a, b)
    assert decay(sounds[PIANO]) < 0.6 < 0.9 < decay(sounds[ORGAN])  # a struck string fades; an organ pipe holds
    # one-part notes play --program
    plain = np.array([(67, 100, 0.0, 0.6)], dtype=midi_io.NOTE_DTYPE)
    assert np.allclose(audio(plain, program=TRUMPET, renderer=font_renderer)[0], sounds[TRUMPET])


@needs_tinysoundfont
def test_more_programs_than_midi_channels_all_sound(font_renderer):
    # 20 programs and the drums, one note each a tenth of a second apart: 16 channels, so two passes.
    piece = notes(*[(60, 100, i * 0.1, i * 0.1 + 0.05, p) for i, p in enumerate([*range(20), DRUMS])])
    samples, _ = audio(piece, renderer=font_renderer)
    for i in range(21):
        window = samples[int(i * 0.1 * RATE):int((i * 0.1 + 0.05) * RATE)]
        assert np.abs(window).max() > 1e-3, i


@needs_tinysoundfont
def test_a_long_silence_costs_no_rendering_and_a_long_piece_is_cut(font_renderer, monkeypatch):
    apart = notes((60, 100, 0.0, 0.5, PIANO), (64, 100, 120.0, 120.5, PIANO))
    began = time.perf_counter()
    samples, _ = audio(apart, renderer=font_renderer)
    assert time.perf_counter() - began < 2.0
    assert len(samples) == int(np.ceil(121.5 * RATE))
    assert not samples[10 * RATE:119 * RATE].any() and np.abs(samples[120 * RATE:]).max() > 0.01

    monkeypatch.setattr(midi_io, "MAX_WAV_SECONDS", 60.0)
    samples, how = audio(apart, renderer=font_renderer)
    assert len(samples) == int(np.ceil(61.0 * RATE)) and "its first 60 s of 120" in how


@needs_tinysoundfont
def test_a_quartet_from_the_bundled_corpus_renders_each_part(font_renderer):
    performance = read_performance(QUARTET.read_bytes())
    opening = performance[performance["start"] < 5.0]
    programs = sorted(set(opening["program"].tolist()))
    assert len(programs) >= 3
    for p in programs:
        samples, _ = audio(opening[opening["program"] == p], renderer=font_renderer)
        assert np.abs(samples).max() > 0.01, p


# -- the command line ---------------------------------------------------------------------------------
def sample_wav(tmp_path, *args):
    return invoke("sample", MUSIC_MODEL, "--seconds", "1", "--seed", "1", "--out", tmp_path / "s.mid", "--wav", *args)


@needs_tinysoundfont
def test_sample_wav_renders_with_tinysoundfont_and_another_font(tmp_path):
    result = sample_wav(tmp_path, "--program", str(VIOLIN))
    assert result.exit_code == 0, result.output
    assert f"{tmp_path / 's.wav'}: rendered with tinysoundfont and TimGM6mb.sf2" in result.stderr
    with wave.open(str(tmp_path / "s.wav")) as w:
        assert w.getnchannels() == 2 and w.getnframes() > RATE
    mine = tmp_path / "mine.sf2"
    mine.write_bytes(midi_io.general_midi_font().read_bytes())
    result = sample_wav(tmp_path, "--soundfont", mine, "--force")
    assert result.exit_code == 0, result.output
    assert "rendered with tinysoundfont and mine.sf2" in result.stderr


@needs_tinysoundfont
@pytest.mark.parametrize("font, message", [
    ("missing.sf2", "missing.sf2: No such file or directory"),
    ("folder", "folder: a directory; --soundfont must be a regular file"),
    ("notes.sf2", "notes.sf2: not a SoundFont (an .sf2 file starts with a RIFF sfbk header)"),
    ("broken.sf2", "broken.sf2: not a SoundFont tinysoundfont can read"),
])
def test_a_bad_soundfont_is_one_line_before_any_sampling(tmp_path, font, message):
    (tmp_path / "folder").mkdir()
    (tmp_path / "notes.sf2").write_text("not a sound font\n")
    (tmp_path / "broken.sf2").write_bytes(b"RIFF\x10\x00\x00\x00sfbkLIST\x04\x00\x00\x00junk")
    result = sample_wav(tmp_path, "--soundfont", tmp_path / font)
    assert result.exit_code == 1
    assert result.stderr.count("\n") == 1 and result.stderr.startswith("Error: ") and message in result.stderr
    assert "Traceback" not in result.output and not (tmp_path / "s.mid").exists()  # nothing sampled


def test_soundfont_needs_wav(tmp_path):
    result = invoke("sample", MUSIC_MODEL, "--seconds", "1", "--out", tmp_path / "s.mid", "--soundfont", "x.sf2")
    assert result.exit_code == 2 and "--soundfont needs --wav" in result.stderr


def test_without_a_synthesiser_the_sine_waves_play_and_say_so(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "tinysoundfont", None)  # `import tinysoundfont` raises ImportError
    monkeypatch.setitem(sys.modules, "fluidsynth", None)
    assert audio_renderer().engine == "sine"
    result = sample_wav(tmp_path)
    assert result.exit_code == 0, result.output
    assert "rendered with sine waves, drums silent (pip install --no-deps tinysoundfont" in result.stderr
    with wave.open(str(tmp_path / "s.wav")) as w:
        assert w.getnchannels() == 1
    font = midi_io.general_midi_font()
    refused = sample_wav(tmp_path, "--force", "--soundfont", font)
    assert refused.exit_code == 1 and "--soundfont needs tinysoundfont" in refused.stderr
