"""A run directory: its checkpoints, --keep rotation and metrics.csv (`RunDir`), and which files
in it are seqgen's (curves.png and tensorboard/, which training draws and logs, among them).

A run directory may hold the user's own files too (notes, plots, a README); seqgen touches only
the names it writes itself, and refuses to start a run among files it did not write unless told
to (`--force`). One process at a time writes it, holding its lock (seqgen/lock.py).
"""

from __future__ import annotations

import csv
import io
import re
from pathlib import Path

import torch

from . import checkpoint
from .atomic import atomic_link, atomic_write_text
from .curves import CURVES, METRIC_FIELDS, METRICS, TENSORBOARD, drawn_by_seqgen, is_tensorboard_dir
from .errors import SeqgenError
from .lock import LOCK

_OWN = r"(?:best|last|step-\d{8})\.safetensors|metrics\.csv|curves\.png"
OWN = re.compile(_OWN)
# What atomic.py writes on the way to those names: `.NAME.<random>.tmp` and `.NAME.link.tmp`.
OWN_TEMP = re.compile(rf"\.(?:{_OWN})\.[^/]+\.tmp")


def is_own(path: Path) -> bool:
    """Whether `path` in a run directory is a file seqgen writes: a checkpoint, the metrics log or
    the curves drawn from it (by their content, so a user's own file of that name is not mistaken
    for one), a temporary file on the way to one of them, the lock, or the folder of TensorBoard's
    event files."""
    name = path.name
    if name == LOCK or OWN_TEMP.fullmatch(name):
        return True
    if name == TENSORBOARD:
        return is_tensorboard_dir(path)
    if not OWN.fullmatch(name) or not path.is_file() or path.is_symlink():
        return False
    try:
        with path.open("rb") as f:
            if name == METRICS:
                return f.readline().strip() == ",".join(METRIC_FIELDS).encode()
            head = f.read(8 + 4096)
            if name == CURVES:
                return drawn_by_seqgen(head)
            # A safetensors file: an 8-byte header length, then the JSON header, where the
            # metadata names the format (see checkpoint.py). Only the header's start is read.
            return head.find(checkpoint.FORMAT.encode()) > 8
    except OSError:
        return False


def foreign(directory: Path) -> list[Path]:
    """The entries of `directory` that seqgen did not write, sorted."""
    try:
        return sorted(p for p in Path(directory).iterdir() if not is_own(p))
    except FileNotFoundError:
        return []


def sweep_temps(directory: Path) -> None:
    """Remove the half-written files a killed run left; only seqgen's own temporary names (and
    only by the lock holder: another writer's temporary file is in use)."""
    for path in Path(directory).glob(".*.tmp"):
        if OWN_TEMP.fullmatch(path.name):
            path.unlink(missing_ok=True)


def check_new_run(directory: Path, force: bool) -> None:
    """Refuse to start a run over another one (without --force) or among files seqgen did not
    write (without --force; and never where a name seqgen writes is taken by the user's file)."""
    directory = Path(directory)
    others = foreign(directory)
    taken = [p for p in others if OWN.fullmatch(p.name)]
    if taken:
        raise SeqgenError(f"{taken[0]} is not a file seqgen wrote, and a run would write there; "
                          "move it, or choose another --out (not even --force replaces it)")
    if any(is_own(directory / name) for name in (checkpoint.BEST, checkpoint.LAST)) and not force:
        raise SeqgenError(f"{directory} already holds a run; continue it with --resume, or start over with --force")
    if not others:
        return
    if not force:
        more = f" and {len(others) - 1} more" if len(others) > 1 else ""
        raise SeqgenError(f"{directory} holds files that are not a seqgen run ({others[0].name}{more}); choose a new "
                          "or empty --out, or add --force to train there (only seqgen's own files are ever replaced)")


def clear_run(directory: Path) -> None:
    """Start over (--force): remove the files of the run before, and only those."""
    for path in Path(directory).iterdir():
        if path.name == LOCK or not is_own(path):
            continue
        if path.is_dir():  # TensorBoard's: the old run's events would show beside the new run's
            for events in path.iterdir():
                events.unlink(missing_ok=True)
            path.rmdir()
        else:
            path.unlink(missing_ok=True)


class RunDir:
    """What a run writes, and where: `best` (weights, when validation improved), `last` (resumable),
    with `keep` K the K-1 resumable checkpoints before it (step-NNNNNNNN), and metrics.csv, a row
    per evaluation, each written after its checkpoints. Only rank 0 of a run writes."""

    def __init__(self, path: Path, keep: int = 1):
        self.path, self.keep = Path(path), keep
        self.saved_step: int | None = None  # the step of the checkpoint in `last`, once there is one

    def prepare(self) -> None:
        """Make the directory, and remove the half-written files of a run that was killed."""
        self.path.mkdir(parents=True, exist_ok=True)
        sweep_temps(self.path)

    def save(self, step: int, meta: dict, weights: dict[str, torch.Tensor], resumable: tuple[dict, dict],
             improved: bool, row: dict) -> None:
        """The checkpoints of evaluation `step` (resumable: the extra metadata and tensors of
        `last`), the --keep rotation, then the metrics row."""
        if improved:
            checkpoint.save(self.path / checkpoint.BEST, meta, weights)
        last = self.path / checkpoint.LAST
        if self.keep > 1 and self.saved_step is not None and last.exists():
            atomic_link(last, self.path / checkpoint.KEPT.format(self.saved_step))
        checkpoint.save(last, {**meta, **resumable[0]}, {**weights, **resumable[1]})
        self.saved_step = step
        earlier = checkpoint.kept(self.path)
        for path in earlier[: max(len(earlier) - (self.keep - 1), 0)]:
            path.unlink(missing_ok=True)
        self._append_metrics(row)  # after the checkpoints: a row always has its checkpoint

    def drop_metrics_after(self, step: int) -> None:
        """A resumed run continues from the checkpoint of `step`: the evaluations a run killed
        before its next checkpoint logged after it are dropped, since the resumed run repeats them."""
        path = self.path / METRICS
        if not path.exists():
            return
        with path.open(newline="") as f:  # a row cut short by a kill has no valid step: dropped
            rows = [r for r in csv.DictReader(f) if (r.get("step") or "").isdigit() and int(r["step"]) <= step]
        out = io.StringIO()
        writer = csv.DictWriter(out, fieldnames=METRIC_FIELDS)
        writer.writeheader()
        writer.writerows(rows)
        atomic_write_text(path, out.getvalue())

    def _append_metrics(self, row: dict) -> None:
        path = self.path / METRICS
        new = not path.exists()
        with path.open("a", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=METRIC_FIELDS)
            if new:
                writer.writeheader()
            writer.writerow(row)
