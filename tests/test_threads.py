"""Threads on a shared machine: one per CPU that other processes leave free, unless fixed."""

from collections import namedtuple

import pytest
import torch

from seqgen import threads
from seqgen.threads import Sample, Threads, free_cpus


def test_free_cpus_are_the_busy_time_of_other_processes_taken_from_the_cpus():
    then = Sample(wall=0.0, busy=100.0, own=10.0)
    assert free_cpus(then, Sample(10.0, 120.0, 30.0), cpus=2) == 2.0  # all the busy time was ours
    assert free_cpus(then, Sample(10.0, 130.0, 30.0), cpus=2) == 1.0  # another process took one CPU
    assert free_cpus(then, Sample(10.0, 150.0, 30.0), cpus=2) == 0.0  # two (or more)
    assert free_cpus(then, Sample(10.0, 140.0, 40.0), cpus=4) == 3.0


class Machine:
    """A fake 2-CPU machine: other processes busy on `others` CPUs; this process on `ours`."""

    def __init__(self, monkeypatch):
        self.wall, self.busy, self.own, self.others = 0.0, 0.0, 0.0, 0.0
        monkeypatch.setattr(threads, "sample", lambda: Sample(self.wall, self.busy, self.own))
        monkeypatch.setattr(threads, "clock", lambda: self.wall)
        monkeypatch.setattr(threads, "_torch_default", 2)
        monkeypatch.setattr(threads, "_cpus", lambda: [0, 1])
        monkeypatch.setattr(threads, "_quota", lambda: None)
        monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
        threads.note_start()  # what the CLI does as a command starts

    def run(self, seconds: float, ours: float):
        self.wall += seconds
        self.own += ours * seconds
        self.busy += (ours + self.others) * seconds


@pytest.fixture
def one_thread_after():
    yield
    torch.set_num_threads(1)  # as conftest left it


def test_the_count_follows_the_cpus_other_processes_leave_free(monkeypatch, one_thread_after):
    machine = Machine(monkeypatch)
    machine.others = 1.0
    machine.run(1.5, ours=1.0)  # start-up: importing torch while another process computes
    governor = Threads(log=(lines := []).append)
    assert governor.count == 1 and lines == []  # the start-up's own line says how many
    machine.others = 0.0
    machine.run(1.0, ours=1.0)
    governor.check()
    assert governor.count == 1  # measured only every CHECK_EVERY_S
    machine.run(threads.CHECK_EVERY_S, ours=1.0)
    governor.check()
    assert governor.count == 1  # one measurement asks for 2 threads ...
    machine.run(threads.CHECK_EVERY_S, ours=1.0)
    governor.check()
    assert governor.count == 2 and lines == ["Threads: 2 (the CPU is free again; --threads N fixes the count)"]
    machine.others = 0.4  # a light background load leaves the count alone
    for _ in range(3):
        machine.run(threads.CHECK_EVERY_S, ours=1.6)
        governor.check()
    assert governor.count == 2
    machine.others = 3.0  # more busy processes than CPUs: still one thread
    for _ in range(2):
        machine.run(threads.CHECK_EVERY_S, ours=0.5)
        governor.check()
    assert governor.count == 1 and lines[-1].startswith("Threads: 1 (other processes keep the CPU busy")


def test_a_load_that_comes_and_goes_does_not_flap_the_count(monkeypatch, one_thread_after):
    machine = Machine(monkeypatch)
    machine.run(1.5, ours=1.0)
    governor = Threads()
    assert governor.count == 2
    for others in [1.0, 0.0] * 4:  # busy for one window, idle the next
        machine.others = others
        machine.run(threads.CHECK_EVERY_S, ours=2.0 - others)
        governor.check()
        assert governor.count == 2


@pytest.mark.parametrize("fixed,env,expected", [(1, None, 1), (2, None, 2), (None, "2", 2), (None, "2,1", 2)])
def test_a_count_the_user_chose_is_kept(monkeypatch, one_thread_after, fixed, env, expected):
    machine = Machine(monkeypatch)
    if env:
        monkeypatch.setenv("OMP_NUM_THREADS", env)
    machine.others = 2.0
    machine.run(10.0, ours=0.5)
    governor = Threads(fixed)
    for _ in range(2):
        machine.run(10.0, ours=0.5)
        governor.check()
    assert governor.count == expected


def test_without_a_measurement_nothing_changes(monkeypatch, one_thread_after):
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    torch.set_num_threads(2)
    monkeypatch.setattr(threads, "_start", None)  # seqgen as a library: no command measured its start
    governor = Threads()
    governor.check()
    assert governor.count == 2
    monkeypatch.setattr(threads, "sample", lambda: None)  # or psutil cannot read the counters
    threads.note_start()
    assert Threads().count == 2


def test_a_container_quota_caps_the_count(monkeypatch, one_thread_after):
    machine = Machine(monkeypatch)
    monkeypatch.setattr(threads, "_quota", lambda: 1.0)  # docker run --cpus 1
    machine.run(1.5, ours=1.0)
    assert Threads().count == 1


CPU = namedtuple("CPU", "user nice system idle iowait")


def test_lower_priority_work_and_our_own_children_are_not_other_processes(monkeypatch):
    import psutil

    times = {"user": 0.0, "nice": 0.0}
    monkeypatch.setattr(psutil, "cpu_times", lambda percpu: [CPU(times["user"], times["nice"], 0.0, 100.0, 0.0)])
    monkeypatch.setattr(threads, "_cpus", lambda: [0])
    monkeypatch.setattr(threads, "_niced", lambda: False)
    then = threads.sample()
    times["nice"] += 5.0  # a `nice` job ran for 5 s
    assert threads.sample().busy == then.busy
    monkeypatch.setattr(threads, "_niced", lambda: True)  # unless we are niced ourselves
    assert threads.sample().busy == then.busy + 5.0
    child = psutil.Popen(["python3", "-c", "sum(range(10**7))"])  # a worker of ours: its time is ours
    child.wait()
    assert threads.sample().own > then.own


def test_the_real_counters_can_be_read():
    sample = threads.sample()
    assert sample is not None and sample.busy >= 0 and sample.own > 0
