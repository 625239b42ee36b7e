"""Checkpoints: one safetensors file holding tensors, with everything else as JSON in its header.

Nothing is ever unpickled, so opening a checkpoint cannot run code. Layout of the tensors:
`model.*` the weights; in resumable checkpoints also `optim.<i>.<name>` (AdamW moments),
`rng.*` (generator states) and `carry` (the recurrent state carried between batches).
"""

from __future__ import annotations

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
from .config import ModelConfig, from_dict
from .errors import SeqgenError
from .model import RNNLM, parameter_shapes
from .tokenizers import tokenizer_from_dict

FORMAT = "seqgen-checkpoint"
FORMAT_VERSION = 1
BEST, LAST = "best.safetensors", "last.safetensors"
KEPT = "step-{:08d}.safetensors"  # earlier resumable checkpoints, with --keep 2 or more
MAX_HEADER = 64 << 20  # the JSON header of a real checkpoint is a few kB


@dataclass
class Checkpoint:
    meta: dict
    tensors: dict[str, torch.Tensor]
    path: Path

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
    path = resolve(path)
    try:
        data = path.read_bytes()
    except OSError as e:
        raise SeqgenError(f"{path}: {e.strerror or e}") from None
    meta = _header_meta(data, path)
    if meta.get("format") != FORMAT:
        raise SeqgenError(f"{path}: a safetensors file, but not a seqgen checkpoint")
    if not isinstance(meta.get("version"), int) or meta["version"] > FORMAT_VERSION:
        raise SeqgenError(
            f"{path}: checkpoint format {meta.get('version')!r} is newer than this seqgen "
            f"understands ({FORMAT_VERSION}); upgrade seqgen"
        )
    try:
        tensors = st_load(data)
    except (SafetensorError, ValueError, RuntimeError) as e:
        raise SeqgenError(f"{path}: corrupt or truncated checkpoint ({e})") from None
    return Checkpoint(meta, tensors, path)


def _header_meta(data: bytes, path: Path) -> dict:
    # safetensors layout: u64 little-endian header length, then that many bytes of JSON.
    if len(data) < 8:
        raise SeqgenError(f"{path}: not a checkpoint (file too short)")
    (n,) = struct.unpack("<Q", data[:8])
    if n > min(MAX_HEADER, len(data) - 8) or data[8:9] != b"{":
        # Only now do pickle's and zip's first bytes mean a pickle: a safetensors header of
        # 128 + 256k bytes also starts the file with 0x80.
        if data[:2] == b"PK" or data[:1] == b"\x80":
            raise SeqgenError(f"{path}: a PyTorch/pickle file; seqgen never unpickles files (they can run "
                              "code) and reads only its own safetensors checkpoints")
        raise SeqgenError(f"{path}: not a safetensors checkpoint, or truncated")
    try:
        header = json.loads(data[8 : 8 + n])
        meta = json.loads(header["__metadata__"]["seqgen"])
    except (ValueError, KeyError, TypeError):
        raise SeqgenError(f"{path}: not a seqgen checkpoint (no seqgen metadata)") from None
    if not isinstance(meta, dict):
        raise SeqgenError(f"{path}: not a seqgen checkpoint (bad metadata)")
    return meta


def build_model(ckpt: Checkpoint) -> RNNLM:
    """The model with the checkpoint's weights, on the CPU, in eval mode."""
    weights = ckpt.group("model.")
    try:
        config = from_dict(ModelConfig, ckpt.meta["model"])
        # The config must describe exactly the tensors in the file (whose size the file itself
        # bounds) before anything is built: a config naming absurd sizes costs no memory.
        expected = parameter_shapes(config)
        found = {k: tuple(v.shape) for k, v in weights.items()}
        if expected != found:
            diff = sorted(set(expected.items()) ^ set(found.items()))[0][0]
            raise ValueError(f"tensor {diff!r} is missing or has the wrong shape")
        model = RNNLM(config)
        model.load_state_dict(weights)
    except (KeyError, TypeError, ValueError, RuntimeError) as e:
        first = (str(e).strip().splitlines() or [type(e).__name__])[0]
        raise SeqgenError(f"{ckpt.path}: checkpoint weights do not match its model config ({first})") from None
    return model.eval()


def load(path: Path):
    """(model, tokenizer, checkpoint) from a checkpoint file or run directory."""
    ckpt = read(path)
    try:
        tokenizer = tokenizer_from_dict(ckpt.meta["tokenizer"])
    except (KeyError, TypeError) as e:
        raise SeqgenError(f"{ckpt.path}: checkpoint has no usable tokenizer ({e})") from None
    model = build_model(ckpt)
    if tokenizer.vocab_size != model.config.vocab_size:
        raise SeqgenError(f"{ckpt.path}: the tokenizer's vocabulary ({tokenizer.vocab_size}) does not match "
                          f"the model's ({model.config.vocab_size})")
    return model, tokenizer, ckpt
