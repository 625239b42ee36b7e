"""Threads on a shared machine: one per core that other processes leave free, unless fixed."""

import pytest
import torch

from seqgen import threads
from seqgen.threads import Sample, Threads, free_cores


def test_free_cores_are_the_busy_time_of_other_processes_taken_from_the_cpus():
    then = Sample(wall=0.0, busy=100.0, own=10.0)
    assert free_cores(then, Sample(10.0, 120.0, 30.0), cpus=2) == 2.0  # all the busy time was ours
    assert free_cores(then, Sample(10.0, 130.0, 30.0), cpus=2) == 1.0  # another process took one core
    assert free_cores(then, Sample(10.0, 150.0, 30.0), cpus=2) == 0.0  # two (or more)
    assert free_cores(then, Sample(10.0, 140.0, 40.0), cpus=4) == 3.0


class Machine:
    """A fake machine: other processes busy on `others` cores; this process on all it may use."""

    def __init__(self, monkeypatch):
        self.wall, self.busy, self.own, self.others = 0.0, 0.0, 0.0, 0.0
        monkeypatch.setattr(threads, "sample", lambda: Sample(self.wall, self.busy, self.own))
        monkeypatch.setattr(threads, "clock", lambda: self.wall)
        monkeypatch.setattr(threads, "_start", Sample(0.0, 0.0, 0.0))
        monkeypatch.setattr(threads, "_torch_default", 2)
        monkeypatch.setattr(threads, "_cpus", lambda: [0, 1])
        monkeypatch.delenv("OMP_NUM_THREADS", raising=False)

    def run(self, seconds: float, ours: float):
        self.wall += seconds
        self.own += ours * seconds
        self.busy += (ours + self.others) * seconds


@pytest.fixture
def one_thread_after():
    yield
    torch.set_num_threads(1)  # as conftest left it


def test_the_count_follows_the_cores_other_processes_leave_free(monkeypatch, one_thread_after):
    machine = Machine(monkeypatch)
    machine.others = 1.0
    machine.run(1.5, ours=1.0)  # start-up: importing torch while another process computes
    governor = Threads(log=(lines := []).append)
    assert governor.count == 1
    machine.others = 0.0
    machine.run(1.0, ours=1.0)
    governor.check()
    assert governor.count == 1  # measured only every CHECK_EVERY_S
    machine.run(threads.CHECK_EVERY_S, ours=1.0)
    governor.check()
    assert governor.count == 2 and lines[-1].startswith("Threads: 2 (the CPU is free again")
    machine.others = 0.4  # a light background load leaves the count alone
    machine.run(threads.CHECK_EVERY_S, ours=1.6)
    governor.check()
    assert governor.count == 2
    machine.others = 3.0  # more busy processes than cores: still one thread
    machine.run(threads.CHECK_EVERY_S, ours=0.5)
    governor.check()
    assert governor.count == 1 and lines[-1].startswith("Threads: 1 (other processes keep the CPU busy")


@pytest.mark.parametrize("fixed,env", [(1, None), (2, None), (None, "2")])
def test_a_count_the_user_chose_is_kept(monkeypatch, one_thread_after, fixed, env):
    machine = Machine(monkeypatch)
    if env:
        monkeypatch.setenv("OMP_NUM_THREADS", env)
    machine.others = 2.0
    machine.run(10.0, ours=0.5)
    governor = Threads(fixed)
    machine.run(10.0, ours=0.5)
    governor.check()
    assert governor.count == (fixed or int(env))


def test_without_a_measurement_nothing_changes(monkeypatch, one_thread_after):
    monkeypatch.setattr(threads, "sample", lambda: None)
    monkeypatch.setattr(threads, "_start", None)
    torch.set_num_threads(2)
    governor = Threads()
    governor.check()
    assert governor.count == 2


def test_the_real_counters_can_be_read():
    sample = threads.sample()
    assert sample is not None and sample.busy >= 0 and sample.own > 0
