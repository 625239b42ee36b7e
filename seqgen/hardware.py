"""What this machine can do: the device and the compute precision of a command (threads.py: its threads).

Chosen from what runs here, not from what a flag promises: bf16 is used only after a tiny model
of the run's own cell has trained a step in it (oneDNN has no bf16 LSTM kernel below AVX-512,
whatever the CPU's flags say).
"""

from __future__ import annotations

import functools
import warnings

import torch

from .cells import CELLS
from .config import ModelConfig
from .errors import SeqgenError


def pick_device(name: str) -> torch.device:
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise SeqgenError("--device cuda: no CUDA GPU is available to this PyTorch build", exit_code=2)
    if name == "mps" and not torch.backends.mps.is_available():
        raise SeqgenError("--device mps: Apple's Metal backend is not available here", exit_code=2)
    return torch.device(name)


def native_bf16_cpu() -> bool:
    """Whether this CPU multiplies bf16 in hardware (AVX512-BF16 or AMX) and PyTorch's kernels
    are allowed to use it: ATEN_CPU_CAPABILITY=avx2 (which also caps the bf16 conversions) says no,
    whatever the CPU's flags."""
    capabilities: dict = getattr(torch.cpu, "get_capabilities", dict)()
    flags = bool(capabilities.get("avx512_bf16") or capabilities.get("amx_bf16"))
    return flags and torch.backends.cpu.get_cpu_capability().startswith("AVX512")


@functools.lru_cache(maxsize=None)
def bf16_failure(cell: str, device: torch.device) -> str | None:
    """Why a `cell` model cannot train in bf16 autocast on `device`, or None when it can.

    The probe is one forward and backward pass of a tiny model with the run's cell, once per
    process (about 10 ms): it meets the same kernels as the run, and it leaves the random
    number generators as it found them."""
    from .model import RNNLM, sequence_loss  # the model is built only when a probe runs

    with torch.random.fork_rng(devices=[]):
        model = RNNLM(ModelConfig(vocab_size=5, cell=cell, layers=1, hidden=8, embed=4)).to(device)
        ids = torch.arange(12, device=device).remainder(5).view(2, 6)  # (B, T)
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # "autocast is not supported here": the dtype check says so
                with torch.autocast(device.type, dtype=torch.bfloat16):
                    logits, _ = model(ids, model.initial_state(2, device))  # (B, T, V)
            sequence_loss(logits.float(), ids).backward()
        except Exception as e:  # noqa: BLE001  whatever the kernels raise, the answer is: not here
            # oneDNN's messages go on with advice about its verbose mode: the first sentence is the cause.
            message = str(e).strip().split(". ")[0].splitlines()
            return f"{type(e).__name__}: {message[0]}" if message else type(e).__name__
    if logits.dtype != torch.bfloat16:  # a backend without bf16 autocast warns and computes in fp32
        return f"autocast on {device.type} computed in {str(logits.dtype).removeprefix('torch.')}, not bfloat16"
    return None


def pick_precision(name: str, device: torch.device, cell: str = "lstm") -> torch.dtype | None:
    """The dtype training computes in under autocast, or None for plain fp32.

    auto: bf16 for a cell it pays for (`Cell.bf16_pays`: the LSTM, 1.2 to 1.6x faster;
    benchmarks/README.md) on a CPU that computes it natively (native_bf16_cpu), where the probe of
    the run's cell succeeds. GRU and RNN stay in fp32 there: seqgen.cells' own fp32 functions train
    them as fast as torch's bf16 kernels, and as well (tiny Shakespeare, GRU: 1.4925 fp32 against
    1.4950 bf16, two 105 s runs each), with fp32's precision and the same numbers as on any other
    CPU. Everywhere else fp32, GPUs included until mixed precision is measured there. bf16:
    refused with the cause when the probe fails. The weights, the optimizer and evaluation stay
    fp32 either way, so checkpoints do not depend on the precision.
    """
    if name == "fp32":
        return None
    if name == "bf16":
        if device.type == "cuda" and not torch.cuda.is_bf16_supported():
            raise SeqgenError("--precision bf16: this GPU does not support bfloat16; use --precision fp32", exit_code=2)
        failure = bf16_failure(cell, device)
        if failure is not None:
            where = "this CPU" if device.type == "cpu" else f"this {device.type} device"
            raise SeqgenError(f"--precision bf16: {where} cannot train {cell.upper()} cells in bfloat16 ({failure}); "
                              "use --precision fp32 (or auto, which picks bf16 only where it runs)", exit_code=2)
        return torch.bfloat16
    if device.type == "cpu" and CELLS[cell].bf16_pays and native_bf16_cpu() and bf16_failure(cell, device) is None:
        return torch.bfloat16
    return None


def check_fits(params: int, device: torch.device) -> None:
    """Refuse, in one line, a model too large to train here, before allocating any of it: its
    weights, gradients and AdamW's two moments are four fp32 copies (activations come on top)."""
    need = 16 * params
    if device.type == "cuda":
        free = torch.cuda.mem_get_info(device)[0]
    else:
        import psutil

        free = psutil.virtual_memory().available
    if need > free:
        raise SeqgenError(f"a model of {params:,} parameters needs {need / 2**30:,.1f} GB to train (weights, gradients "
                          f"and optimizer state), and {free / 2**30:,.1f} GB is free; use a smaller --hidden, "
                          "--layers or --embed")
