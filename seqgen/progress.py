"""Training progress on stderr: a bar for the whole run on a terminal, a line every 30 s elsewhere
(logs, CI, `nohup`), and a Keras-style line per evaluation."""

from __future__ import annotations

import math
import sys
import time
from collections.abc import Callable

from tqdm import tqdm

HEARTBEAT_S = 30.0  # without a bar, a progress line at least this often
FIRST_HEARTBEAT_S = 10.0  # the first comes sooner: it gives the first estimate of the time left
BAR_UNITS = 1000  # the bar counts thousandths of the run


class Reporter:
    """`bar`: draw a progress bar; `quiet`: print nothing at all (errors still reach the user).

    Progress is the fraction of the run done by whichever limit binds first (steps, epochs or the
    time budget), the same fraction the learning-rate schedule follows, so the bar's end and the
    time left are the run's, not an epoch's."""

    def __init__(self, bar: bool = False, quiet: bool = False, stream=None,
                 clock: Callable[[], float] = time.monotonic):
        self.stream = stream or sys.stderr
        self.bar_enabled = bar and not quiet
        self.quiet = quiet
        self.clock = clock
        self._bar: tqdm | None = None

    def start(self, *, step: int, done: float | None) -> None:
        """Training begins, or resumes with `done` of the run behind it."""
        self.close()
        self._start = (self.clock(), done or 0.0)  # when this session's training began, and how much was done then
        self._last_line = (self._start[0], step)  # when the last progress line was printed, at which step
        self._next_line = self._start[0] + FIRST_HEARTBEAT_S  # the first line comes sooner
        if self.bar_enabled:
            self._bar = tqdm(total=BAR_UNITS, initial=_units(done or 0.0), file=self.stream, leave=False,
                             dynamic_ncols=True, bar_format="{percentage:3.0f}%|{bar}| {desc}")

    def step(self, *, step: int, epoch: int, epochs: int | None, done: float | None, lr: float,
             loss: Callable[[], float]) -> None:
        """After each training step; `loss` (the mean training loss lately) is computed only when
        shown. `done` is None for a run without a limit (one that only --patience or a signal ends)."""
        now = self.clock()
        left = f", {duration(self.time_left(done, now))} left" if done is not None else ""
        if self._bar is not None:
            self._bar.set_description_str(f"epoch {_of(epoch, epochs)}, step {step:,}, loss {loss():.4f}, "
                                          f"lr {lr:.2e}{left}", refresh=False)
            self._bar.update(_units(done or 0.0) - self._bar.n)
        elif not self.quiet and now >= self._next_line:
            then, then_step = self._last_line
            ms = 1000 * (now - then) / max(step - then_step, 1)  # evaluations included: the pace of the run
            share = f" ({done:.0%})" if done is not None else ""
            self.log(f"Step {step:,}{share}, epoch {_of(epoch, epochs)} - {ms:.0f}ms/step - "
                     f"loss: {loss():.4f} - lr {lr:.2e}" + (f" - about {left[2:]}" if left else ""))
            self._last_line, self._next_line = (now, step), now + HEARTBEAT_S

    def time_left(self, done: float, now: float | None = None) -> float:
        """Seconds until the run ends, at the pace of this session so far (inf before any progress)."""
        started, done_then = self._start
        elapsed = (self.clock() if now is None else now) - started
        if done >= 1:
            return 0.0
        if done <= done_then or elapsed <= 0:
            return math.inf
        return (1 - done) * elapsed / (done - done_then)

    def log(self, line: str) -> None:
        if self.quiet:
            return
        if self._bar is not None:
            self._bar.write(line, file=self.stream)  # above the bar, which redraws below
        else:
            print(line, file=self.stream, flush=True)

    def evaluation(self, *, epoch, epochs, batch, batches, seconds, ms_per_step, loss, val_loss) -> None:
        self.log(
            f"Epoch {_of(epoch, epochs)} - {batch}/{batches} - {seconds:.0f}s {ms_per_step:.0f}ms/step"
            f" - loss: {loss:.4f} - val_loss: {val_loss:.4f} - val_bpc: {val_loss / math.log(2):.3f}"
        )

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None


def _units(done: float) -> int:
    return min(BAR_UNITS, int(done * BAR_UNITS))


def duration(seconds: float) -> str:
    """45s, 3m05s, 2h07m: a length of time as people read it."""
    if not math.isfinite(seconds):
        return "?"
    if 0 < seconds < 1:
        return f"{seconds:.1g}s"
    seconds = round(seconds)
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"



def _of(n: int, total: int | None) -> str:
    return f"{n}/{total}" if total else str(n)
