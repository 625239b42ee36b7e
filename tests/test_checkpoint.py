import json
import os
import pickle
import struct

import pytest
import torch
from safetensors.torch import save_file

from seqgen import checkpoint
from seqgen.config import ModelConfig, TrainConfig
from seqgen.corpora import TextCorpus
from seqgen.errors import SeqgenError
from seqgen.train import Trainer, make_optimizer

from .conftest import TINY_MODEL, TINY_TRAIN, needs_bf16


def test_save_load_gives_identical_logits(trained_run):
    model, tok, ckpt = checkpoint.load(trained_run / checkpoint.LAST)
    again, _, _ = checkpoint.load(trained_run / checkpoint.LAST)
    ids = torch.from_numpy(tok.encode("it was the age of")).long()[None]
    assert torch.equal(model(ids)[0], again(ids)[0])
    assert ckpt.meta["progress"]["step"] == 40
    assert ckpt.meta["tokenizer"]["kind"] == "char"


def test_round_trip_through_a_new_file_is_exact(trained_run, tmp_path):
    model, tok, ckpt = checkpoint.load(trained_run)
    path = tmp_path / "copy.safetensors"
    checkpoint.save(path, ckpt.meta, {f"model.{k}": v for k, v in model.state_dict().items()})
    copy, _, _ = checkpoint.load(path)
    ids = torch.from_numpy(tok.encode("the worst")).long()[None]
    assert torch.equal(model(ids)[0], copy(ids)[0])


def test_a_run_directory_means_its_best_checkpoint(trained_run):
    assert checkpoint.resolve(trained_run) == trained_run / checkpoint.BEST


class Payload:
    def __reduce__(self):
        return (os.system, (f"touch {os.environ['SEQGEN_TEST_MARKER']}",))


@pytest.mark.parametrize("how", ["pickle", "torch"])
def test_pickles_are_refused_and_never_run(tmp_path, monkeypatch, how):
    marker = tmp_path / "pwned"
    monkeypatch.setenv("SEQGEN_TEST_MARKER", str(marker))
    path = tmp_path / "evil.pt"
    if how == "pickle":
        path.write_bytes(pickle.dumps(Payload()))
    else:
        torch.save({"weights": Payload()}, path)
    with pytest.raises(SeqgenError, match="never unpickles"):
        checkpoint.load(path)
    assert not marker.exists()


def test_a_checkpoint_whose_first_byte_looks_like_a_pickle_still_loads(trained_run, tmp_path):
    # A header of 128 + 256k bytes makes the file start with 0x80, pickle's first byte; a kill test
    # once met one by chance, which the pickle check refused.
    ckpt = checkpoint.read(trained_run / checkpoint.BEST)
    path = tmp_path / "x.safetensors"
    for pad in range(0, 512, 8):
        checkpoint.save(path, {**ckpt.meta, "pad": "x" * pad}, ckpt.tensors)
        if path.read_bytes()[:1] == b"\x80":
            break
    assert path.read_bytes()[:1] == b"\x80"
    assert checkpoint.read(path).meta["pad"] == "x" * pad


def test_truncated_file_is_a_clear_error(trained_run, tmp_path):
    data = (trained_run / checkpoint.BEST).read_bytes()
    reasons = {4: r"not a checkpoint \(file too short\)", 100: r"not a safetensors checkpoint, or truncated",
               len(data) // 2: r"corrupt or truncated checkpoint", len(data) - 1: r"corrupt or truncated checkpoint"}
    for cut, reason in reasons.items():  # cut in the length, in the header, in the tensors, at the last byte
        path = tmp_path / f"cut{cut}.safetensors"
        path.write_bytes(data[:cut])
        with pytest.raises(SeqgenError, match=f"^{path}: {reason}"):
            checkpoint.load(path)


def test_foreign_safetensors_and_newer_versions_are_refused(trained_run, tmp_path):
    foreign = tmp_path / "foreign.safetensors"
    save_file({"x": torch.zeros(2)}, foreign)
    with pytest.raises(SeqgenError, match="not a seqgen checkpoint"):
        checkpoint.load(foreign)

    ckpt = checkpoint.read(trained_run)
    newer = tmp_path / "newer.safetensors"
    checkpoint.save(newer, ckpt.meta, ckpt.tensors)
    data = bytearray(newer.read_bytes())
    n = struct.unpack("<Q", data[:8])[0]
    header = json.loads(data[8 : 8 + n])
    meta = json.loads(header["__metadata__"]["seqgen"])
    meta["version"] = checkpoint.FORMAT_VERSION + 1
    header["__metadata__"]["seqgen"] = json.dumps(meta)
    blob = json.dumps(header).encode()
    blob += b" " * ((8 - len(blob) % 8) % 8)
    newer.write_bytes(struct.pack("<Q", len(blob)) + blob + bytes(data[8 + n :]))
    with pytest.raises(SeqgenError, match="newer than this seqgen"):
        checkpoint.load(newer)


def test_config_that_does_not_match_the_weights_costs_nothing(trained_run, tmp_path):
    ckpt = checkpoint.read(trained_run)
    # The largest the CLI allows: 64 layers of 65,536 LSTM units would be 8 TB of weights.
    huge = {**ckpt.meta, "model": {**ckpt.meta["model"], "layers": 64, "hidden": 65536, "embed": 65536}}
    path = tmp_path / "huge.safetensors"
    checkpoint.save(path, huge, ckpt.tensors)
    with pytest.raises(SeqgenError, match="do not match its model config"):
        checkpoint.load(path)  # the shapes are compared before anything is built


def test_a_tokenizer_that_does_not_match_the_model_is_refused(trained_run, tmp_path):
    ckpt = checkpoint.read(trained_run)
    chars = ckpt.meta["tokenizer"]["chars"]
    n = len(chars)
    cases = {chars[1:]: rf"the tokenizer's vocabulary \({n - 1}\) does not match the model's \({n}\)",
             chars + "\u2603": rf"the tokenizer's vocabulary \({n + 1}\) does not match the model's \({n}\)",
             "x" * 70_000: r"tokenizer: a character vocabulary must list distinct single characters"}
    for altered, reason in cases.items():  # one short, one over, and one the tokenizer itself refuses
        meta = {**ckpt.meta, "tokenizer": {**ckpt.meta["tokenizer"], "chars": altered}}
        path = tmp_path / "altered.safetensors"
        checkpoint.save(path, meta, ckpt.tensors)
        with pytest.raises(SeqgenError, match=reason):
            checkpoint.load(path)


@pytest.mark.parametrize("saved", [None, False])
def test_a_checkpoint_of_another_optimizer_implementation_resumes_exactly(tmp_path, corpus_text, saved):
    """Checkpoints written before AdamW was fused say fused = null; one written where torch has
    no fused kernel says false. How the update is computed is this machine's choice: they resume,
    and to the same weights (the fused and plain updates agree here)."""
    corpus = TextCorpus("dickens", "dickens", "test", corpus_text)
    config = TrainConfig(**{**TINY_TRAIN, "max_steps": 20, "eval_every": 5})
    model_config = ModelConfig(vocab_size=0, **TINY_MODEL)
    Trainer(corpus, model_config, config, tmp_path / "straight").run()
    Trainer(corpus, model_config, config, tmp_path / "split").run(stop_at_step=10)
    last = checkpoint.read(tmp_path / "split" / checkpoint.LAST)
    for group in last.meta["optimizer"]["param_groups"]:
        group["fused"] = saved
    resumed = Trainer(corpus, model_config, config, tmp_path / "split", resume_from=last)
    assert [g["fused"] for g in resumed.optimizer.param_groups] == [g["fused"] for g in make_optimizer(
        resumed.model, config).param_groups]  # the fresh optimizer's choice stands
    resumed.run()
    a = checkpoint.read(tmp_path / "straight" / checkpoint.LAST).group("model.")
    b = checkpoint.read(tmp_path / "split" / checkpoint.LAST).group("model.")
    assert all(torch.equal(a[k], b[k]) for k in a)


@pytest.mark.parametrize("precision", ["fp32", pytest.param("bf16", marks=needs_bf16)])
def test_resume_is_bitwise_identical_to_an_uninterrupted_run(tmp_path, corpus_text, precision):
    corpus = TextCorpus("dickens", "dickens", "test", corpus_text)
    config = TrainConfig(**{**TINY_TRAIN, "max_steps": 30, "eval_every": 7, "precision": precision})
    model_config = ModelConfig(vocab_size=0, dropout=0.1, **TINY_MODEL)  # dropout: RNG state matters

    Trainer(corpus, model_config, config, tmp_path / "straight").run()
    Trainer(corpus, model_config, config, tmp_path / "split").run(stop_at_step=14)
    last = checkpoint.read(tmp_path / "split" / checkpoint.LAST)
    assert last.meta["progress"]["step"] == 14
    Trainer(corpus, model_config, config, tmp_path / "split", resume_from=last).run()

    a = checkpoint.read(tmp_path / "straight" / checkpoint.LAST).group("model.")
    b = checkpoint.read(tmp_path / "split" / checkpoint.LAST).group("model.")
    assert a.keys() == b.keys()
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert all(t.dtype == torch.float32 for t in a.values())  # bf16 computes; the weights stay fp32
    def metrics(run):  # every column but the wall-clock time
        return [row.split(",")[:3] + row.split(",")[4:] for row in (run / "metrics.csv").read_text().splitlines()]

    assert metrics(tmp_path / "split") == metrics(tmp_path / "straight")
