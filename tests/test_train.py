import csv
import math

import pytest
import torch

from seqgen import checkpoint, hardware
from seqgen import train as train_mod
from seqgen.config import ModelConfig, TrainConfig
from seqgen.corpora import TextCorpus
from seqgen.errors import SeqgenError
from seqgen.hardware import pick_precision
from seqgen.model import RNNLM
from seqgen.train import Trainer, learning_rate

from .conftest import TINY_MODEL, TINY_TRAIN, needs_bf16


def test_warmup_then_cosine_to_the_floor():
    cfg = TrainConfig(lr=1.0, warmup_steps=10, min_lr_ratio=0.1)
    assert learning_rate(cfg, 0, 0.0) == pytest.approx(0.1)
    assert learning_rate(cfg, 9, 0.0) == pytest.approx(1.0)
    assert learning_rate(cfg, 50, 0.5) == pytest.approx(0.55)
    assert learning_rate(cfg, 99, 1.0) == pytest.approx(0.1)
    assert learning_rate(cfg, 99, 1.7) == pytest.approx(0.1)  # past the end it stays at the floor


def test_the_default_warmup_is_50_batches_in_the_ramps_first_steps_and_a_tenth_of_a_short_run(corpus_text, tmp_path):
    corpus = TextCorpus("d", "d", "test", corpus_text)
    model_config = ModelConfig(vocab_size=0, **TINY_MODEL)

    def trainer(**options) -> Trainer:
        config = TrainConfig(**{**TINY_TRAIN, "warmup_steps": None, "max_steps": 100_000, "epochs": None, **options})
        return Trainer(corpus, model_config, config, tmp_path / "run")

    assert trainer(batch_ramp=2).cfg.warmup_steps == 200  # 4 steps a batch at first
    assert trainer(batch_ramp=0).cfg.warmup_steps == 50
    assert trainer(batch_ramp=3, seq_len=4).cfg.warmup_steps == 200  # no more pieces than a window has tokens: 4
    assert trainer(batch_ramp=3, max_steps=None, time_budget=None).cfg.warmup_steps == 50  # no limit: no ramp
    assert trainer(batch_ramp=3, warmup_steps=7).cfg.warmup_steps == 7  # given: kept
    assert trainer(batch_ramp=3, warmup_steps=700, max_steps=40).cfg.warmup_steps == 700  # given: kept, however long
    assert trainer(batch_ramp=3, max_steps=40).cfg.warmup_steps == 4  # a tenth of a short run
    by_epochs = trainer(batch_ramp=2, max_steps=None, epochs=1)  # a tenth of the steps one epoch takes
    assert by_epochs.cfg.warmup_steps == int(by_epochs.batches_per_epoch * 1.75) // 10 < 200
    # The checkpoints keep the number, so a resumed run warms up as it began.
    trainer(batch_ramp=1).run(stop_at_step=2)
    assert checkpoint.read(tmp_path / "run" / checkpoint.LAST).meta["train"]["warmup_steps"] == 100
    assert learning_rate(TrainConfig(lr=1.0, warmup_steps=None), 9, 0.0) == pytest.approx(10 / 50)  # unresolved


def test_the_schedule_follows_the_limit_that_binds_first(corpus_text, tmp_path):
    corpus = TextCorpus("d", "d", "test", corpus_text)
    trainer = Trainer(corpus, ModelConfig(vocab_size=0, **TINY_MODEL),
                      TrainConfig(**{**TINY_TRAIN, "max_steps": 100, "epochs": 1000, "time_budget": 50.0}), tmp_path)
    trainer.progress.step, trainer.progress.elapsed = 10, 40.0
    assert trainer._done_fraction() == pytest.approx(0.8)  # time: 40 of 50 s
    trainer.progress.elapsed = 1.0
    assert trainer._done_fraction() == pytest.approx(0.1)  # steps: 10 of 100


def rows(run):
    with (run / "metrics.csv").open() as f:
        return list(csv.DictReader(f))


def test_the_batch_ramp_steps_on_pieces_of_the_window_then_on_all_of_it(corpus_text, tmp_path, monkeypatch):
    """--batch-ramp 2 over 30 steps: a quarter of the window a step while under a third of the
    run is done, then half (to two thirds), then all; a batch's pieces are its window in order,
    each step starting from the state the one before ended with, and a resume partway through a
    batch (after step 10 of the batch of steps 8 to 11, or step 2 of the first) continues bit for bit."""
    corpus = TextCorpus("d", "d", "test", corpus_text)
    config = TrainConfig(**{**TINY_TRAIN, "max_steps": 30, "eval_every": 100, "batch_ramp": 2})
    model_config = ModelConfig(vocab_size=0, **TINY_MODEL)
    taken, carried_in, carried_out, step = [], [], [], train_mod.train_step

    def recording(model, optimizer, x, y, carry, *args):
        taken.append(x.clone())
        carried_in.append(carry.clone())
        loss, state = step(model, optimizer, x, y, carry, *args)
        carried_out.append(state.clone())
        return loss, state

    monkeypatch.setattr(train_mod, "train_step", recording)
    trainer = Trainer(corpus, model_config, config, tmp_path / "straight")
    trainer.run()
    assert [x.shape for x in taken] == [(8, 8)] * 12 + [(8, 16)] * 8 + [(8, 32)] * 10  # 3, 4 and 10 batches
    streams = trainer._epoch_streams(1)
    for batch in range(3):
        assert torch.equal(torch.cat(taken[4 * batch : 4 * batch + 4], dim=1), streams.batch(batch)[0])
    assert torch.equal(torch.cat(taken[12:14], dim=1), streams.batch(3)[0])
    # Each epoch starts from zeros (12 batches an epoch: the second at the 26th step), every other
    # step from the state the step before ended with.
    assert trainer.batches_per_epoch == 12 and [i for i in range(30) if not carried_in[i].any()] == [0, 25]
    assert all(torch.equal(carried_in[i], carried_out[i - 1]) for i in range(1, 30) if i != 25)

    a = checkpoint.read(tmp_path / "straight" / checkpoint.LAST)
    for stop, where in ((10, (2, 2, 4)), (2, (0, 2, 4))):  # partway through the third batch, and the first
        split = tmp_path / f"split-{stop}"
        Trainer(corpus, model_config, config, split).run(stop_at_step=stop)
        last = checkpoint.read(split / checkpoint.LAST)
        assert (last.meta["progress"]["batch"], last.meta["progress"]["group"], last.meta["progress"]["groups"]) == where
        Trainer(corpus, model_config, config, split, resume_from=last).run()
        b = checkpoint.read(split / checkpoint.LAST)
        assert all(torch.equal(a.tensors[k], b.tensors[k]) for k in a.tensors if k.startswith(("model.", "carry")))
    last.meta["progress"].update(group=3, groups=2)  # a batch that would never end
    checkpoint.save(tmp_path / "bad.safetensors", last.meta, last.tensors)
    with pytest.raises(SeqgenError, match="bad checkpoint metadata.*group = 3: not below groups"):
        checkpoint.read_resumable(tmp_path / "bad.safetensors")
    last.meta["progress"].update(group=1, groups=64)  # pieces of the 32-token window with no token
    checkpoint.save(tmp_path / "bad.safetensors", last.meta, last.tensors)
    with pytest.raises(SeqgenError, match=r"bad checkpoint metadata \(progress groups = 64: more than --seq-len 32\)"):
        Trainer(corpus, model_config, config, tmp_path / "bad",
                resume_from=checkpoint.read_resumable(tmp_path / "bad.safetensors"))

    off = TrainConfig(**{**TINY_TRAIN, "max_steps": 6, "batch_ramp": 0})
    taken.clear()
    Trainer(corpus, model_config, off, tmp_path / "off").run()
    assert [x.shape for x in taken] == [(8, 32)] * 6  # every step takes the whole window


def test_the_batch_ramp_cuts_any_window_as_evenly_as_it_can(corpus_text, tmp_path, monkeypatch):
    """6 tokens in four pieces of 1, 2, 1 and 2; a 2-token window in no more than two."""
    corpus = TextCorpus("d", "d", "test", corpus_text)
    widths, step = [], train_mod.train_step

    def recording(model, optimizer, x, *args):
        widths.append(x.shape[1])
        return step(model, optimizer, x, *args)

    monkeypatch.setattr(train_mod, "train_step", recording)
    config = TrainConfig(**{**TINY_TRAIN, "seq_len": 6, "max_steps": 4, "batch_ramp": 2})
    Trainer(corpus, ModelConfig(vocab_size=0, **TINY_MODEL), config, tmp_path / "six").run()
    assert widths == [1, 2, 1, 2]
    config = TrainConfig(**{**TINY_TRAIN, "seq_len": 2, "batch_ramp": 3})
    assert Trainer(corpus, ModelConfig(vocab_size=0, **TINY_MODEL), config, tmp_path / "two")._ramp() == 1


def test_epoch_limit_ends_with_an_evaluation(corpus_text, tmp_path):
    corpus = TextCorpus("d", "d", "test", corpus_text)
    config = TrainConfig(**{**TINY_TRAIN, "max_steps": None, "epochs": 2, "eval_every": 10_000})
    trainer = Trainer(corpus, ModelConfig(vocab_size=0, **TINY_MODEL), config, tmp_path)
    trainer.run()
    (row,) = rows(tmp_path)
    steps, batches = int(row["step"]), int(row["tokens"]) // (config.batch_size * config.seq_len)
    assert 2 * (trainer.batches_per_epoch - 1) <= batches <= 2 * trainer.batches_per_epoch
    # --batch-ramp 3: 8, 4, 2 and 1 steps a batch over the run's quarters, as the start-up line estimates
    assert steps == pytest.approx(2 * trainer.batches_per_epoch * trainer._steps_per_batch(), rel=0.05)
    assert trainer._steps_per_batch() == 15 / 4
    meta = checkpoint.read(tmp_path / checkpoint.LAST).meta
    assert meta["progress"]["epoch"] == 2 and meta["progress"]["best_step"] == steps  # epoch 2 complete
    assert math.isfinite(float(row["val_loss"]))


def test_patience_stops_when_validation_stops_improving(corpus_text, tmp_path):
    corpus = TextCorpus("d", "d", "test", corpus_text)
    # A learning rate this high makes validation worse after the first evaluations.
    config = TrainConfig(**{**TINY_TRAIN, "max_steps": 400, "eval_every": 5, "lr": 0.5, "warmup_steps": 0, "patience": 2})
    Trainer(corpus, ModelConfig(vocab_size=0, **TINY_MODEL), config, tmp_path).run()
    history = [float(r["val_loss"]) for r in rows(tmp_path)]
    assert len(history) < 400 // 5
    best = history.index(min(history))
    assert len(history) - 1 - best == 2  # stopped after exactly two evaluations without a new best
    assert checkpoint.read(tmp_path / checkpoint.BEST).meta["progress"]["best_val_loss"] == pytest.approx(min(history), abs=1e-5)


def test_evaluation_does_not_depend_on_the_number_of_streams(trained_run, corpus_text):
    from seqgen import checkpoint
    from seqgen.train import evaluate

    model, tokenizer, _ = checkpoint.load(trained_run)
    ids = tokenizer.encode(corpus_text)[:3000]
    one, n1 = evaluate(model, ids, 1, 32)
    for streams in (4, 16):
        loss, n = evaluate(model, ids, streams, 32)
        # The same tokens scored the same way, bar a few at stream boundaries and the end.
        assert n1 - n < 2 * streams and abs(loss - one) < 2e-3, (streams, loss, one)


@pytest.mark.parametrize("capabilities,isa,probe,expected", [
    ({"avx512_bf16": True}, "AVX512", None, torch.bfloat16),
    ({"amx_bf16": True}, "AVX512", None, torch.bfloat16),
    ({"avx512_f": True, "avx2": True}, "AVX512", None, None),  # AVX-512 without bf16 would only emulate it
    ({}, "AVX2", None, None),
    ({"avx512_bf16": True}, "AVX2", None, None),  # ATEN_CPU_CAPABILITY=avx2: the flags still say bf16
    ({"avx512_bf16": True}, "AVX512", "RuntimeError: could not create a primitive descriptor", None),
])
def test_auto_precision_is_bf16_only_where_the_cpu_computes_it_and_the_probe_runs(monkeypatch, capabilities, isa,
                                                                                   probe, expected):
    monkeypatch.setattr(torch.cpu, "get_capabilities", lambda: capabilities, raising=False)
    monkeypatch.setattr(torch.backends.cpu, "get_cpu_capability", lambda: isa)
    monkeypatch.setattr(hardware, "bf16_failure", lambda cell, device: probe)
    assert pick_precision("auto", torch.device("cpu")) == expected
    assert pick_precision("fp32", torch.device("cpu")) is None


@pytest.mark.parametrize("cell", ["gru", "rnn", "irnn"])
def test_auto_precision_keeps_cells_that_bf16_does_not_speed_up_in_fp32(monkeypatch, cell):
    # A CPU with native bf16 where every probe runs: only the LSTM gains from bf16 there.
    monkeypatch.setattr(torch.cpu, "get_capabilities", lambda: {"avx512_bf16": True}, raising=False)
    monkeypatch.setattr(torch.backends.cpu, "get_cpu_capability", lambda: "AVX512")
    monkeypatch.setattr(hardware, "bf16_failure", lambda cell, device: None)
    assert pick_precision("auto", torch.device("cpu"), "lstm") == torch.bfloat16
    assert pick_precision("auto", torch.device("cpu"), cell) is None
    assert pick_precision("bf16", torch.device("cpu"), cell) == torch.bfloat16  # asked for, it is given


def test_explicit_bf16_that_cannot_run_is_a_bad_option_naming_the_cause_and_the_way_out(monkeypatch):
    monkeypatch.setattr(hardware, "bf16_failure", lambda cell, device: None)
    assert pick_precision("bf16", torch.device("cpu"), "gru") == torch.bfloat16
    monkeypatch.setattr(hardware, "bf16_failure", lambda cell, device: f"RuntimeError: no bf16 {cell} kernel")
    with pytest.raises(SeqgenError, match=r"cannot train GRU cells in bfloat16 \(RuntimeError: no bf16 gru kernel\)"
                                          r".*--precision fp32") as error:
        pick_precision("bf16", torch.device("cpu"), "gru")
    assert error.value.exit_code == 2


@pytest.mark.parametrize("cell", ["lstm", "gru", "rnn", "irnn"])
def test_the_probe_trains_the_cell_itself_and_leaves_the_random_state_alone(monkeypatch, cell):
    hardware.bf16_failure.cache_clear()
    torch.manual_seed(0)
    expected = torch.rand(3)
    torch.manual_seed(0)
    verdict = hardware.bf16_failure(cell, torch.device("cpu"))
    assert torch.equal(torch.rand(3), expected)
    # The same verdict as the cell's own kernel under autocast, tried here directly.
    layer = {"lstm": torch.nn.LSTM, "gru": torch.nn.GRU}.get(cell, torch.nn.RNN)(4, 8, batch_first=True)
    try:
        with torch.autocast("cpu", dtype=torch.bfloat16):
            out, _ = layer(torch.randn(2, 6, 4))
        out.float().sum().backward()
        runs = True
    except RuntimeError:
        runs = False
    assert (verdict is None) == runs, verdict
    # It calls the model's own forward under autocast: a cell that fails there is reported, once per process.
    calls = []

    def broken(self, *args):
        calls.append((torch.ones(2, 2) @ torch.ones(2, 2)).dtype == torch.bfloat16)  # under autocast
        raise RuntimeError("could not create a primitive descriptor for the LSTM forward propagation primitive. "
                           "Run workload with environment variable ONEDNN_VERBOSE=all")

    monkeypatch.setattr(RNNLM, "forward", broken)
    hardware.bf16_failure.cache_clear()
    for _ in range(3):
        assert hardware.bf16_failure(cell, torch.device("cpu")) == (
            "RuntimeError: could not create a primitive descriptor for the LSTM forward propagation primitive")
    assert calls == [True]
    hardware.bf16_failure.cache_clear()


def test_auto_precision_leaves_gpus_in_fp32_and_refuses_bf16_where_unsupported(monkeypatch):
    monkeypatch.setattr(torch.cpu, "get_capabilities", lambda: {"avx512_bf16": True}, raising=False)
    assert pick_precision("auto", torch.device("cuda")) is None
    assert pick_precision("auto", torch.device("mps")) is None
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: False)
    with pytest.raises(SeqgenError, match="bfloat16"):
        pick_precision("bf16", torch.device("cuda"))


@needs_bf16
def test_bf16_training_learns_as_well_as_fp32(corpus_text, tmp_path):
    corpus = TextCorpus("d", "d", "test", corpus_text)
    losses = {}
    for precision in ("fp32", "bf16"):
        config = TrainConfig(**{**TINY_TRAIN, "max_steps": 60, "eval_every": 60, "precision": precision})
        Trainer(corpus, ModelConfig(vocab_size=0, **TINY_MODEL), config, tmp_path / precision).run()
        losses[precision] = float(rows(tmp_path / precision)[-1]["val_loss"])
    assert losses["fp32"] < 2.5  # it learned: a uniform guess over this vocabulary is 3.9 nats
    assert losses["bf16"] == pytest.approx(losses["fp32"], abs=0.05)
