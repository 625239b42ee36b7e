"""Training on several processes: PyTorch's DistributedDataParallel, started by torchrun.

torchrun (or `seqgen train --nproc N`, which runs it) starts one process per GPU, or per share of
the CPU cores, and tells each its RANK, LOCAL_RANK and WORLD_SIZE in the environment. Every
process runs the same training loop on its own rows of the global batch; DDP averages the
gradients, so the processes take identical steps and hold identical weights. A process started
without those variables is a world of one, and none of this costs it anything.
"""

from __future__ import annotations

import logging
import os
import signal
import sys
import tempfile
from dataclasses import dataclass
from typing import TYPE_CHECKING

from .errors import SeqgenError

if TYPE_CHECKING:  # torch is imported where it is used: the CLI asks `speaks()` on every command
    import torch


@dataclass(frozen=True)
class World:
    """This process' place among those training together (a world of one by default), and the
    collective operations the trainer needs, which cost nothing in a world of one."""

    rank: int = 0
    size: int = 1
    backend: str | None = None  # "gloo" (CPU) or "nccl" (CUDA); None for a single process
    control: object = None  # a gloo group for numbers the CPU decides on (NCCL moves only GPU tensors)

    @property
    def is_main(self) -> bool:
        """Rank 0: the one process that writes checkpoints, metrics and progress."""
        return self.rank == 0

    def share(self, n: int) -> range:
        """This rank's contiguous share of n items (streams, say); shares differ by at most one."""
        return range(n * self.rank // self.size, n * (self.rank + 1) // self.size)

    def sum(self, *values: float) -> list[float]:
        return self._reduce(values, "SUM")

    def max(self, *values: float) -> list[float]:
        return self._reduce(values, "MAX")

    def _reduce(self, values, op) -> list[float]:
        if self.size == 1:
            return list(values)
        import torch
        import torch.distributed as dist

        t = torch.tensor(values, dtype=torch.float64)
        dist.all_reduce(t, getattr(dist.ReduceOp, op), group=self.control)
        return t.tolist()

    def gather(self, tensor: torch.Tensor, dim: int) -> torch.Tensor:
        """Every rank's `tensor` joined along `dim` in rank order (the shares must be equal)."""
        if self.size == 1:
            return tensor
        import torch
        import torch.distributed as dist

        parts = [torch.empty_like(tensor) for _ in range(self.size)]
        dist.all_gather(parts, tensor.contiguous())
        return torch.cat(parts, dim)

    def agree(self, value):
        """Rank 0's `value` on every rank (a run directory named after the time, say)."""
        if self.size == 1:
            return value
        import torch.distributed as dist

        box = [value]
        dist.broadcast_object_list(box, src=0, group=self.control)
        return box[0]

    def barrier(self) -> None:
        """Wait until every rank is here: before tearing the group down, so that no process closes
        its connections while another still uses them (gloo aborts the process then)."""
        if self.size > 1:
            import torch.distributed as dist

            dist.barrier(group=self.control)  # type: ignore[arg-type]  # a ProcessGroup (or None), held as object

    def wrap(self, model: torch.nn.Module) -> torch.nn.Module:
        """The model as the training step should call it: under DDP when there are several ranks."""
        if self.size == 1:
            return model
        from torch.nn.parallel import DistributedDataParallel

        device = next(model.parameters()).device
        return DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)


# The exit status of a process that lost contact with another (which failed first), and the
# variable that tells the processes `seqgen train --nproc` starts where rank 0 notes that it has
# reported an error (so that the launcher adds nothing, or names the process that failed first).
LOST_CONTACT = 75
LAUNCHER_NOTES = "SEQGEN_LAUNCHER_NOTES"


def note_reported() -> None:
    """Rank 0 has printed an error: tell `--nproc`'s launcher, if it started this process."""
    if os.environ.get(LAUNCHER_NOTES):
        with open(os.environ[LAUNCHER_NOTES], "a") as f:
            f.write("reported\n")


def launched() -> bool:
    """True in a process that torchrun started as one of several."""
    return int(os.environ.get("WORLD_SIZE", "1")) > 1


def writes() -> bool:
    """Whether this process writes the run directory: rank 0 of those torchrun started, or the
    only one. (Known before joining the others, from torchrun's environment.)"""
    return not launched() or os.environ.get("RANK", "0") == "0"


def speaks() -> bool:
    """Whether this process reports errors: rank 0 speaks for all (they fail alike on bad input),
    unless SEQGEN_DEBUG asks to hear from every one."""
    return not launched() or os.environ.get("RANK", "0") == "0" or bool(os.environ.get("SEQGEN_DEBUG"))


def join(device: torch.device) -> tuple[World, torch.device]:
    """This process' place among those torchrun started, and the device it trains on (under
    NCCL, the GPU numbered by LOCAL_RANK); a world of one when not launched by torchrun.
    Joining again returns the same world."""
    if not launched():
        return World(), device
    import torch
    import torch.distributed as dist

    if device.type == "cuda":
        local = int(os.environ.get("LOCAL_WORLD_SIZE", "1"))
        if local > torch.cuda.device_count():  # checked in every process, so rank 0 says it too
            raise SeqgenError(f"{local} processes on this machine, but it has {torch.cuda.device_count()} "
                              "GPUs: start one process per GPU")
        device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
        torch.cuda.set_device(device)
        backend = "nccl"
    elif device.type == "cpu":
        backend = "gloo"
    else:
        raise SeqgenError(f"training on several processes needs CUDA GPUs or the CPU, not {device.type}")
    if not dist.is_initialized():
        try:
            dist.init_process_group(backend)
        except (RuntimeError, ValueError) as e:
            raise SeqgenError(f"could not join the other training processes: {str(e).splitlines()[0]}") from None
        global _control
        _control = dist.new_group(backend="gloo") if backend == "nccl" else None
    return World(dist.get_rank(), dist.get_world_size(), backend, _control), device


_control = None


def leave() -> None:
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def launch(nproc: int, argv: list[str]) -> int:
    """Run `seqgen <argv>` as `nproc` processes on this machine under torchrun's launcher
    (in this process, so an error is one line, not the launcher's report); returns the exit
    status: 0, or the first failing process' own."""
    from torch.distributed.elastic.multiprocessing.api import SignalException
    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError
    from torch.distributed.run import get_args_parser, run

    # torchrun gives each process one thread unless told otherwise; a CPU run wants the cores
    # shared out instead (GPU runs hardly use the CPU, and one thread each is right there).
    os.environ.setdefault("OMP_NUM_THREADS", str(max(1, (os.cpu_count() or 1) // nproc)))
    fd, notes = tempfile.mkstemp(prefix="seqgen-launch-")
    os.close(fd)
    os.environ[LAUNCHER_NOTES] = notes
    # The launcher logs each failure and signal at length; the processes' own one-line messages
    # say what happened. (Its loggers set their own levels, so each one is quietened.)
    for name in list(logging.root.manager.loggerDict):
        if name.startswith("torch.distributed"):
            logging.getLogger(name).setLevel(logging.CRITICAL)
    # On Ctrl-C the launcher passes the signal on, then kills what still runs after this long:
    # enough for every process to finish its step, evaluate and save (30 s, torchrun's default, is not).
    args = get_args_parser().parse_args(["--standalone", f"--nproc-per-node={nproc}", "--shutdown-timeout=3600",
                                         "-m", "seqgen"])
    args.training_script_args = argv  # set, not parsed: torchrun's parser would take --nproc for its own
    try:
        run(args)
    except ChildFailedError as e:
        # The launcher's own SIGTERMs and lost contact are consequences, not the cause.
        causes = {r: f for r, f in e.failures.items() if f.exitcode not in (LOST_CONTACT, -signal.SIGTERM)}
        rank, failure = min(causes.items(), key=lambda rf: rf[1].timestamp) if causes else e.get_first_failure()
        if os.path.getsize(notes):  # rank 0 has printed the error (every process met the same one)
            return failure.exitcode if failure.exitcode > 0 else 1
        if failure.exitcode < 0:
            print(f"Error: training process {rank} was killed by signal {-failure.exitcode}", file=sys.stderr)
            return 128 - failure.exitcode
        print(f"Error: training process {rank} failed with exit status {failure.exitcode}; run with "
              "SEQGEN_DEBUG=1 to see its own error", file=sys.stderr)
        return failure.exitcode
    except SignalException as e:  # Ctrl-C reached the processes too: they saved and said so
        return 128 + int(e.sigval)
    finally:
        os.unlink(notes)
    return 0

