"""Controls: their values from the data, what sampling options ask for, the model reading them,
and a model that is steered by them."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from seqgen.config import MidiConfig, ModelConfig
from seqgen.controls import ControlSet, Timeline
from seqgen.controls.density import Density, feature
from seqgen.controls.key import KEYS, Key, profile, scale
from seqgen.errors import SeqgenError
from seqgen.midi_io import notes_array
from seqgen.model import RNNLM, parameter_shapes
from seqgen.tokenizers import MidiTokenizer, MultitrackTokenizer, tokenizer_from_dict

from .conftest import invoke
from .midi_helpers import midi_file


def timeline(times, notes, end, pitched=None):
    """notes: (pitch, start, stop) rows."""
    pitch, start, stop = (np.array(c, dtype=float) for c in zip(*notes))
    return Timeline(np.array(times, float), end, start, stop, pitch.astype(int),
                    np.ones(len(notes), bool) if pitched is None else np.array(pitched))


def test_density_counts_the_onsets_of_the_next_three_seconds():
    line = timeline([0, 1, 5, 5.9], [(60, 0, 1), (62, 0.5, 1), (64, 1, 2), (65, 2, 3), (67, 2.5, 3), (69, 5, 6)], 6.0)
    values = ControlSet("density").values(line)
    # [0, 3): 5 onsets; [1, 4): 3; at 5 one onset in the 1 s left; at 5.9 none, over at least 1 s
    assert values == pytest.approx(feature([5 / 3, 1.0, 1.0, 0.0]), abs=1e-6)
    assert values[1].argmax() == 1 and values[0].argmax() == 2  # closest to 1 and to 2 notes a second


def test_key_shares_the_sounding_time_of_the_next_five_seconds():
    line = timeline([0, 5.5, 7], [(60, 0, 2), (64, 1, 6), (36, 0, 3)], 7.0, pitched=[True, True, False])
    shares = ControlSet("key").values(line) / 12  # read as shares times 12
    assert shares[0, 0] == pytest.approx(1 / 3) and shares[0, 4] == pytest.approx(2 / 3)  # C 2 s, E 4 s; no drum
    assert shares[1, 4] == pytest.approx(1.0)
    assert shares[2] == pytest.approx(np.full(12, 1 / 12))  # nothing sounds: even shares
    assert shares.sum(1) == pytest.approx(np.ones(3))


@pytest.mark.parametrize("name, tonic, pitch_classes", [
    ("D minor", 2, (0, 2, 4, 5, 7, 9, 10)), ("Bb", 10, (0, 2, 3, 5, 7, 9, 10)), ("bm", 11, (1, 2, 4, 6, 7, 9, 11)),
    ("C#m", 1, (1, 3, 4, 6, 8, 9, 11)), ("f# Major", 6, (1, 3, 5, 6, 8, 10, 11)), ("CM", 0, (0, 2, 4, 5, 7, 9, 11)),
    ("Cm", 0, (0, 2, 3, 5, 7, 8, 10))])
def test_keys_are_their_scales_with_the_tonic_triad_heavier(name, tonic, pitch_classes):
    assert scale(name) == pitch_classes
    weights = profile(name)
    assert weights.sum() == pytest.approx(1) and set(np.flatnonzero(weights)) == set(pitch_classes)
    assert weights[tonic] == weights.max() > weights.min()
    assert not np.allclose(profile("D minor"), profile("F major"))  # relative keys: one scale, not one key
    assert Key().explain(Key().parse("key", name)) == Key().explain(12 * profile(name))  # a report names the key
    assert Key().explain(12 * profile("D minor")) == "D minor" and Key().explain(12 * profile("F major")) == "F major"


def test_pitch_classes_are_twelve_weights_and_densities_are_in_range():
    weights = np.array([2, 0, 1, 0, 1, 1, 0, 1, 0, 1, 0, 1])
    assert Key().parse("pitch_classes", "2,0,1,0,1,1,0,1,0,1,0,1") == pytest.approx(weights * 12 / 8)
    assert Key().parse("pitch_classes", (weights * 1e307).tolist()) == pytest.approx(weights * 12 / 8)  # no overflow
    assert Key().parse("key", "D minor") == pytest.approx(12 * profile("D minor"))
    for option, bad in [("key", "H minor"), ("key", "C lydian"), ("key", ""), ("key", 5), ("pitch_classes", "1,2,3"),
                        ("pitch_classes", "1,1,1,1,1,1,1,1,1,1,1,-1"), ("pitch_classes", "0,0,0,0,0,0,0,0,0,0,0,0"),
                        ("pitch_classes", "a,b"), ("pitch_classes", "C major"), ("pitch_classes", 5),
                        ("pitch_classes", [1.0] * 11 + [float("inf")])]:
        with pytest.raises(SeqgenError):
            Key().parse(option, bad)
    assert Density().explain(Density().parse("density", "4")) == pytest.approx(4, rel=0.02)
    assert Density().explain(Density().parse("density", 0.7)) == pytest.approx(0.7, rel=0.05)
    for bad in ("0", "0.1", "200", "nan", "fast", None):
        with pytest.raises(SeqgenError, match="from 0.25 to 128"):
            Density().parse("density", bad)


def test_a_control_set_names_its_controls_and_asks_for_what_it_lacks():
    controls = ControlSet(" Key, density,key")
    assert str(controls) == "density,key" and controls.size == 20  # one order, whatever order they are named in
    with pytest.raises(SeqgenError, match="unknown control 'tempo'"):
        ControlSet("density,tempo")
    draws = np.tile(np.arange(20, dtype=np.float32), (3, 1))
    told = controls.inputs({"density": "4"}, draws, 2, seed=1)
    assert told[:, 8:] == pytest.approx(draws[:2, 8:]) and told[:, :8] == pytest.approx(feature([4.0, 4.0]))
    assert controls.explain(told[0])["density"] == pytest.approx(4, rel=0.02)
    with pytest.raises(SeqgenError, match="give --key or --pitch-classes, not both"):
        controls.inputs({"key": "C", "pitch_classes": "1,0,1,0,1,1,0,1,0,1,0,1"}, draws, 1, seed=1)
    with pytest.raises(SeqgenError, match="give --density"):
        controls.inputs({"key": "C"}, draws[:0], 2, seed=1)
    with pytest.raises(SeqgenError, match="--density needs a model trained with --control density"):
        ControlSet("key").inputs({"density": "4"}, draws[:, :12], 1, seed=1)


@pytest.mark.parametrize("cls", [MidiTokenizer, MultitrackTokenizer])
def test_a_tokenizer_computes_controls_piece_by_piece_and_after_transposition(cls):
    tokenizer = cls(cls.config_class(control="density,key"))
    notes = notes_array([(60 + 2 * (i % 5), 80, 0.5 * i, 0.5 * i + 0.4) for i in range(20)])
    if cls is MultitrackTokenizer:
        notes = tokenizer.performance(_with_program(notes))[0]
    ids, up = tokenizer.encode(notes), tokenizer.encode(notes, transpose=3)
    values, moved = tokenizer.controls(ids), tokenizer.controls(up)
    assert values.shape == (len(ids), 20) and len(up) == len(ids)
    assert moved[:, 8:] == pytest.approx(np.roll(values[:, 8:], 3, axis=1))  # the key moves with the notes
    assert moved[:, :8] == pytest.approx(values[:, :8])
    # Two pieces side by side: each piece's controls, as if alone (the first does not see the second)
    assert tokenizer.controls(np.concatenate([ids, up])) == pytest.approx(np.concatenate([values, moved]))


def _with_program(notes):
    from seqgen.midi_io import PROGRAM_NOTE_DTYPE

    out = np.zeros(len(notes), PROGRAM_NOTE_DTYPE)
    for field in notes.dtype.names:
        out[field] = notes[field]
    return out


def test_controls_and_their_draws_are_saved_and_checked():
    tokenizer = MidiTokenizer(MidiConfig(control="density"))
    tokenizer.fit([_with_program(notes_array([(60, 80, 0.1 * i, 0.1 * i + 0.1) for i in range(300)]))])
    assert 0 < len(tokenizer.control_draws) <= 256
    ten = np.abs(tokenizer.control_draws - feature([10.0])).max(1) < 1e-3  # 10 a second but in the last seconds
    assert ten.mean() > 0.9
    again = tokenizer_from_dict(tokenizer.to_dict())
    assert again.control_size == 8 and again.control_draws == pytest.approx(tokenizer.control_draws, abs=1e-4)
    assert tokenizer_from_dict(MidiTokenizer().to_dict()).control_size == 0  # a checkpoint from before: none
    assert "control" not in MidiTokenizer().to_dict()  # as before controls: a run's corpus digest hashes it
    for bad in ([[1.0] * 7], [[-1.0] * 8], [["x"] * 8], [[1.0] * 8] * 257, "draws"):
        with pytest.raises(SeqgenError, match="control_draws"):
            tokenizer_from_dict({**tokenizer.to_dict(), "control_draws": bad})
    with pytest.raises(SeqgenError, match="unknown control"):
        tokenizer_from_dict({**tokenizer.to_dict(), "control": "tempo"})


def test_samples_given_no_controls_draw_them_from_the_whole_corpus_not_its_openings():
    """300 pieces, each 4 s slow then 4 s fast (read 3 s ahead: 2 s slow, then faster): the draws
    hold both, as the corpus's time does (openings alone would all be slow)."""
    tokenizer = MidiTokenizer(MidiConfig(control="density"))
    slow_then_fast = [(60, 80, t, t + 0.1) for t in [*np.arange(0, 4, 1.0), *np.arange(4, 8, 0.125)]]
    tokenizer.fit([_with_program(notes_array(slow_then_fast))] * 300)
    rates = np.array([Density().explain(row) for row in tokenizer.control_draws])
    assert len(rates) == 256
    assert 0.15 < (rates < 3).mean() < 0.35 and 0.45 < (rates > 5).mean() < 0.75


def test_the_model_reads_controls_beside_the_embedding_in_every_path():
    torch.manual_seed(0)
    config = ModelConfig(vocab_size=11, layers=2, hidden=16, embed=8, control_inputs=3)
    model = RNNLM(config).eval()
    assert {k: tuple(v.shape) for k, v in model.state_dict().items()} == parameter_shapes(config)
    ids, controls = torch.randint(11, (2, 7)), torch.rand(2, 3)
    every_step = controls[:, None, :].expand(-1, 7, -1)  # (B, T, C)
    logits, _ = model(ids, None, every_step)
    state, step, decoded = model.initial_state(2), [], []
    decoder, dstate = model.decoder(controls), model.initial_state(2)
    for t in range(7):
        out, state = model.step(ids[:, t], state, controls)
        step.append(out)
        out, dstate = decoder(ids[:, t], dstate)
        decoded.append(out)
    assert torch.allclose(torch.stack(step, 1), logits, atol=1e-5)
    assert torch.allclose(torch.stack(decoded, 1), logits, atol=1e-5)
    assert not torch.allclose(model(ids, None, every_step + 1)[0], logits)  # they change what it predicts
    with pytest.raises(ValueError, match="control inputs"):
        model(ids)


# -- from the command line: a model steered by what it is told ---------------------------------
def _piece(rate: float, pitches: list[int], seconds: float = 12.0) -> bytes:
    step = 1 / rate
    return midi_file([(pitches[i % len(pitches)], 80, i * step, i * step + 0.9 * min(step, 0.5))
                      for i in range(int(seconds * rate))])


@pytest.fixture(scope="module")
def steered(tmp_path_factory):
    """A tiny model trained on pieces that play 1 or 8 notes a second, on C major's or F# major's
    scale, told both."""
    root = tmp_path_factory.mktemp("steer")
    c_major, f_sharp = [60, 62, 64, 65, 67, 69, 71], [66, 68, 70, 71, 73, 75, 77]
    for i in range(8):
        (root / "songs").mkdir(exist_ok=True)
        (root / "songs" / f"p{i}.mid").write_bytes(_piece(1.0 if i % 2 else 8.0, c_major if i % 4 < 2 else f_sharp))
    out = root / "run"
    mp = pytest.MonkeyPatch()
    mp.setenv("SEQGEN_CACHE_DIR", str(root / "cache"))
    result = invoke("train", root / "songs", "--out", out, "--control", "density,key", "--layers", "1", "--hidden", "48",
                    "--embed", "16", "--seq-len", "64", "--batch-size", "8", "--max-steps", "300", "--eval-every", "100",
                    "--batch-ramp", "0",  # whole windows: in 300 steps a ramp would read under half the pieces
                    "--warmup-steps", "50",  # as the steering was measured (the default takes a tenth of 300)
                    "--precision", "fp32", "--transpose", "0", "--stretch", "0", "--threads", "1", "--val-fraction", "0.2")
    mp.undo()
    assert result.exit_code == 0, result.output
    assert "20 control inputs" in result.stderr
    return out


def _sampled(run, tmp_path, *options):
    import pretty_midi

    result = invoke("sample", run, "-k", "4", "--seconds", "8", "--seed", "3", "--out", tmp_path, "--force", *options)
    assert result.exit_code == 0, result.output
    return [[n for i in pretty_midi.PrettyMIDI(str(f)).instruments for n in i.notes] for f in sorted(tmp_path.glob("*.mid"))]


def test_samples_play_the_density_and_key_they_are_asked_for(steered, tmp_path):
    slow = _sampled(steered, tmp_path / "slow", "--density", "1")
    fast = _sampled(steered, tmp_path / "fast", "--density", "8")
    assert sum(map(len, fast)) > 3 * sum(map(len, slow)), (list(map(len, slow)), list(map(len, fast)))

    def on_scale(samples, key):
        notes = [n for s in samples for n in s]
        return sum(n.end - n.start for n in notes if n.pitch % 12 in scale(key)) / sum(n.end - n.start for n in notes)

    c = _sampled(steered, tmp_path / "c", "--key", "C", "--density", "8")
    f_sharp = _sampled(steered, tmp_path / "fs", "--key", "F# major", "--density", "8")
    # Each key's scale sounds far more when asked for than when the other key is (these tiny models
    # score 0.75 and 1.0 asked, 0.26 and 0.38 not)
    assert on_scale(c, "C") - on_scale(f_sharp, "C") > 0.3
    assert on_scale(f_sharp, "F# major") - on_scale(c, "F# major") > 0.3


def test_unsteered_samples_draw_controls_and_options_are_checked(steered, tmp_path, trained_run):
    assert len(_sampled(steered, tmp_path / "free")) == 4  # controls drawn from the training data's
    result = invoke("sample", steered, "-k", "2", "--seconds", "2", "--density", "4", "--out", tmp_path / "told",
                    "--json")
    told = [sample["controls"] for sample in json.loads(result.stdout)["samples"]]
    assert [t["density"] for t in told] == pytest.approx([4, 4], rel=0.02) and all(t["key"] in KEYS for t in told)
    assert "; density 4" in result.stderr  # each file's line on stderr says what it was told
    result = invoke("sample", steered, "--key", "C", "--pitch-classes", "1,0,1,0,1,1,0,1,0,1,0,1", "--out", tmp_path / "x.mid")
    assert result.exit_code == 2 and "--key or --pitch-classes" in result.output
    result = invoke("sample", steered, "--key", "H", "--out", tmp_path / "x.mid")
    assert result.exit_code == 2 and "give a key such as" in result.output
    result = invoke("sample", trained_run, "--density", "4")
    assert result.exit_code == 1 and "--density does not apply to a text model" in result.output
    result = invoke("info", steered)
    assert "controls: density (notes a second in the next 3 s); key" in result.output


def test_after_a_primer_the_controls_not_asked_for_are_the_primers_own(steered, tmp_path):
    fast, slow = tmp_path / "fast.mid", tmp_path / "slow.mid"
    fast.write_bytes(_piece(8.0, [66, 68, 70, 71, 73, 75, 77]))  # F# major
    slow.write_bytes(_piece(1.0, [60, 62, 64, 65, 67, 69, 71]))  # C major
    told = {}
    for name, primer in (("fast", fast), ("slow", slow)):
        result = invoke("sample", steered, "--primer", primer, "--seconds", "2", "-k", "2", "--seed", "1",
                        "--out", tmp_path / name, "--json")
        assert result.exit_code == 0, result.output
        told[name] = [sample["controls"] for sample in json.loads(result.stdout)["samples"]]
    assert [t["key"] for t in told["fast"]] == ["F# major"] * 2 and [t["key"] for t in told["slow"]] == ["C major"] * 2
    assert min(t["density"] for t in told["fast"]) > 4 * max(t["density"] for t in told["slow"])
    result = invoke("sample", steered, "--primer", fast, "--key", "C", "--seconds", "2", "--out", tmp_path / "c.mid",
                    "--json")
    assert json.loads(result.stdout)["samples"][0]["controls"]["key"] == "C major"  # what is asked for wins


def test_the_python_api_steers_and_scores_with_controls(steered, tmp_path):
    import seqgen

    model = seqgen.load(steered)
    fast, slow = (model.generate(seconds=6, density=d, key="C", num_samples=2, seed=1) for d in (8, 1))
    assert sum(len(i.notes) for p in fast for i in p.instruments) > 3 * sum(len(i.notes) for p in slow for i in p.instruments)
    assert model.generate(seconds=2, pitch_classes=[1, 0, 1, 0, 1, 1, 0, 1, 0, 1, 0, 1], seed=1)
    for bad, message in [({"density": "fast"}, "--density 'fast': give notes a second"),
                         ({"key": ""}, "--key '': give a key"), ({"pitch_classes": 5}, "--pitch-classes '5': give 12"),
                         ({"pitch_classes": "C major"}, "give 12 weights"),
                         ({"key": "C", "pitch_classes": [1] * 12}, "give --key or --pitch-classes, not both")]:
        with pytest.raises(SeqgenError, match=message):
            model.generate(seconds=2, **bad)
    # Scored with the music's own controls, as in training's validation: what the run's metrics say
    scored = model.score(steered.parent / "songs")["loss"]
    assert scored < 2.0


def test_control_is_checked_and_only_for_midi(tmp_path, corpus_file):
    result = invoke("train", corpus_file, "--control", "density", "--out", tmp_path / "run")
    assert result.exit_code == 1 and "--control is a MIDI option" in result.output
    result = invoke("train", corpus_file, "--control", "tempo", "--out", tmp_path / "run")
    assert result.exit_code == 2 and "unknown control 'tempo'" in result.output


def test_a_controlled_run_resumes_exactly(steered, tmp_path, monkeypatch):
    """Controls are recomputed from each epoch's augmented pieces, so a resumed run reads what an
    uninterrupted one reads (augmentation on: the pieces move, and their keys with them)."""
    from seqgen import checkpoint
    from seqgen.config import TrainConfig
    from seqgen.corpora import load_corpus
    from seqgen.train import Trainer

    from .conftest import TINY_MODEL, TINY_TRAIN

    monkeypatch.setenv("SEQGEN_CACHE_DIR", str(tmp_path / "cache"))
    corpus = load_corpus(steered.parent / "songs")
    config = TrainConfig(**{**TINY_TRAIN, "max_steps": 24, "eval_every": 7, "precision": "fp32", "val_fraction": 0.2})
    model_config = ModelConfig(vocab_size=0, **TINY_MODEL)

    def tokenizer():
        return corpus.new_tokenizer({"control": "density,key"}, log=lambda m: None)

    Trainer(corpus, model_config, config, tmp_path / "straight", tokenizer=tokenizer()).run()
    Trainer(corpus, model_config, config, tmp_path / "split", tokenizer=tokenizer()).run(stop_at_step=10)
    last = checkpoint.read(tmp_path / "split" / checkpoint.LAST)
    Trainer(corpus, model_config, config, tmp_path / "split", tokenizer=tokenizer_from_dict(last.meta["tokenizer"]),
            resume_from=last).run()
    a = checkpoint.read(tmp_path / "straight" / checkpoint.LAST)
    b = checkpoint.read(tmp_path / "split" / checkpoint.LAST)
    assert a.meta["model"]["control_inputs"] == 20
    assert all(torch.equal(a.tensors[k], b.tensors[k]) for k in a.tensors if k.startswith("model."))
