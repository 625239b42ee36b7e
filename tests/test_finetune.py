"""Fine-tuning (`seqgen train --init-from`): a new run from another model's weights."""

import hashlib
import json

import pytest
import torch

from seqgen import checkpoint
from seqgen.corpora import load_corpus
from seqgen.errors import SeqgenError
from seqgen.finetune import base_model

from .conftest import invoke

NEW_TEXT = "Señor Ωmega said: «it was the best of times» — and so it was. " * 40  # ñ, Ω, « and » are new


@pytest.fixture
def new_corpus(tmp_path):
    path = tmp_path / "letters.txt"
    path.write_text(NEW_TEXT, encoding="utf-8")
    return path


def test_the_base_weights_move_to_the_extended_vocabulary(trained_run, new_corpus):
    net, tokenizer, ckpt = checkpoint.load(trained_run)
    base = base_model(checkpoint.read(trained_run), load_corpus(new_corpus), {}, set())
    assert base.added == "".join(sorted(set(NEW_TEXT) - set(tokenizer.chars))) and set("ñΩ«»") <= set(base.added)
    assert set(base.tokenizer.chars) == set(tokenizer.chars) | set(NEW_TEXT)
    old = net.state_dict()
    for name in ("embed.weight", "head.weight", "head.bias"):
        for c in tokenizer.chars:  # every character the base knew keeps its rows
            assert torch.equal(base.weights[name][base.tokenizer.chars.index(c)], old[name][tokenizer.chars.index(c)])
        assert torch.allclose(base.weights[name][base.tokenizer.chars.index("Ω")], old[name].mean(0))  # new: the mean
    for name in old.keys() - {"embed.weight", "head.weight", "head.bias"}:
        assert torch.equal(base.weights[name], old[name])  # the recurrent layers as they were
    assert base.model_options == {k: v for k, v in vars(net.config).items() if k != "vocab_size"}
    assert base.lineage[0]["sha256"] == hashlib.sha256(ckpt.path.read_bytes()).hexdigest()


def test_fine_tune_from_the_command_line_and_see_the_lineage(trained_run, new_corpus, tmp_path):
    run = tmp_path / "tuned"
    result = invoke("train", new_corpus, "--init-from", trained_run, "--out", run, "--max-steps", "4", "--eval-every", "2",
                    "--seq-len", "16", "--batch-size", "4", "--threads", "1")
    assert result.exit_code == 0, result.output
    assert "Fine-tuning" in result.stderr and "new characters join its vocabulary" in result.stderr
    base_ckpt = checkpoint.read(trained_run)
    meta = json.loads(invoke("info", run, "--json").stdout)
    assert meta["lineage"][0]["sha256"] == hashlib.sha256(base_ckpt.path.read_bytes()).hexdigest()
    assert meta["lineage"][0]["step"] == base_ckpt.meta["progress"]["step"]
    assert meta["model"]["hidden"] == base_ckpt.meta["model"]["hidden"] and meta["progress"]["step"] == 4
    assert meta["train"]["lr"] == 1e-3 and "at lr 0.001 (--lr sets another)" in result.stderr  # a tenth of a new run's
    assert meta["train"]["batch_ramp"] == 0  # whole batches: the ramp was measured on runs from scratch
    assert "Fine-tuned from: " + str(base_ckpt.path) in invoke("info", run).output
    assert invoke("sample", run, "--prime", "Señor ", "-n", "20", "--seed", "1").exit_code == 0
    # Its fine-tuned model can be fine-tuned again: the lineage goes back to the first.
    again = tmp_path / "again"
    assert invoke("train", new_corpus, "--init-from", run, "--out", again, "--max-steps", "2", "--seq-len", "16",
                  "--batch-size", "4", "--threads", "1").exit_code == 0
    assert invoke("info", again).output.count("Fine-tuned from: ") == 2


def test_what_fine_tuning_refuses(trained_run, new_corpus, tmp_path):
    def refused(*args):
        result = invoke("train", new_corpus, "--init-from", trained_run, "--out", tmp_path / "r", *args)
        assert result.exit_code == 1 and result.stderr.count("\n") == 1, result.output
        return result.stderr

    assert "--hidden 64 conflicts with the base model's 32: --init-from keeps its shape" in refused("--hidden", "64")
    assert "--cell gru conflicts" in refused("--cell", "gru")
    assert "--resume continues a run" in refused("--resume")
    bach = invoke("train", new_corpus, "--init-from", "checkpoints/bach-chorales-lstm", "--out", tmp_path / "m")
    assert bach.exit_code == 1 and "is a MIDI model;" in bach.stderr and "is a text corpus" in bach.stderr
    missing = invoke("train", new_corpus, "--init-from", tmp_path / "nothing", "--out", tmp_path / "n")
    assert missing.exit_code == 1 and "no such checkpoint file or run directory" in missing.stderr
    assert not (tmp_path / "r").exists()  # nothing written by a refused run


def test_a_midi_model_fine_tunes_with_its_own_tokenizer(tmp_path):
    sample, bach = "corpora/bach-chorales-sample", checkpoint.read("checkpoints/bach-chorales-lstm")
    with pytest.raises(SeqgenError, match="--tokenizer duration conflicts with the base model's performance"):
        base_model(bach, load_corpus(sample), {"tokenizer": "duration"}, {"tokenizer"})
    base = base_model(bach, load_corpus(sample), {}, set())
    assert base.added == "" and base.tokenizer.to_dict() == checkpoint.load("checkpoints/bach-chorales-lstm")[1].to_dict()
    result = invoke("train", sample, "--init-from", "checkpoints/bach-chorales-lstm", "--out", tmp_path / "run",
                    "--max-steps", "2", "--seq-len", "16", "--batch-size", "2", "--threads", "1")
    assert result.exit_code == 0, result.output


def test_the_fine_tuned_model_starts_from_the_base_weights(trained_run, corpus_file, tmp_path):
    """One step at a learning rate of 1e-6 changes nothing that shows: the fine-tuned model scores
    what its base scores, where a model of the same shape from scratch scores far worse."""
    run = tmp_path / "tuned"
    result = invoke("train", corpus_file, "--init-from", trained_run, "--out", run, "--max-steps", "1", "--lr", "1e-6",
                    "--seq-len", "16", "--batch-size", "4", "--threads", "1")
    assert result.exit_code == 0, result.output
    scratch = tmp_path / "scratch"
    assert invoke("train", corpus_file, "--out", scratch, "--max-steps", "1", "--lr", "1e-6", "--layers", "2", "--hidden",
                  "32", "--embed", "16", "--seq-len", "16", "--batch-size", "4", "--threads", "1").exit_code == 0
    base, tuned, fresh = (json.loads(invoke("eval", r, corpus_file, "--json").stdout)["loss"]
                          for r in (trained_run, run, scratch))
    assert abs(tuned - base) < 0.01 and fresh > base + 0.3, (base, tuned, fresh)


@pytest.mark.parametrize("lineage", [
    {"checkpoint": "x"}, [{"checkpoint": "x", "sha256": "0" * 64, "corpus": None}],
    [{"checkpoint": "x", "sha256": "z" * 64, "corpus": None, "step": 1}],
    [{"checkpoint": "x", "sha256": "0" * 64, "corpus": None, "step": -1}],
    [{"checkpoint": "x", "sha256": "0" * 64, "corpus": None, "step": None}] * 65,
])
def test_a_bad_lineage_is_one_line(trained_run, tmp_path, lineage):
    from safetensors.torch import save

    ckpt = checkpoint.read(trained_run)
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(save(ckpt.tensors, metadata={"seqgen": json.dumps({**ckpt.meta, "lineage": lineage})}))
    result = invoke("info", bad)
    assert result.exit_code == 1 and "bad checkpoint metadata (lineage" in result.stderr, result.output
