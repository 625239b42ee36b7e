"""Checkpoints: one safetensors file holding tensors, with everything else as JSON in its header.

Nothing is ever unpickled, so opening a checkpoint cannot run code. Layout of the tensors:
`model.*` the weights; in resumable checkpoints also `optim.<i>.<name>` (AdamW moments),
`rng.*` (generator states) and `carry` (the recurrent state carried between batches).
"""

from __future__ import annotations

import hashlib
import json
import struct
import time
from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load as st_load
from safetensors.torch import save as st_save

from . import __version__
from .atomic import atomic_write_bytes
from .config import COUNT, KINDS, PRECISIONS, ModelConfig, Progress, TrainConfig, checked, describe
from .errors import SeqgenError
from .files import read_regular
from .model import RNNLM, parameter_shapes
from .tokenizers import tokenizer_from_dict

FORMAT = "seqgen-checkpoint"
FORMAT_VERSION = 1
BEST, LAST = "best.safetensors", "last.safetensors"
KEPT = "step-{:08d}.safetensors"  # earlier resumable checkpoints, with --keep 2 or more
MAX_HEADER = 64 << 20  # the JSON header of a real checkpoint is a few kB
MAX_FILE = 64 << 30  # far beyond any model this CLI trains on one machine; read whole into memory
MAX_DEPTH = 16  # nesting of the metadata: a real checkpoint's is 5 (optimizer.param_groups[i].params)
# Weights are float32 as saved; other float types load as float32 (copied by load_state_dict).
WEIGHT_DTYPES = (torch.float32, torch.bfloat16, torch.float16, torch.float64)


@dataclass
class Checkpoint:
    """A checkpoint as read: its JSON metadata (checked), its tensors by name, and where it came from."""

    meta: dict
    tensors: dict[str, torch.Tensor]
    path: Path
    sha256: str = ""  # of the file's bytes as read

    def group(self, prefix: str) -> dict[str, torch.Tensor]:
        return {k[len(prefix) :]: v for k, v in self.tensors.items() if k.startswith(prefix)}


def save(path: Path, meta: dict, tensors: dict[str, torch.Tensor]) -> None:
    meta = {"format": FORMAT, "version": FORMAT_VERSION, "seqgen_version": __version__,
            "saved_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"), **meta}
    cpu = {k: v.detach().to("cpu").contiguous() for k, v in tensors.items()}
    atomic_write_bytes(Path(path), st_save(cpu, metadata={"seqgen": json.dumps(meta)}))


def kept(run_dir: Path) -> list[Path]:
    """The earlier resumable checkpoints of a run, oldest first."""
    return sorted(Path(run_dir).glob("step-*.safetensors"), key=lambda p: p.stem)


def resolve(path: Path) -> Path:
    """A checkpoint file, or a run directory meaning its best (else last) checkpoint."""
    path = Path(path)
    if path.is_dir():
        for name in (BEST, LAST):
            if (path / name).is_file():
                return path / name
        raise SeqgenError(f"{path}: no {BEST} or {LAST} in this directory")
    if not path.exists():
        raise SeqgenError(f"{path}: no such checkpoint file or run directory")
    return path


def read(path: Path) -> Checkpoint:
    """The checkpoint at `path`, its metadata checked (see `_check_meta`) before anything is built."""
    path = resolve(path)
    data = read_regular(path, MAX_FILE, "a checkpoint")
    meta = _header_meta(data, path)
    if meta.get("format") != FORMAT:
        raise SeqgenError(f"{path}: a safetensors file, but not a seqgen checkpoint")
    version = meta.get("version")
    if type(version) is not int or version < 1:
        raise SeqgenError(f"{path}: bad checkpoint metadata (format version {describe(version)})")
    if version > FORMAT_VERSION:
        raise SeqgenError(f"{path}: checkpoint format {version} is newer than this seqgen understands "
                          f"({FORMAT_VERSION}); upgrade seqgen")
    _check_meta(meta, path)
    try:
        tensors = st_load(data)
    except (SafetensorError, ValueError, RuntimeError) as e:
        raise SeqgenError(f"{path}: corrupt or truncated checkpoint ({e})") from None
    return Checkpoint(meta, tensors, path, hashlib.sha256(data).hexdigest())


def _header_meta(data: bytes, path: Path) -> dict:
    # safetensors layout: u64 little-endian header length, then that many bytes of JSON.
    if len(data) < 8:
        raise SeqgenError(f"{path}: not a checkpoint (file too short)")
    (n,) = struct.unpack("<Q", data[:8])
    if n > min(MAX_HEADER, len(data) - 8) or data[8:9] != b"{":
        # Only now, and only without a JSON header's "{" at byte 8, do pickle's and zip's first
        # bytes mean a pickle: a safetensors header of 128 + 256k bytes also starts the file with
        # 0x80, and so does such a checkpoint cut short.
        if data[8:9] != b"{" and (data[:2] == b"PK" or data[:1] == b"\x80"):
            raise SeqgenError(f"{path}: a PyTorch/pickle file; seqgen never unpickles files (they can run "
                              "code) and reads only its own safetensors checkpoints")
        raise SeqgenError(f"{path}: not a safetensors checkpoint, or truncated")
    try:
        header = json.loads(data[8 : 8 + n])
        meta = json.loads(header["__metadata__"]["seqgen"])
    except (ValueError, KeyError, TypeError, RecursionError):  # RecursionError: JSON nested too deep
        raise SeqgenError(f"{path}: not a seqgen checkpoint (no seqgen metadata)") from None
    if not isinstance(meta, dict):
        raise SeqgenError(f"{path}: not a seqgen checkpoint (bad metadata)")
    return meta


def _depth(value) -> int:
    """How deeply lists and dicts nest in `value`, without recursion."""
    deepest, level = 0, [value]
    while level:
        deepest += 1
        level = [v for x in level if isinstance(x, (dict, list)) for v in (x.values() if isinstance(x, dict) else x)]
    return deepest - 1


def _check_meta(meta: dict, path: Path) -> None:
    """Every setting a command reads from the metadata, checked against the CLI's types and
    ranges (config.py), so that what is built from them (a model of `layers` layers, a tokenizer,
    a report) can be built, and a bad file is one line naming the setting, never a crash."""
    if _depth(meta) > MAX_DEPTH:
        raise SeqgenError(f"{path}: bad checkpoint metadata (nested more than {MAX_DEPTH} levels deep)")
    for name in ("model", "tokenizer"):
        if name not in meta:
            raise SeqgenError(f"{path}: bad checkpoint metadata (no {name} settings)")
    # The training settings are checked only by a resume (read_resumable), which runs them:
    # sample, info and eval need none, and a run from an older seqgen may hold a setting that
    # this one's command line bounds more tightly.
    for name, cls in {"model": ModelConfig, "progress": Progress}.items():
        if name in meta:
            _check_section(meta, name, cls, path)
    _check_tokenizer(meta["tokenizer"], path)
    fields = {"train": dict, "corpus": dict, "metrics": dict, "optimizer": dict, "precision": str, "resumable": bool,
              "processes": int, "seqgen_version": str, "saved_at": str}
    for name, kind in fields.items():
        if name in meta and not (isinstance(meta[name], kind) and (kind is bool or not isinstance(meta[name], bool))):
            raise SeqgenError(f"{path}: bad checkpoint metadata ({name} = {describe(meta[name])})")
    if meta.get("precision", "fp32") not in PRECISIONS:
        raise SeqgenError(f"{path}: bad checkpoint metadata (precision = {describe(meta['precision'])})")
    _check_corpus(meta.get("corpus", {}), path)
    _check_lineage(meta.get("lineage", []), path)


MAX_LINEAGE = 64  # the base models a checkpoint names, newest first: a fine-tuning chain's last 64


def _check_lineage(lineage, path: Path) -> None:
    """The base models of a fine-tuned run (finetune.py): each with its checkpoint's path and
    SHA-256, and the corpus and step it had reached."""
    ok = isinstance(lineage, list) and len(lineage) <= MAX_LINEAGE and all(
        isinstance(b, dict) and set(b) == {"checkpoint", "sha256", "corpus", "step"}
        and isinstance(b["checkpoint"], str) and len(b["checkpoint"]) <= 4096
        and isinstance(b["sha256"], str) and len(b["sha256"]) == 64 and all(c in "0123456789abcdef" for c in b["sha256"])
        and (b["corpus"] is None or isinstance(b["corpus"], str) and len(b["corpus"]) <= 4096)
        and (b["step"] is None or type(b["step"]) is int and 0 <= b["step"] <= COUNT) for b in lineage)
    if not ok:
        raise SeqgenError(f"{path}: bad checkpoint metadata (lineage: a list of at most {MAX_LINEAGE} base models, each "
                          "{checkpoint, sha256, corpus, step})")


def _check_section(meta: dict, name: str, cls, path: Path) -> None:
    try:
        checked(cls, meta[name])
    except (TypeError, ValueError) as e:
        raise SeqgenError(f"{path}: bad checkpoint metadata ({name}: {e})") from None


def _check_tokenizer(data, path: Path) -> None:
    try:
        tokenizer_from_dict(data)
    except SeqgenError as e:
        raise SeqgenError(f"{path}: bad checkpoint metadata (tokenizer: {e})") from None


# What commands read of the corpus a run was trained on (`info` prints it, `--resume` reloads it).
CORPUS_FIELDS = {"name": str, "kind": str, "spec": str, "source": str, "sha256": str, "characters": int, "files": int,
                 "keep_line_endings": bool}


def _check_corpus(corpus: dict, path: Path) -> None:
    for name, kind in CORPUS_FIELDS.items():
        value = corpus.get(name)
        if name not in corpus or (value is None and kind is str):  # info prints a missing name as None
            continue
        if kind is int:
            ok = isinstance(value, int) and not isinstance(value, bool) and value >= 0
        else:
            ok = isinstance(value, kind)
        if not ok or (name == "kind" and value not in KINDS):
            raise SeqgenError(f"{path}: bad checkpoint metadata (corpus {name} = {describe(value)})")


def build_model(ckpt: Checkpoint) -> RNNLM:
    """The model with the checkpoint's weights, on the CPU, in eval mode."""
    config = checked(ModelConfig, ckpt.meta["model"])  # checked by read(): it cannot fail here
    weights = _checked_weights(ckpt, config)  # before the model is built, which a bad config would make huge
    model = RNNLM(config)
    model.load_state_dict(weights)
    return model.eval()


def _checked_weights(ckpt: Checkpoint, config: ModelConfig) -> dict[str, torch.Tensor]:
    """The model's weights in the checkpoint, exactly the tensors `config` describes (checked
    before anything is built: a config naming absurd sizes costs no memory, since the file
    bounds what it holds), each a finite float."""
    weights = ckpt.group("model.")
    expected = parameter_shapes(config)
    found = {k: tuple(v.shape) for k, v in weights.items()}
    if expected != found:
        diff = min(set(expected.items()) ^ set(found.items()))[0]
        raise SeqgenError(f"{ckpt.path}: checkpoint weights do not match its model config "
                          f"(tensor {diff!r} is missing or has the wrong shape)")
    for name, tensor in weights.items():
        check_tensor(ckpt, f"model.{name}", tensor, WEIGHT_DTYPES)
    return weights


def check_tensor(ckpt: Checkpoint, name: str, tensor: torch.Tensor, dtypes, shape=None) -> None:
    """A tensor of the checkpoint: one of `dtypes`, of `shape` if given, and if floating-point
    finite (as float32, the type it is used in: a float64 of 1e300 is inf there)."""
    if tensor.dtype not in dtypes:
        allowed = ", ".join(str(d).removeprefix("torch.") for d in dtypes)
        raise SeqgenError(f"{ckpt.path}: checkpoint tensor {name!r} is {str(tensor.dtype).removeprefix('torch.')}, "
                          f"not {allowed}")
    if shape is not None and tuple(tensor.shape) != tuple(shape):
        raise SeqgenError(f"{ckpt.path}: checkpoint tensor {name!r} has shape {tuple(tensor.shape)}, "
                          f"not {tuple(shape)}")
    if tensor.is_floating_point() and not torch.isfinite(tensor.to(torch.float32)).all():
        raise SeqgenError(f"{ckpt.path}: checkpoint tensor {name!r} holds NaN or infinite values")


def load(path: Path):
    """(model, tokenizer, checkpoint) from a checkpoint file or run directory."""
    ckpt = read(path)
    return (*build(ckpt), ckpt)


def build(ckpt: Checkpoint):
    """(model, tokenizer) of a checkpoint as read."""
    tokenizer = tokenizer_from_dict(ckpt.meta["tokenizer"])  # checked by read()
    model = build_model(ckpt)
    if tokenizer.vocab_size != model.config.vocab_size:
        raise SeqgenError(f"{ckpt.path}: the tokenizer's vocabulary ({tokenizer.vocab_size}) does not match "
                          f"the model's ({model.config.vocab_size})")
    if tokenizer.control_size != model.config.control_inputs:
        raise SeqgenError(f"{ckpt.path}: the tokenizer's controls ({tokenizer.control_size} inputs) do not match "
                          f"the model's ({model.config.control_inputs})")
    return model, tokenizer


def read_resumable(path: Path) -> Checkpoint:
    """A `last` checkpoint to continue a run from, with the settings a resumed run reads."""
    ckpt = read(path)
    if ckpt.meta.get("resumable") is not True:
        raise SeqgenError(f"{ckpt.path}: not a resumable checkpoint (use the run's {LAST})")
    for name in ("train", "progress", "optimizer"):
        if name not in ckpt.meta:
            raise SeqgenError(f"{ckpt.path}: bad checkpoint metadata (no {name} settings, which resuming needs)")
    _check_section(ckpt.meta, "train", TrainConfig, ckpt.path)
    return ckpt


def resume_state(ckpt: Checkpoint, model: RNNLM, optimizer: torch.optim.Optimizer, batch_size: int) -> dict:
    """Checks every tensor and setting a resumed run loads against the model and optimizer it
    loads them into (shapes, dtypes, finite values), so none can fail halfway or train on
    garbage; returns the optimizer's state dict to load."""
    _checked_weights(ckpt, model.config)
    rng = ckpt.tensors.get("rng.torch")
    if rng is None:
        raise SeqgenError(f"{ckpt.path}: checkpoint tensor 'rng.torch' is missing")
    check_tensor(ckpt, "rng.torch", rng, (torch.uint8,), torch.get_rng_state().shape)
    carry = ckpt.tensors.get("carry")
    if carry is None:
        raise SeqgenError(f"{ckpt.path}: checkpoint tensor 'carry' is missing")
    c = model.config
    check_tensor(ckpt, "carry", carry, (torch.float32,), (c.layers, model.state_size, batch_size, c.hidden))
    groups = _param_groups(ckpt, optimizer.state_dict()["param_groups"])
    return {"state": _optimizer_tensors(ckpt, optimizer, groups), "param_groups": groups}


# How torch computes the update, not what it computes: the fresh optimizer's choice for this
# machine and torch stands (a checkpoint written with the plain loop resumes fused, and one
# written fused resumes where torch has no fused kernel). Checked all the same.
IMPLEMENTATION = frozenset({"fused", "foreach", "capturable", "differentiable"})


def _param_groups(ckpt: Checkpoint, mine: list[dict]) -> list[dict]:
    """The saved optimizer settings over a fresh optimizer's: the same parameters in the same
    groups, each known setting of the same kind (keys a newer torch adds are left out), but the
    implementation flags stay the fresh optimizer's (IMPLEMENTATION)."""
    saved = ckpt.meta["optimizer"].get("param_groups")
    if not isinstance(saved, list) or len(saved) != len(mine):
        raise SeqgenError(f"{ckpt.path}: bad checkpoint metadata (optimizer param_groups)")
    groups = []
    for i, (fresh, theirs) in enumerate(zip(mine, saved)):
        if not isinstance(theirs, dict) or not _same_ids(theirs.get("params"), fresh["params"]):
            raise SeqgenError(f"{ckpt.path}: bad checkpoint metadata (optimizer param_groups[{i}] params)")
        group = dict(fresh)
        for key, value in theirs.items():
            if key in fresh and key != "params":
                if not (_like(value, fresh[key], key) or key in IMPLEMENTATION and (value is None or isinstance(value, bool))):
                    raise SeqgenError(f"{ckpt.path}: bad checkpoint metadata (optimizer param_groups[{i}] "
                                      f"{key} = {describe(value)})")
                if key not in IMPLEMENTATION:
                    group[key] = value
        groups.append(group)
    return groups


def _same_ids(ids, expected: list[int]) -> bool:
    return isinstance(ids, list) and len(ids) == len(expected) and all(
        type(a) is int and a == b for a, b in zip(ids, expected))


def _like(value, fresh, key: str) -> bool:
    """Whether a saved optimizer setting is the same kind of value as a fresh optimizer's."""
    if isinstance(fresh, bool) or fresh is None:  # flags; None means "let torch choose"
        return isinstance(value, bool) or value is fresh
    if isinstance(fresh, (int, float)):  # lr, eps, weight_decay: non-negative
        return isinstance(value, (int, float)) and not isinstance(value, bool) and 0 <= value < float("inf")
    if isinstance(fresh, (list, tuple)):  # betas: each in [0, 1)
        return (isinstance(value, list) and len(value) == len(fresh) and all(
            isinstance(b, (int, float)) and not isinstance(b, bool) and 0 <= b < 1 for b in value))
    return type(value) is type(fresh)


def _optimizer_tensors(ckpt: Checkpoint, optimizer: torch.optim.Optimizer, groups: list[dict]) -> dict:
    """AdamW's per-parameter state: a step count and moments shaped like the parameter."""
    params = [p for group in optimizer.param_groups for p in group["params"]]  # in the order of their ids
    names = ["step", "exp_avg", "exp_avg_sq"] + (["max_exp_avg_sq"] if groups[0].get("amsgrad") else [])
    saved = ckpt.group("optim.")
    expected = {f"{i}.{name}" for i in range(len(params)) for name in names}
    if saved.keys() != expected:
        odd = min(saved.keys() ^ expected)
        raise SeqgenError(f"{ckpt.path}: checkpoint tensor 'optim.{odd}' is missing or unexpected")
    state: dict[int, dict[str, torch.Tensor]] = {}
    for i, param in enumerate(params):
        for name in names:
            tensor = saved[f"{i}.{name}"]
            shape = () if name == "step" else param.shape
            check_tensor(ckpt, f"optim.{i}.{name}", tensor, (torch.float32,), shape)
            if name != "exp_avg" and (tensor < 0).any():  # a negative step or second moment makes NaN
                raise SeqgenError(f"{ckpt.path}: checkpoint tensor 'optim.{i}.{name}' holds negative values")
            state.setdefault(i, {})[name] = tensor
    return state


def restore_rng(ckpt: Checkpoint, device: torch.device) -> None:
    """The saved generator states (checked by `resume_state`); torch refuses some bytes of the
    right size, which is a bad checkpoint too."""
    try:
        torch.set_rng_state(ckpt.tensors["rng.torch"])
        if device.type == "cuda" and "rng.cuda" in ckpt.tensors:
            cuda = ckpt.tensors["rng.cuda"]
            check_tensor(ckpt, "rng.cuda", cuda, (torch.uint8,), torch.cuda.get_rng_state(device).shape)
            torch.cuda.set_rng_state(cuda, device)
    except RuntimeError as e:
        first = (str(e).strip().splitlines() or [type(e).__name__])[0]
        raise SeqgenError(f"{ckpt.path}: bad generator state in the checkpoint ({first})") from None
