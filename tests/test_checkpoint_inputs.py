"""A checkpoint is input like any other: whatever its metadata or tensors hold, every command ends
with its result (exit 0) or one `Error:` line (exit 1), at once and in bounded memory."""

import json
import math
import resource
import shutil
import time

import pytest
import torch
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from safetensors.torch import save

from seqgen import checkpoint
from seqgen.cli import cli
from seqgen.config import MidiConfig, ModelConfig, Progress, TrainConfig, checked

from .conftest import TINY

DEEP = "\x00deep\x00"  # stands for JSON nested 100,000 levels, spliced into the text after json.dumps
SECONDS = 20  # per command: generous on a busy 2-core machine; a hang or a 25 s MemoryError fails it
MEGABYTES = 500  # peak memory growth over the whole test


@pytest.fixture(scope="module")
def source(tmp_path_factory, corpus_file):
    """A real resumable checkpoint of a tiny run, and a directory to write mutated ones into."""
    tmp = tmp_path_factory.mktemp("fuzz")
    result = CliRunner().invoke(cli, ["train", str(corpus_file), "--out", str(tmp / "run"), *TINY, "--max-steps", "4",
                                      "--eval-every", "2"])
    assert result.exit_code == 0, result.output
    return checkpoint.read(tmp / "run" / checkpoint.LAST), tmp


ODD_VALUES = st.one_of(
    st.none(), st.booleans(), st.integers(-(10**6), 10**6), st.sampled_from([0, -1, 10**7, 10**9, 2**63, 10**400]),
    st.floats(allow_nan=True, allow_infinity=True), st.sampled_from([1e308, -0.0, 0.5, 3.0]),
    st.text(max_size=5), st.sampled_from(["", "x" * 100_000, "lstm", "midi", "char"]),
    st.lists(st.integers(0, 9), max_size=3), st.dictionaries(st.text(max_size=3), st.integers(), max_size=2),
    st.just(DEEP),
)


def paths(meta, prefix=()):
    """Every place in the metadata: (keys...) paths to its values."""
    yield prefix
    if isinstance(meta, dict):
        for k, v in meta.items():
            yield from paths(v, (*prefix, k))
    elif isinstance(meta, list):
        for i, v in enumerate(meta):
            yield from paths(v, (*prefix, i))


@st.composite
def meta_mutation(draw, meta):
    meta = json.loads(json.dumps(meta))
    for _ in range(draw(st.integers(1, 3))):
        where = draw(st.sampled_from([p for p in paths(meta) if p]))
        parent = meta
        for key in where[:-1]:
            parent = parent[key]
        if isinstance(parent, dict) and draw(st.booleans()) and where[-1] not in ("format", "version"):
            del parent[where[-1]]
        else:
            parent[where[-1]] = draw(ODD_VALUES)
    return meta


@st.composite
def tensor_mutation(draw, tensors):
    tensors = dict(tensors)
    name = draw(st.sampled_from(sorted(tensors)))
    t = tensors[name]
    how = draw(st.sampled_from(["dtype", "shape", "nan", "inf", "huge", "missing", "extra"]))
    if how == "dtype":
        dtype = draw(st.sampled_from([torch.int64, torch.bool, torch.complex64, torch.float64, torch.float16,
                                      torch.bfloat16, torch.uint8, torch.int32]))
        tensors[name] = t.to(dtype)
    elif how == "shape":
        tensors[name] = draw(st.sampled_from([t.reshape(-1)[:-1] if t.numel() else torch.zeros(1), t[None],
                                              torch.zeros(3, 2), torch.zeros(())]))
    elif how in ("nan", "inf", "huge") and t.is_floating_point() and t.numel():
        t = t.clone()
        t.view(-1)[draw(st.integers(0, t.numel() - 1))] = {"nan": math.nan, "inf": -math.inf, "huge": 3e38}[how]
        tensors[name] = t
    elif how == "missing":
        del tensors[name]
    else:
        tensors[draw(st.sampled_from(["model.extra", "optim.99.step", "rng.other", "junk"]))] = torch.ones(2)
    return tensors


def write(path, meta, tensors):
    text = json.dumps(meta).replace(json.dumps(DEEP), "[" * 100_000 + "]" * 100_000)
    path.write_bytes(save({k: v.contiguous() for k, v in tensors.items()}, metadata={"seqgen": text}))


def commands(tmp, corpus_file, resume: bool):
    ckpt = str(tmp / "mutant" / checkpoint.LAST)
    runs = [["info", ckpt], ["info", ckpt, "--json"], ["sample", ckpt, "-n", "20", "--seed", "1"],
            ["eval", ckpt, str(corpus_file)]]
    if resume:  # a step of training from it, in a copy of the run directory
        runs.append(["train", str(corpus_file), "--out", str(tmp / "resumed"), "--resume", "--max-steps", "5", "-q"])
    return runs


def check(args):
    started = time.monotonic()
    result = CliRunner().invoke(cli, args)
    seconds = time.monotonic() - started
    assert isinstance(result.exception, (SystemExit, type(None))), (args, result.exception)  # not an escaped exception
    assert result.exit_code in (0, 1), (args, result.exit_code, result.stderr)
    assert "Traceback" not in result.output and "internal error" not in result.stderr, (args, result.stderr)
    if result.exit_code == 1:
        errors = [line for line in result.stderr.splitlines() if line.startswith("Error: ")]
        assert len(errors) == 1 and errors == result.stderr.strip().splitlines()[-1:], (args, result.stderr)
    assert seconds < SECONDS, (args, seconds)


def peak_megabytes() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # kB on Linux


@pytest.fixture(scope="module")
def memory():
    return peak_megabytes()


SETTINGS = settings(deadline=None, suppress_health_check=list(HealthCheck))


def run_all(tmp, corpus_file, meta, tensors, resume, memory):
    (tmp / "mutant").mkdir(exist_ok=True)
    write(tmp / "mutant" / checkpoint.LAST, meta, tensors)
    shutil.rmtree(tmp / "resumed", ignore_errors=True)
    if resume:
        shutil.copytree(tmp / "mutant", tmp / "resumed")
    for args in commands(tmp, corpus_file, resume):
        check(args)
    assert peak_megabytes() - memory < MEGABYTES


def test_the_checkpoint_unchanged_works_in_every_command(source, corpus_file, memory):
    ckpt, tmp = source
    for args in commands(tmp, corpus_file, resume=True):
        (tmp / "mutant").mkdir(exist_ok=True)
        write(tmp / "mutant" / checkpoint.LAST, ckpt.meta, ckpt.tensors)
        shutil.rmtree(tmp / "resumed", ignore_errors=True)
        shutil.copytree(tmp / "mutant", tmp / "resumed")
        result = CliRunner().invoke(cli, args)
        assert result.exit_code == 0, (args, result.output)


@SETTINGS
@given(data=st.data(), resume=st.booleans())
def test_any_metadata_is_a_result_or_one_error_line(source, corpus_file, memory, data, resume):
    ckpt, tmp = source
    meta = data.draw(meta_mutation(ckpt.meta))
    run_all(tmp, corpus_file, meta, ckpt.tensors, resume, memory)


@SETTINGS
@given(data=st.data(), resume=st.booleans())
def test_any_tensors_are_a_result_or_one_error_line(source, corpus_file, memory, data, resume):
    ckpt, tmp = source
    tensors = data.draw(tensor_mutation(ckpt.tensors))
    run_all(tmp, corpus_file, ckpt.meta, tensors, resume, memory)


@pytest.mark.parametrize("cls", [ModelConfig, TrainConfig, MidiConfig, Progress])
def test_a_saved_config_reads_back_as_itself(cls):
    config = cls(vocab_size=5) if cls is ModelConfig else cls()
    assert checked(cls, {**config.__dict__, "from_a_newer_seqgen": [1]}) == config  # unknown keys ignored


@pytest.mark.parametrize("section,key,value,message", [
    ("model", "layers", 10**9, r"layers = 1000000000: must be an integer >= 1 and <= 64"),
    ("model", "layers", True, r"layers = True: must be an integer"),
    ("model", "hidden", 32.0, r"hidden = 32.0: must be an integer"),
    ("model", "dropout", math.nan, r"dropout = nan: must be a finite number >= 0 and < 1"),
    ("model", "cell", "transformer", r"cell = 'transformer': must be one of lstm, gru, rnn, irnn"),
    ("train", "seq_len", 0, r"train: seq_len = 0: must be an integer >= 1"),
    ("train", "lr", 1e308, r"lr = 1e\+308: must be a finite number > 0 and <= 1000000"),
    ("progress", "step", -1, r"progress: step = -1"),
    ("train", "max_steps", None, None),  # optional: null is fine
])
def test_each_setting_is_checked_with_its_range(source, tmp_path, section, key, value, message):
    ckpt, _ = source
    meta = {**ckpt.meta, section: {**ckpt.meta[section], key: value}}
    write(tmp_path / "x.safetensors", meta, ckpt.tensors)
    read = checkpoint.read_resumable if section == "train" else checkpoint.load  # only a resume runs them
    if message is None:
        read(tmp_path / "x.safetensors")
        return
    with pytest.raises(checkpoint.SeqgenError, match=message):
        read(tmp_path / "x.safetensors")


def test_training_settings_an_older_seqgen_allowed_do_not_stop_sampling(source, tmp_path):
    """Older versions took any --seed, --threads and --lr: a model trained so still samples,
    describes itself and scores, whatever today's command line bounds."""
    ckpt, _ = source
    meta = {**ckpt.meta, "train": {**ckpt.meta["train"], "seed": -(2**70), "threads": 9000, "lr": 2e6}}
    write(tmp_path / "old.safetensors", meta, ckpt.tensors)
    for args in (["sample", "-n", "5"], ["info"], ["info", "--json"]):
        result = CliRunner().invoke(cli, [args[0], str(tmp_path / "old.safetensors"), *args[1:]])
        assert result.exit_code == 0, (args, result.output)


def test_the_cli_takes_its_ranges_from_the_configs():
    options = {p.name: p.type for p in cli.commands["train"].params}
    for cls in (ModelConfig, TrainConfig, MidiConfig):
        for name, f in cls.__dataclass_fields__.items():
            if "range" in f.metadata and name in options:
                r = f.metadata["range"]
                assert (options[name].min, options[name].max) == (r.lo, r.hi), name


def test_other_float_weights_load_as_float32(source, tmp_path):
    ckpt, _ = source
    for dtype in (torch.float64, torch.bfloat16, torch.float16):
        tensors = {k: v.to(dtype) if k.startswith("model.") else v for k, v in ckpt.tensors.items()}
        write(tmp_path / "x.safetensors", ckpt.meta, tensors)
        model, _, _ = checkpoint.load(tmp_path / "x.safetensors")
        assert all(p.dtype == torch.float32 for p in model.parameters())


def test_weights_too_large_to_compute_with_are_one_error_not_blank_samples(source, corpus_file, tmp_path):
    ckpt, _ = source
    tensors = {k: v.sign() * 3e38 if k == "model.head.weight" else v for k, v in ckpt.tensors.items()}  # finite, overflowing
    write(tmp_path / "huge.safetensors", ckpt.meta, tensors)
    result = CliRunner().invoke(cli, ["sample", str(tmp_path / "huge.safetensors"), "-n", "20"])
    assert result.exit_code == 1 and "the model's outputs are not finite numbers" in result.stderr, result.output
