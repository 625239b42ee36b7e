"""The Python API: a trained model, to generate from and score with, as the CLI does.

    import seqgen

    m = seqgen.load("checkpoints/python-docs-lstm")
    texts = m.generate(prime="The ", length=200, num_samples=4, temperature=0.8, seed=1)
    m.score("Some held-out text.")  # {'loss': ..., 'bpc': ..., 'perplexity': ..., 'tokens': ...}

A MIDI model's `generate` returns `pretty_midi.PrettyMIDI` objects. `seqgen sample` and `seqgen
eval` call the same methods (`text_samples`, `performances`, `score_ids`) and add the files,
streams and reports around them. Errors are `SeqgenError`s with the one line the CLI prints.
"""

from __future__ import annotations

import io
import math
import numbers
import sys
from functools import partial
from pathlib import Path
from typing import Any, Callable, cast

import numpy as np

from . import checkpoint
from .cache import Cache
from .config import MAX_SAMPLE_TOKENS, SAMPLE_DEFAULTS, SEED, derived_seed
from .controls import OPTIONS as CONTROL_OPTIONS
from .corpora import LABELS, MIDI, LineEnds, check_kind, load_corpus
from .errors import SeqgenError
from .files import MAX_PRIME, read_regular
from .hardware import pick_device
from .sample import generate
from .tokenizers import MusicTokenizer, TextTokenizer


def load(path: str | Path, device: str = "cpu") -> Model:
    """The model of a checkpoint file or run directory (its best checkpoint), on `device`
    ("cpu", "cuda", "mps" or "auto")."""
    net, tokenizer, ckpt = checkpoint.load(Path(path))
    net.to(pick_device(device))
    return Model(net, tokenizer, ckpt)


class Model:
    """A trained model with its tokenizer: `generate` samples from it, `score` measures it."""

    def __init__(self, net, tokenizer, ckpt):
        self.net, self.tokenizer, self.checkpoint = net, tokenizer, ckpt

    @property
    def kind(self) -> str:
        """What it reads and writes: "text" or "midi"."""
        return self.tokenizer.reads

    def __repr__(self) -> str:
        c = self.net.config
        return f"<seqgen.Model {self.kind}, {c.layers}-layer {c.cell.upper()} {c.hidden}, from {self.checkpoint.path}>"

    # -- generating --------------------------------------------------------------------------
    def generate(self, prime: str | None = None, length: int | None = None, *, num_samples: int = 1,
                 temperature: float = SAMPLE_DEFAULTS["temperature"], top_k: int | None = None,
                 top_p: float | None = None, seed: int | None = None, stop: str | None = None,
                 continuation_only: bool = False, cache: Cache | None = None, **midi: Any) -> list:
        """`num_samples` samples: strings for a text model (the prime, unless
        `continuation_only`, then up to `length` characters, ending early after `stop`), or
        `pretty_midi.PrettyMIDI`s for a MIDI model, which takes `seconds`, `primer` (a MIDI file's
        path or bytes), `primer_seconds`, `primer_pitches`, `instruments`, `program` and `tempo`
        as `seqgen sample` does, in place of `prime` and `stop`, and a model trained with
        controls `density` (notes a second), `key` ("D minor") or `pitch_classes` (12 weights
        from C to B). `cache`: draw from the model mixed with a continuous cache of its recent
        states (seqgen.cache.Cache(size, theta, lam), as `seqgen sample --cache`)."""
        check_sampling(num_samples=num_samples, length=length, seconds=midi.get("seconds"), temperature=temperature,
                       top_k=top_k, top_p=top_p, seed=seed)
        check_cache(cache)
        if self.kind != MIDI:
            if midi:
                raise SeqgenError(f"{', '.join(sorted(midi))}: not options of a text model")
            head, texts, _ = self.text_samples(prime, length, num_samples=num_samples, temperature=temperature,
                                               top_k=top_k, top_p=top_p, seed=seed, stop=stop, cache=cache)
            return [("" if continuation_only else head) + text for text in texts]
        if prime is not None or stop is not None:
            raise SeqgenError("a MIDI model takes primer= (a MIDI file) or primer_pitches=, not prime= or stop=")
        import pretty_midi

        from .midi_io import midi_bytes

        unknown = sorted(midi.keys() - MIDI_OPTIONS)
        if unknown:
            raise SeqgenError(f"{unknown[0]}: not an option of a MIDI model's generate ({', '.join(sorted(MIDI_OPTIONS))})")
        program, tempo = midi.pop("program", 0), midi.pop("tempo", 120.0)
        if type(program) is not int or not 0 <= program <= 127 or not 1 <= tempo <= 1000:
            raise SeqgenError("program is a General MIDI program, 0 to 127, and tempo 1 to 1000 beats a minute")
        asked = {option: midi.pop(option) for option in CONTROL_OPTIONS if option in midi}
        pieces = self.performances(length=length, num_samples=num_samples, temperature=temperature, top_k=top_k,
                                   top_p=top_p, seed=seed, continuation_only=continuation_only, controls=asked,
                                   cache=cache, **midi)
        return [pretty_midi.PrettyMIDI(io.BytesIO(midi_bytes(notes, program=program, tempo=tempo)))
                for notes, _ in pieces]

    def text_samples(self, prime: str | None, length: int | None, *, num_samples: int, temperature: float,
                     top_k: int | None, top_p: float | None, seed: int | None, stop: str | None,
                     on_step: Callable | None = None, cache: Cache | None = None) -> tuple[str, list[str], list[dict]]:
        """(the prime as the model read it, each sample's continuation, a report each)."""
        tokenizer = cast(TextTokenizer, self.tokenizer)
        length = int(length or SAMPLE_DEFAULTS["length"])
        if prime:
            prime_ids = self.ids_of(prime, "--prime")
            shown = tokenizer.decode(prime_ids)  # as the model read it (line ends and all)
        else:
            # No prime: start as if at the beginning of a line, and show only what the model writes.
            start = "\n" if not tokenizer.unknown("\n") else tokenizer.chars[0]
            prime_ids, shown = tokenizer.encode(start), ""
        stop_ids = self.ids_of(stop, "--stop").tolist() if stop else []
        check_size(num_samples, length)
        rows = generate(self.net, prime_ids.tolist(), length, num_samples=num_samples, temperature=temperature,
                        top_k=top_k, top_p=top_p, seed=seed, stop=stop_ids, on_step=on_step, cache=cache)
        reports = [{"tokens": len(row), "stopped": len(row) < length} for row in rows]  # only a stop ends one early
        return shown, [tokenizer.decode(row) for row in rows], reports

    def ids_of(self, text: str, option: str = "text") -> np.ndarray:
        """A text model's ids of `text`, read as its corpus was; one SeqgenError naming the
        characters it has no id for."""
        tokenizer = cast(TextTokenizer, self.tokenizer)
        if tokenizer.unknown("\r"):  # CRLF and CR line ends as the model read its corpus: as \n
            text = LineEnds()(text)
        unknown = tokenizer.unknown(text)
        if unknown:
            hint = ("; this model was trained on text with CR line ends (\\r), and writes them where lines end: "
                    "give \\r for a line end (in bash, $'\\r')") if "\n" in unknown and not tokenizer.unknown("\r") else ""
            raise SeqgenError(f"{option} has characters not in the model's vocabulary: {''.join(unknown)!r}{hint}")
        return tokenizer.encode(text)

    def performances(self, *, primer=None, primer_seconds: float | None = None, primer_pitches=None,
                     length: int | None = None, seconds: float | None = None, num_samples: int = 1,
                     temperature: float = SAMPLE_DEFAULTS["temperature"], top_k: int | None = None,
                     top_p: float | None = None, seed: int | None = None, continuation_only: bool = False,
                     instruments: str | None = None, valid_only: bool = True,
                     controls: dict | None = None, cache: Cache | None = None) -> list[tuple[np.ndarray, dict]]:
        """(notes, report) for each of `num_samples` MIDI samples: the primer's piece (a file's
        path or bytes, its first `primer_seconds`) or chord (`primer_pitches`) continued for
        `seconds` (or `length` events), each by the instruments `ensembles_for` gives it, and, in
        a model trained with controls, told the `controls` asked for (a sampling option -> its
        value: {"density": 4}); the controls not asked for each sample draws from the training
        data's."""
        import torch

        from .midi_io import notes_array

        tokenizer = cast(MusicTokenizer, self.tokenizer)
        # The prime, announcing who plays (a tokenizer of several parts: see MultitrackTokenizer.header).
        if primer is not None:
            notes, until = primer_notes(tokenizer, primer, primer_seconds)
            prime_for = partial(tokenizer.encode, notes, until=until)
        elif primer_pitches:
            prime_for = partial(tokenizer.chord, primer_pitches)
        else:
            prime_for = partial(tokenizer.encode, notes_array())  # PIECE: the start of a piece
        if seconds is None and length is None:
            seconds = SAMPLE_DEFAULTS["seconds"]
        if length is None:
            length = int(cast(float, seconds) * 200) + 100  # a cap far above the ~20 events a second of real music
        check_size(num_samples, length)
        prime_ids = prime_for(ensemble=None)
        primer_end = tokenizer.seconds(prime_ids)
        primer_onsets = set(_onsets(tokenizer.decode(prime_ids)[0]))
        # Each sample's ensemble, holding the primer's instruments (a chord is played by the
        # ensemble's own); the samples of one ensemble are drawn together, from one prime, the
        # first group with `seed` itself (so a model of one part samples as it always has).
        primer_ids = prime_ids if primer is not None else prime_ids[:0]
        ensembles = tokenizer.ensembles_for(primer_ids, num_samples, instruments, seed)
        primed = set(tokenizer.played(primer_ids).tolist())
        asked = {option: value for option, value in (controls or {}).items() if value is not None}
        told = None if not tokenizer.control_size and not asked else tokenizer.control_inputs(
            asked, num_samples, seed, primer_ids if len(primer_ids) else None)
        primes: list[list[int]] = [[]] * num_samples
        rows: list[list[int]] = [[]] * num_samples
        for n, ensemble in enumerate(dict.fromkeys(ensembles)):
            members = [i for i, e in enumerate(ensembles) if e == ensemble]
            announced = None if ensemble is None else sorted(ensemble | primed)
            prime = (prime_ids if ensemble is None else prime_for(ensemble=announced)).tolist()
            drawn = generate(self.net, prime, length, num_samples=len(members), temperature=temperature, top_k=top_k,
                             top_p=top_p, seed=seed if seed is None or n == 0 else derived_seed(seed, n),
                             rules=tokenizer.rules(valid_only, ensemble), token_time=tokenizer.token_seconds,
                             max_time=seconds, controls=None if told is None else torch.from_numpy(told[members]),
                             cache=cache)
            for i, row in zip(members, drawn):
                primes[i], rows[i] = prime, row
        pieces = []
        for i, (prime, row) in enumerate(zip(primes, rows)):
            notes, decoded = tokenizer.decode([*prime, *row])
            if continuation_only:  # the notes the primer did not strike, moved to the start of the file
                fresh = [onset not in primer_onsets for onset in _onsets(notes)]
                notes = notes[np.array(fresh, dtype=bool)]
                notes["start"] -= primer_end
                notes["end"] -= primer_end
            report = {"events": len(row), "notes": len(notes),
                      "seconds": round(float(notes["end"].max()) if len(notes) else 0.0, 3),
                      "ignored_events": decoded.ignored}
            if "program" in (notes.dtype.names or ()):
                from .midi_io import instrument_name

                report["instruments"] = [instrument_name(p) for p in np.unique(notes["program"])]
            if told is not None:
                report["controls"] = tokenizer.controls_told(told[i])
            pieces.append((notes, report))
        return pieces

    # -- scoring -----------------------------------------------------------------------------
    def score(self, data: str | Path, *, batch_size: int = 64, seq_len: int | None = None,
              cache: Cache | None = None) -> dict:
        """{"loss" (nats per token), "bpc" or "bits_per_event", "perplexity", "tokens"} of a text
        model on `data` (a string of text), or of any model on a corpus (`Path`: a file or
        folder, as `seqgen eval` reads it); with `cache`, of the model and a continuous cache of
        its recent states (seqgen.cache.Cache(size, theta, lam))."""
        tokenizer = self.tokenizer
        check_cache(cache)
        for name, value in (("batch_size", batch_size), ("seq_len", seq_len)):
            if not (value is None and name == "seq_len" or _number(value, 1, integer=True)):
                raise SeqgenError(f"{name}={value!r}: a whole number, at least 1")
        if isinstance(data, str) and self.kind != MIDI:
            ids = self.ids_of(data)
        elif isinstance(data, (str, Path)):
            check_kind(str(data), tokenizer.reads, f"this is a {LABELS[tokenizer.reads]} model")
            corpus = load_corpus(str(data), tokenizer.reads, **tokenizer.reading())
            ids = corpus.all_ids(tokenizer)
        else:
            raise SeqgenError(f"score() takes a string of text or a corpus path, not {type(data).__name__}")
        return self.score_ids(ids, batch_size, seq_len, cache)

    def score_ids(self, ids, batch_size: int, seq_len: int | None, cache: Cache | None = None) -> dict:
        from .train import evaluate

        if len(ids) < 2:
            raise SeqgenError("nothing to score: at least two tokens are needed")
        # A model trained with controls is told the data's own, as in training's validation.
        controls = self.tokenizer.controls(ids) if self.tokenizer.control_size else None
        loss, tokens = evaluate(self.net, ids, batch_size, seq_len or saved_seq_len(self.checkpoint), controls=controls,
                                cache=cache)
        if not math.isfinite(loss):  # finite weights can still overflow: not a score to report
            raise SeqgenError(f"{self.checkpoint.path}: the model's loss on this text is {loss} (its outputs overflow)")
        result = {"loss": loss, bits_name(self.tokenizer): loss / math.log(2), "perplexity": perplexity(loss), "tokens": tokens}
        return result if cache is None else result | {"cache": {"size": cache.size, "theta": cache.theta, "lambda": cache.lam}}


MIDI_OPTIONS = frozenset({"seconds", "primer", "primer_seconds", "primer_pitches", "instruments", "valid_only",
                          "program", "tempo", *CONTROL_OPTIONS})


def _number(x, low, high=math.inf, integer=False) -> bool:
    """Whether x is a finite number (a whole one if `integer`; NumPy's too, never a bool) in [low, high]."""
    return isinstance(x, numbers.Integral if integer else numbers.Real) and not isinstance(x, bool) \
        and math.isfinite(x) and low <= x <= high


def check_sampling(*, num_samples, length, seconds, temperature, top_k, top_p, seed) -> None:
    """The settings of a sample as the CLI bounds them (it checks them itself, as options); one
    SeqgenError for the first out of range."""
    checks = [("num_samples", num_samples, _number(num_samples, 1, integer=True), "a count of at least 1"),
              ("length", length, length is None or _number(length, 1, integer=True), "a count of at least 1"),
              ("seconds", seconds, seconds is None or _number(seconds, 1e-9), "a number of seconds above 0"),
              ("temperature", temperature, _number(temperature, 0), "0 (greedy) or more"),
              ("top_k", top_k, top_k is None or _number(top_k, 1, integer=True), "a count of at least 1"),
              ("top_p", top_p, top_p is None or _number(top_p, 1e-12, 1), "above 0, at most 1"),
              ("seed", seed, seed is None or _number(seed, SEED[0], SEED[1], integer=True), f"an integer {SEED[0]}..{SEED[1]}")]
    for name, value, ok, expected in checks:
        if not ok:
            raise SeqgenError(f"{name} = {value!r:.40}: expected {expected}")


def check_cache(cache) -> None:
    if cache is not None and not isinstance(cache, Cache):
        raise SeqgenError(f"cache= takes a seqgen.cache.Cache(size, theta, lam), not {type(cache).__name__}")


def check_size(num_samples: int, length: int) -> None:
    if num_samples * length > MAX_SAMPLE_TOKENS:
        raise SeqgenError(f"{num_samples:,} samples of up to {length:,} tokens is more than one command generates "
                          f"({MAX_SAMPLE_TOKENS:,} tokens); split the job with --shard I/N")


def primer_notes(tokenizer: MusicTokenizer, source, seconds: float | None) -> tuple[np.ndarray, float]:
    """(the notes of a primer a sample continues, the seconds of them to encode): the piece it
    starts with (up to its first silence of over MAX_SILENCE), and of that the first `seconds`,
    by default SAMPLE_DEFAULTS["primer_seconds"]: a user continuing a piece means its opening,
    not an hour-long file's every event. Each cut is said on stderr. `source`: a path or bytes."""
    from .tokenizers.midi_events import MAX_SILENCE

    name = "primer" if isinstance(source, bytes) else str(source)
    data = source if isinstance(source, bytes) else read_regular(Path(source), MAX_PRIME, "--primer")
    pieces, silences = tokenizer.split(tokenizer.read_notes(data, name))
    notes = pieces[0]
    if silences:
        print(f"{name}: using its first {tokenizer.duration(notes):.1f} s, up to a silence of {silences[0]:,.0f} s "
              f"(a silence of over {MAX_SILENCE:g} s ends a piece)", file=sys.stderr)
    if seconds is None:
        seconds = SAMPLE_DEFAULTS["primer_seconds"]
        if tokenizer.duration(notes) > seconds:
            print(f"{name}: using its first {seconds:g} s of {tokenizer.duration(notes):.1f}; "
                  "--primer-seconds S uses more or less", file=sys.stderr)
    return notes, seconds


def _onsets(notes) -> list[tuple]:
    """Each note's (instrument if any, pitch, start): what tells a primer's notes from new ones."""
    keys = [f for f in ("program", "pitch", "start") if f in (notes.dtype.names or ())]
    return list(zip(*(notes[k].tolist() for k in keys)))


def bits_name(tokenizer) -> str:
    """What a score in bits is called for this tokenizer's unit: "bpc", or "bits_per_event"."""
    return "bpc" if tokenizer.unit == "char" else f"bits_per_{tokenizer.unit}"


def perplexity(loss: float) -> float:
    return math.exp(loss) if loss < 700 else math.inf  # exp overflows a float beyond 709


def saved_seq_len(ckpt) -> int:
    """The window length the model was trained with (eval's default): the one training setting a
    command other than a resume reads, so the only one checked here."""
    value = ckpt.meta.get("train", {}).get("seq_len", 128)  # a dict: checkpoint.read checks that much
    if type(value) is not int or value < 1:
        raise SeqgenError(f"{ckpt.path}: bad checkpoint metadata (train: seq_len = {value!r:.40}); give --seq-len")
    return value
