"""CPU threads that hold up on a shared machine.

PyTorch computes on one thread per core, and its OpenMP threads meet at a barrier many times a
step: when another process takes a core, the thread on that core is descheduled for whole
scheduler time slices while the others wait for it. On 2 cores with one other busy process,
training ran 1.5x slower on 2 threads than on 1 (benchmarks/README.md). Making the threads sleep
instead of spin (OMP_WAIT_POLICY=PASSIVE) cures that but costs 20 to 50% on an idle machine.

So unless the user fixes the count (--threads, or OMP_NUM_THREADS), seqgen computes on one thread
per core that other processes leave free: the machine's busy CPU time less this process' own,
over the start-up (importing torch, reading the data) and then every few seconds of training.
Other processes that run at a lower priority (nice) barely take a core from us, and count little.
The count changes only between steps. 1 and 2 threads train bit for bit alike on the machines
measured, but more threads can round differently, so a run that must repeat bit for bit on a busy
machine fixes the count with --threads.
"""

from __future__ import annotations

import math
import os
import time
from dataclasses import dataclass

CHECK_EVERY_S = 5.0  # how often training re-measures the machine
MIN_WINDOW_S = 0.25  # a shorter window says too little to act on
clock = time.monotonic


@dataclass(frozen=True)
class Sample:
    wall: float  # monotonic seconds
    busy: float  # CPU seconds the machine's CPUs that this process may use have been busy
    own: float  # CPU seconds of this process (all its threads)


def _cpus() -> list[int] | None:
    """The CPUs this process may run on (None: all of them)."""
    try:
        return sorted(os.sched_getaffinity(0))
    except AttributeError:  # macOS, Windows
        return None


def sample() -> Sample | None:
    """The CPU time counters now, or None where psutil cannot read them."""
    try:
        import psutil

        per_cpu = psutil.cpu_times(percpu=True)
        mine = psutil.Process().cpu_times()
    except Exception:  # no permission to /proc, an exotic platform: no measurement, no change
        return None
    cpus = _cpus()
    chosen = [per_cpu[i] for i in cpus if i < len(per_cpu)] if cpus is not None else per_cpu
    # Busy is everything but idle and waiting for I/O; steal (a hypervisor's other guests) is busy too.
    busy = sum(sum(t) - t.idle - getattr(t, "iowait", 0.0) - getattr(t, "guest", 0.0) - getattr(t, "guest_nice", 0.0)
               for t in chosen)
    return Sample(clock(), busy, mine.user + mine.system)


def free_cores(then: Sample, now: Sample, cpus: int) -> float:
    """The cores that other processes left free between two samples (0 to `cpus`)."""
    seconds = now.wall - then.wall
    others = max(0.0, (now.busy - then.busy) - (now.own - then.own)) / seconds
    return min(float(cpus), max(0.0, cpus - others))


_start: Sample | None = None
_torch_default: int | None = None  # PyTorch's own thread count, before we changed it


def torch_default() -> int:
    """PyTorch's default thread count in this process (one per physical core, or OMP_NUM_THREADS)."""
    global _torch_default
    if _torch_default is None:
        import torch

        _torch_default = torch.get_num_threads()
    return _torch_default


def note_start() -> None:
    """Called as a command starts, before torch is imported: the first window to measure."""
    global _start
    _start = sample()


class Threads:
    """The thread count of one command: fixed when the user chose it, else following the cores
    that other processes leave free, at most PyTorch's default (one per physical core).

    `check()` is cheap to call every step: it measures only every CHECK_EVERY_S seconds."""

    def __init__(self, fixed: int | None = None, log=None):
        import torch

        self._torch = torch
        self.log = log
        env = os.environ.get("OMP_NUM_THREADS", "").strip()
        self.fixed = fixed or (int(env) if env.isdigit() and int(env) > 0 else None)
        self.most = self.fixed or torch_default()
        self.cpus = len(_cpus() or range(os.cpu_count() or 1))
        self._then = _start if _start is not None else sample()
        if self.fixed:
            torch.set_num_threads(self.fixed)
        else:
            self._measure()

    @property
    def count(self) -> int:
        return self._torch.get_num_threads()

    def check(self) -> None:
        if self.fixed or self._then is None or clock() - self._then.wall < CHECK_EVERY_S:
            return
        self._measure()

    def _measure(self) -> None:
        now = sample()
        if now is None or self._then is None or now.wall - self._then.wall < MIN_WINDOW_S:
            return
        free = free_cores(self._then, now, self.cpus)
        self._then = now
        threads = max(1, min(self.most, math.floor(free + 0.5)))
        if threads != self.count:
            self._torch.set_num_threads(threads)
            if self.log is not None:
                busy = "other processes keep the CPU busy" if threads < self.most else "the CPU is free again"
                self.log(f"Threads: {threads} ({busy}; --threads N fixes the count)")
