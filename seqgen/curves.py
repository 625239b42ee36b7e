"""Training curves: a run's metrics.csv read back into arrays (`read_metrics`), drawn as a PNG
with matplotlib (`curves_png`) or as text for a terminal with plotext (`curves_text`); what
`seqgen plot` does with them (`plot`); the curves.png that training draws anew beside metrics.csv
at each evaluation (`draw_run_curves`); and TensorBoard's scalars (`TensorBoard`).

matplotlib, plotext and tensorboard are optional: each is imported only where it is used, and a
command that needs one that is missing says so in one line with the pip command. Nothing here
imports torch (TensorBoard's writer aside), so `seqgen plot` starts at once.
"""

from __future__ import annotations

import csv
import io
import math
import os
import re
import shutil
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from . import __version__
from .atomic import atomic_write_bytes, refuse_other
from .errors import SeqgenError
from .files import read_regular

METRICS = "metrics.csv"
METRIC_FIELDS = ["step", "epoch", "tokens", "elapsed_s", "lr", "loss", "val_loss", "val_bpc"]
CURVES = "curves.png"
TENSORBOARD = "tensorboard"  # the folder of TensorBoard's event files in a run directory (--tensorboard)
TENSORBOARD_EVENTS = "events.out.tfevents."  # how the name of each of them begins
PLOTTED = ("step", "elapsed_s", "loss", "val_loss")  # the columns of metrics.csv a plot reads
X_AXES = ("steps", "time")
MAX_METRICS = 256 << 20  # bytes: a row per evaluation is some 60 bytes, so millions of evaluations
Y_LABEL = "loss (nats per token)"
# The PNG's Software text, which tells a curves.png seqgen drew from a user's file of that name.
SOFTWARE = "seqgen"
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
# plotext: a colour per run; without colours (not a terminal) a symbol per run, hollow for the
# training loss and filled for the validation loss.
TERMINAL_COLOURS = ("blue", "red", "green", "magenta", "cyan", "orange")
HOLLOW, FILLED = "○□△◇☆", "●■▲◆★"
ANSI = re.compile(r"\x1b\[[0-9;]*m")


@dataclass(frozen=True)
class Curves:
    """One run's curves: the columns of its metrics.csv that a plot draws, one value per evaluation."""

    name: str  # what the legend calls the run: its directory, as given
    step: np.ndarray
    elapsed: np.ndarray  # seconds the run had trained (metrics.csv's elapsed_s)
    loss: np.ndarray  # the mean training loss since the evaluation before, in nats per token
    val_loss: np.ndarray


def _name(directory: Path) -> str:
    return str(directory) if directory.name not in ("", "..") else directory.resolve().name or str(directory.resolve())


def read_metrics(run: Path) -> Curves:
    """The curves in `run`'s metrics.csv (`run` a run directory, or the file itself); a missing,
    empty or malformed file, or a value that is not a finite number, is one SeqgenError. A last
    row without its line end is one that training is still writing, and is left out."""
    run = Path(run)
    if not os.path.lexists(run):
        raise SeqgenError(f"{run}: no such run directory")
    path = run / METRICS if run.is_dir() else run
    if run.is_dir() and not os.path.lexists(path):
        raise SeqgenError(f"{run}: no {METRICS} here; give a run directory (training writes {METRICS} "
                          "at its first evaluation)")
    not_ours = f"{path}: not a {METRICS} that seqgen wrote (its first line should be {','.join(METRIC_FIELDS)})"
    try:
        text = read_regular(path, MAX_METRICS, METRICS).decode("utf-8")
    except UnicodeDecodeError:
        raise SeqgenError(not_ours) from None
    if not text.strip():
        raise SeqgenError(f"{path}: empty; training writes its header and a row at each evaluation")
    lines = text.splitlines(keepends=True)
    if len(lines) > 1 and not lines[-1].endswith(("\n", "\r")):
        lines.pop()
    header, *rows = csv.reader(lines)
    if any(column not in header for column in PLOTTED):
        raise SeqgenError(not_ours)
    where = [header.index(column) for column in PLOTTED]
    values = []
    for n, row in enumerate(rows, 2):
        if not row:
            continue  # a blank line
        if len(row) != len(header):
            raise SeqgenError(f"{path}, line {n}: {len(row)} values where the header names {len(header)}")
        values.append([_number(row[i], column, f"{path}, line {n}") for i, column in zip(where, PLOTTED)])
    if not values:
        raise SeqgenError(f"{path}: no evaluations yet (only the header); training adds a row at each one")
    columns = np.array(values, dtype=np.float64).T
    return Curves(_name(run if run.is_dir() else path.parent), *columns)


def _number(cell: str, column: str, where: str) -> float:
    try:
        value = float(cell)
    except ValueError:
        raise SeqgenError(f"{where}: {column} is {cell[:40]!r}, not a number") from None
    if not math.isfinite(value):
        raise SeqgenError(f"{where}: {column} is {cell}; a curve needs finite numbers")
    return value


def x_axis(runs: list[Curves], x: str) -> tuple[list[np.ndarray], str]:
    """Each run's x values, and the axis' label: training steps, or with "time" the wall-clock
    time each had trained (elapsed_s), in seconds, minutes or hours by the longest."""
    if x == "steps":
        return [run.step for run in runs], "step"
    longest = max(float(run.elapsed.max()) for run in runs)
    unit, seconds = ("hours", 3600) if longest >= 3 * 3600 else ("minutes", 60) if longest >= 180 else ("seconds", 1)
    return [run.elapsed / seconds for run in runs], f"training time ({unit})"


def _matplotlib_figure(what: str):
    try:
        from matplotlib.figure import Figure  # without pyplot: no global state, no display needed
    except ImportError:
        raise SeqgenError(f"{what} needs matplotlib: pip install matplotlib (or seqgen[plot])") from None
    return Figure


def curves_figure(runs: list[Curves], x: str = "steps"):
    """A matplotlib Figure of the runs' curves: a colour per run, the training loss dashed and the
    validation loss solid, a legend naming each run."""
    fig = _matplotlib_figure("drawing curves")(figsize=(8, 4.5), dpi=100)
    ax = fig.subplots()
    xs, label = x_axis(runs, x)
    for i, (run, xv) in enumerate(zip(runs, xs)):
        style = {"color": f"C{i % 10}", "marker": "o" if len(xv) == 1 else None}  # one evaluation: a point
        ax.plot(xv, run.loss, linestyle="--", label=f"{run.name} loss", **style)
        ax.plot(xv, run.val_loss, linestyle="-", label=f"{run.name} val_loss", **style)
    ax.set_xlabel(label)
    ax.set_ylabel(Y_LABEL)
    ax.grid(alpha=0.3)
    ax.legend(fontsize="small")
    fig.tight_layout()
    return fig


def curves_png(runs: list[Curves], x: str = "steps") -> bytes:
    buffer = io.BytesIO()
    curves_figure(runs, x).savefig(buffer, format="png", metadata={"Software": f"{SOFTWARE} {__version__}"})
    return buffer.getvalue()


def drawn_by_seqgen(head: bytes) -> bool:
    """Whether the start of a file (its first few kB) is a PNG that seqgen drew."""
    return head.startswith(PNG_MAGIC) and b"tEXtSoftware\x00" + SOFTWARE.encode() in head


def _plotext():
    try:
        import plotext
    except ImportError:
        raise SeqgenError("plotting in the terminal needs plotext: pip install plotext (or seqgen[plot]); "
                          "or give --out FILE.png") from None
    return plotext


def curves_text(runs: list[Curves], x: str = "steps", colour: bool = False, size: tuple[int, int] | None = None) -> str:
    """The runs' curves drawn as text by plotext, `size` (columns, rows) by default the
    terminal's: a colour per run (without `colour`, a symbol per run), the training loss dotted
    and the validation loss solid, a legend naming each run."""
    plotext = _plotext()
    xs, label = x_axis(runs, x)
    series = []
    for i, (run, xv) in enumerate(zip(runs, xs)):
        colours = TERMINAL_COLOURS[i % len(TERMINAL_COLOURS)]
        train, val = ("·", "hd") if colour or len(runs) == 1 else (HOLLOW[i % len(HOLLOW)], FILLED[i % len(FILLED)])
        series += [(xv.tolist(), run.loss.tolist(), train, colours, f"{run.name} loss"),
                   (xv.tolist(), run.val_loss.tolist(), val, colours, f"{run.name} val_loss")]
    if size is None:
        columns, lines = shutil.get_terminal_size((100, 30))
        size = (max(columns, 40), max(12, min(lines - 2, 35)))
    draw = _plotext5 if hasattr(plotext, "plot") else _plotext6  # version 6 rewrote the interface
    text = draw(plotext, series, size, label)
    if not colour:
        text = "\n".join(line.rstrip() for line in ANSI.sub("", text).splitlines())
    return text


def _plotext5(plotext, series, size, label) -> str:
    plotext.clear_figure()
    plotext.plotsize(*size)
    for x, y, marker, colour, name in series:
        plotext.plot(x, y, marker=marker, color=colour, label=name)
    plotext.theme("clear")  # the terminal's own background and text colours; the lines keep theirs
    plotext.xlabel(label)
    plotext.ylabel(Y_LABEL)
    return plotext.build()


def _plotext6(plotext, series, size, label) -> str:
    figure = plotext.figure
    figure.clear()
    figure.theme("simple")  # the terminal's own background and text colours; the lines keep theirs
    figure.plot_size(*size)
    for x, y, marker, colour, name in series:
        figure.draw(figure.signal(x, y, marker=plotext.marker(marker, plotext.pixel(colour))).label(name).lines())
    # Top right, where falling curves leave room (in the data's units).
    right, top = max(max(s[0]) for s in series), max(max(s[1]) for s in series)
    figure.legend(x=right, y=top, relative=True, ha="right", va="top")
    figure.label(label, axis=0)
    figure.label(Y_LABEL, axis=1)
    return figure.build().string()


def plot(runs: list[Path], *, x: str, out: Path | None, force: bool, colour: bool) -> str | None:
    """`seqgen plot`: the curves of the runs, as text for the terminal (returned) or, with `out`,
    a PNG written there whole (returning its path to print; None for a device or pipe). The
    library each needs is checked, and `out` (never replaced without `force`), before any work."""
    if out is None:
        _plotext()
    else:
        _matplotlib_figure("--out")
        kind = refuse_other(out)  # a device or pipe is written in place: nothing replaced
        if kind == "file" and not force:
            raise SeqgenError(f"{out} already exists; use --force to overwrite")
    curves = [read_metrics(run) for run in runs]
    if out is None:
        return curves_text(curves, x, colour)
    data = curves_png(curves, x)
    out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(out, data)
    return None if kind == "stream" else str(out)


def draw_run_curves(run_dir: Path) -> bool:
    """Draw RUN/curves.png anew from RUN/metrics.csv, whole (training does, at each evaluation);
    False, drawing nothing, where matplotlib is not installed. A file of that name that seqgen
    did not draw is left alone: a SeqgenError."""
    try:
        _matplotlib_figure("curves.png")
    except SeqgenError:
        return False
    path = Path(run_dir) / CURVES
    if path.exists():
        with path.open("rb") as f:
            if not drawn_by_seqgen(f.read(4096)):
                raise SeqgenError(f"{path} is not a picture seqgen drew; leaving it as it is")
    run = replace(read_metrics(run_dir), name=Path(run_dir).resolve().name)  # its name, wherever training ran from
    atomic_write_bytes(path, curves_png([run]))
    return True


def is_tensorboard_dir(path: Path) -> bool:
    """Whether `path` is the folder `--tensorboard` writes: a directory of TensorBoard's event files only."""
    if not path.is_dir() or path.is_symlink():
        return False
    return all(p.name.startswith(TENSORBOARD_EVENTS) and p.is_file() and not p.is_symlink() for p in path.iterdir())


def need_tensorboard() -> None:
    """Refuse `--tensorboard` at once where the tensorboard package is not installed."""
    try:
        import tensorboard  # noqa: F401  # torch.utils.tensorboard writes with it
    except ImportError:
        raise SeqgenError("--tensorboard needs tensorboard: pip install tensorboard") from None


def summary_writer():
    """torch's SummaryWriter class (needs the tensorboard package)."""
    need_tensorboard()
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError as e:  # a tensorboard torch cannot use
        raise SeqgenError(f"--tensorboard needs tensorboard: pip install tensorboard ({e})") from None
    return SummaryWriter


class TensorBoard:
    """The scalars of each evaluation (loss, val_loss, lr) as TensorBoard event files in
    RUN/tensorboard/ (`seqgen train --tensorboard`). A resumed run hides what the run logged
    after the checkpoint it resumes from, since it does those steps again."""

    def __init__(self, run_dir: Path, step: int):
        self.writer = summary_writer()(log_dir=str(Path(run_dir) / TENSORBOARD), purge_step=step + 1 if step else None)

    def log(self, row: dict) -> None:
        for name in ("loss", "val_loss", "lr"):
            self.writer.add_scalar(name, float(row[name]), int(row["step"]))
        self.writer.flush()  # at each evaluation, as metrics.csv is written: what TensorBoard shows is current

    def close(self) -> None:
        self.writer.close()
