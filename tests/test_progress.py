"""What training shows while it runs: the run's own progress and time left, on a bar or in lines."""

import io

import pytest

from seqgen.progress import Reporter, duration


class Clock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self):
        return self.now


def steps(reporter, clock, plan):
    """Advance through (seconds, step, done) points, one reported step each."""
    for seconds, step, done in plan:
        clock.now = 1000.0 + seconds
        reporter.step(step=step, epoch=1, epochs=None, done=done, lr=1e-3, loss=lambda: 1.5)


def test_without_a_terminal_a_line_comes_after_10s_then_every_30s_with_the_run_s_time_left():
    clock, out = Clock(), io.StringIO()
    reporter = Reporter(stream=out, clock=clock)
    reporter.start(step=0, done=0.0)
    # A steady run: 10 steps a second, 1% of the run every 1 s (so 100 s in all).
    steps(reporter, clock, [(s, 10 * s, s / 100) for s in range(1, 100)])
    lines = out.getvalue().splitlines()
    assert [line.split(" (")[0] for line in lines] == ["Step 100", "Step 400", "Step 700"]
    assert lines[0] == "Step 100 (10%), epoch 1 - 100ms/step - loss: 1.5000 - lr 1.00e-03 - about 1m30s left"
    assert lines[2].endswith("about 30s left")


def test_a_resumed_run_estimates_from_its_own_pace_and_counts_what_was_done_before():
    clock, out = Clock(), io.StringIO()
    reporter = Reporter(stream=out, clock=clock)
    reporter.start(step=500, done=0.5)
    steps(reporter, clock, [(10, 600, 0.6)])  # 10% in 10 s: the other 40% takes 40 s
    assert out.getvalue().startswith("Step 600 (60%)") and out.getvalue().rstrip().endswith("about 40s left")


def test_the_bar_shows_the_run_not_the_epoch():
    clock, out = Clock(), io.StringIO()
    reporter = Reporter(bar=True, stream=out, clock=clock)
    reporter.start(step=0, done=0.0)
    steps(reporter, clock, [(1, 5, 0.1), (2, 10, 0.2), (3, 15, 0.25)])  # an epoch ends at step 10
    reporter._bar.refresh()  # tqdm redraws at most every 0.1 s of its own clock
    shown = out.getvalue().split("\r")[-1]
    assert " 25%|" in shown and "step 15" in shown and "9s left" in shown
    assert "Step " not in out.getvalue()  # no progress lines under a bar
    reporter.close()


def test_quiet_prints_nothing():
    clock, out = Clock(), io.StringIO()
    reporter = Reporter(bar=True, quiet=True, stream=out, clock=clock)
    reporter.start(step=0, done=0.0)
    steps(reporter, clock, [(s, s, s / 100) for s in range(1, 60)])
    reporter.log("hello")
    assert out.getvalue() == ""


@pytest.mark.parametrize("seconds,text", [(0, "0s"), (0.4, "0.4s"), (59.4, "59s"), (60, "1m00s"), (125, "2m05s"), (3600, "1h00m"),
                                          (7322, "2h02m"), (float("inf"), "?")])
def test_durations_read_as_people_write_them(seconds, text):
    assert duration(seconds) == text


def test_the_time_left_is_unknown_until_something_is_done():
    clock = Clock()
    reporter = Reporter(clock=clock)
    reporter.start(step=0, done=0.0)
    clock.now += 5
    assert reporter.time_left(0.0) == float("inf")
    assert reporter.time_left(1.0) == 0.0


def test_a_run_without_a_limit_shows_neither_a_share_nor_a_time_left():
    clock, out = Clock(), io.StringIO()
    reporter = Reporter(stream=out, clock=clock)
    reporter.start(step=0, done=None)
    clock.now += 11
    reporter.step(step=50, epoch=2, epochs=None, done=None, lr=1e-3, loss=lambda: 1.5)
    assert out.getvalue() == "Step 50, epoch 2 - 220ms/step - loss: 1.5000 - lr 1.00e-03\n"
