"""Training progress on stderr: a tqdm bar while training, a Keras-style line per evaluation."""

from __future__ import annotations

import sys

from tqdm import tqdm


class Reporter:
    """`bar`: draw a progress bar; `quiet`: print nothing at all (errors still reach the user)."""

    def __init__(self, bar: bool = False, quiet: bool = False, stream=None):
        self.stream = stream or sys.stderr
        self.bar_enabled = bar and not quiet
        self.quiet = quiet
        self._bar = None

    def start_epoch(self, epoch: int, epochs: int | None, batches: int, done: int = 0) -> None:
        self.close()
        if self.bar_enabled:
            self._bar = tqdm(
                total=batches, initial=done, desc=f"Epoch {_of(epoch, epochs)}", unit="step",
                file=self.stream, leave=False, dynamic_ncols=True,
            )

    def step(self, loss: float, lr: float) -> None:
        if self._bar is not None:
            self._bar.update(1)
            self._bar.set_postfix(loss=f"{loss:.4f}", lr=f"{lr:.2e}", refresh=False)

    def log(self, line: str) -> None:
        if self.quiet:
            return
        if self._bar is not None:
            self._bar.write(line, file=self.stream)  # above the bar, which redraws below
        else:
            print(line, file=self.stream, flush=True)

    def evaluation(self, *, epoch, epochs, batch, batches, seconds, ms_per_step, loss, val_loss) -> None:
        from math import log

        self.log(
            f"Epoch {_of(epoch, epochs)} - {batch}/{batches} - {seconds:.0f}s {ms_per_step:.0f}ms/step"
            f" - loss: {loss:.4f} - val_loss: {val_loss:.4f} - val_bpc: {val_loss / log(2):.3f}"
        )

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None


def _of(n: int, total: int | None) -> str:
    return f"{n}/{total}" if total else str(n)
