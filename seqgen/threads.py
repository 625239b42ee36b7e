"""CPU threads that hold up on a shared machine.

PyTorch computes on one thread per core, and its OpenMP threads meet at a barrier many times a
step: when another process takes a core, the thread on that core is descheduled for whole
scheduler time slices while the others wait for it. On 2 cores with one other busy process,
training took 1.9x as long on 2 threads as on 1, and sampling 2.1x (benchmarks/README.md). Making
the threads sleep instead of spin (OMP_WAIT_POLICY=PASSIVE) cures that but costs 13 to 48% on an
idle machine.

So unless the user fixes the count (--threads, or OMP_NUM_THREADS), a seqgen command computes on
one thread per CPU that other processes leave free: the busy CPU time of the CPUs this process
may use, less its own (and its children's), over the start-up (importing torch, reading the data)
and then every few seconds of training. Processes at a lower priority than ours (nice) are not
counted: the scheduler gives them only what we leave. Outside the CLI (seqgen as a library) the
thread count is left alone unless given.

The count changes only between steps, and only after two measurements agree. 1 and 2 threads
train bit for bit alike on the machines measured, but other counts can round differently, so a
run that must repeat bit for bit on a busy machine fixes the count with --threads.
"""

from __future__ import annotations

import math
import os
import time
from dataclasses import dataclass
from pathlib import Path

CHECK_EVERY_S = 5.0  # how often training re-measures the machine
MIN_WINDOW_S = 0.25  # a shorter window says too little to act on
clock = time.monotonic


@dataclass(frozen=True)
class Sample:
    """CPU time counters at one moment, for measuring how busy the machine is between two."""

    wall: float  # monotonic seconds
    busy: float  # CPU seconds the CPUs this process may use were busy with work at our priority or above
    own: float  # CPU seconds of this process and its children (all their threads)


def _cpus() -> list[int] | None:
    """The CPUs this process may run on (None: all of them)."""
    try:
        return sorted(os.sched_getaffinity(0))
    except AttributeError:  # macOS, Windows
        return None


def _quota() -> float | None:
    """CPUs a container's cgroup lets this process use (cgroup v2 cpu.max, or v1), or None.

    PyTorch sizes its pool by the host's cores, which a container with `--cpus 2` on a 64-core
    host would oversubscribe 16 times over."""
    for path, split in (("/sys/fs/cgroup/cpu.max", None), ("/sys/fs/cgroup/cpu/cpu.cfs_quota_us", "period")):
        try:
            if split is None:
                quota, period = Path(path).read_text().split()[:2]
            else:
                quota = Path(path).read_text().strip()
                period = Path("/sys/fs/cgroup/cpu/cpu.cfs_period_us").read_text().strip()
            if quota not in ("max", "-1") and float(period) > 0:
                return float(quota) / float(period)
        except (OSError, ValueError):
            continue
    return None


def _niced() -> bool:
    try:
        return os.getpriority(os.PRIO_PROCESS, 0) > 0
    except (AttributeError, OSError):
        return False


def sample() -> Sample | None:
    """The CPU time counters now, or None where psutil cannot read them."""
    try:
        import psutil

        per_cpu = psutil.cpu_times(percpu=True)
        me = psutil.Process()
        family = [me, *me.children(recursive=True)]  # workers we started (MIDI conversion) are ours
        own = 0.0
        for process in family:
            try:
                times = process.cpu_times()
            except psutil.Error:  # a worker that just ended
                continue
            own += times.user + times.system + (times.children_user + times.children_system if process is me else 0)
    except Exception:  # no permission to /proc, an exotic platform: no measurement, no change
        return None
    cpus = _cpus()
    chosen = [per_cpu[i] for i in cpus if i < len(per_cpu)] if cpus is not None else per_cpu
    # Busy is everything but idle and waiting for I/O (guest time is inside user time already); a
    # hypervisor's other guests (steal) take the CPU too. Niced work counts only if we are niced.
    ignored = ("idle", "iowait", "guest", "guest_nice") + (() if _niced() else ("nice",))
    busy = sum(sum(t) - sum(getattr(t, name, 0.0) for name in ignored) for t in chosen)
    return Sample(clock(), busy, own)


def free_cpus(then: Sample, now: Sample, cpus: float) -> float:
    """The CPUs that other processes left free between two samples (0 to `cpus`)."""
    seconds = now.wall - then.wall
    others = max(0.0, (now.busy - then.busy) - (now.own - then.own)) / seconds
    return min(cpus, max(0.0, cpus - others))


_start: Sample | None = None  # set by the CLI as a command starts; a library caller sets nothing
_torch_default: int | None = None  # PyTorch's own thread count, before we changed it


def note_start() -> None:
    """Called as a command starts, before torch is imported: the first window to measure, and
    what lets the command follow the machine's load."""
    global _start
    _start = sample()


def torch_default() -> int:
    """PyTorch's default thread count in this process (one per physical core, or OMP_NUM_THREADS)."""
    global _torch_default
    if _torch_default is None:
        import torch

        _torch_default = torch.get_num_threads()
    return _torch_default


def _env_threads() -> int | None:
    first = os.environ.get("OMP_NUM_THREADS", "").split(",")[0].strip()  # "4,2" is nested: the outer count
    return int(first) if first.isdigit() and int(first) > 0 else None


class Threads:
    """The thread count of one command: fixed when the user chose it (or without a start-up
    measurement: seqgen as a library), else following the CPUs other processes leave free, at
    most PyTorch's default (one per physical core) and a container's CPU quota.

    `check()` is cheap to call every step: it measures only every CHECK_EVERY_S seconds."""

    def __init__(self, fixed: int | None = None, log=None):
        global _start
        import torch

        self._torch = torch
        self.log = log
        self.fixed = fixed or _env_threads()
        quota = _quota()
        self.cpus = min(float(len(_cpus() or range(os.cpu_count() or 1))), quota or math.inf)
        self.most = self.fixed or max(1, min(torch_default(), math.ceil(self.cpus)))
        self._then, _start = _start, None  # a later command in this process measures afresh
        self._next_check = clock() + CHECK_EVERY_S
        self._pending: int | None = None  # a change one measurement asked for, awaiting a second
        if self.fixed:
            self._then = None  # nothing to follow
            torch.set_num_threads(self.fixed)
        elif self._then is not None:
            self._measure(at_start=True)

    @property
    def count(self) -> int:
        return self._torch.get_num_threads()

    def check(self) -> None:
        if self._then is None or clock() < self._next_check:
            return
        self._next_check = clock() + CHECK_EVERY_S
        self._measure()

    def _measure(self, at_start: bool = False) -> None:
        now = sample()
        if now is None or self._then is None or now.wall - self._then.wall < MIN_WINDOW_S:
            if at_start:
                self._torch.set_num_threads(self.most)
            return
        free = free_cpus(self._then, now, self.cpus)
        self._then = now
        wanted = max(1, min(self.most, math.floor(free + 0.5)))
        if wanted == self.count:
            self._pending = None
        elif at_start or self._pending == wanted:  # a load that comes and goes must not flap the count
            self._pending = None
            self._torch.set_num_threads(wanted)
            if self.log is not None and not at_start:
                busy = "other processes keep the CPU busy" if wanted < self.most else "the CPU is free again"
                self.log(f"Threads: {wanted} ({busy}; --threads N fixes the count)")
        else:
            self._pending = wanted


def use_threads(fixed: int | None) -> Threads:
    """Set a short command's threads once (sampling, evaluation); see Threads."""
    return Threads(fixed)
