"""Shell completion (bash, zsh, fish) beyond click's own: run directories for the arguments that
name a run or checkpoint, and the built-in corpus names for those that take a corpus.

It runs on every press of Tab, so it stays light: no torch, no numpy, nothing of seqgen's but the
manifest of built-in corpora read as JSON, and a bounded look at the directories on the way.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from click.shell_completion import CompletionItem

LOOK_AT = 5000  # directory entries one completion may look at, in all: a huge folder never stalls the shell


class _Budget:
    """How many more directory entries this completion may read."""

    def __init__(self):
        self.left = LOOK_AT

    def scan(self, directory: str) -> list[os.DirEntry]:
        found: list[os.DirEntry] = []
        try:
            with os.scandir(os.path.expanduser(directory) or ".") as it:
                for entry in it:
                    if self.left <= 0:
                        break
                    self.left -= 1
                    found.append(entry)
        except OSError:  # missing, unreadable, not a directory
            pass
        return found


def _is_file(entry: os.DirEntry) -> bool:
    try:
        return entry.is_file()
    except OSError:
        return False


def _is_dir(entry: os.DirEntry) -> bool:
    try:
        return entry.is_dir()
    except OSError:
        return False


def is_run(path: str, budget: _Budget | None = None) -> bool:
    """A run directory: one holding a checkpoint (*.safetensors) or the metrics.csv training writes."""
    return any((e.name == "metrics.csv" or e.name.endswith(".safetensors")) and _is_file(e)
               for e in (budget or _Budget()).scan(path))


def runs(incomplete: str, *, files: bool = False) -> list[str]:
    """The run directories whose path starts with `incomplete`: at its level, and one level down
    in a directory that holds runs (`checkpoints/` offers `checkpoints/bach`); with `files`, the
    .safetensors files there too. Hidden names only when `incomplete` names one."""
    budget = _Budget()
    cut = max(incomplete.rfind("/"), incomplete.rfind(os.sep)) + 1
    where, start = incomplete[:cut], incomplete[cut:]

    def shown(entry: os.DirEntry, start: str = "") -> bool:
        return entry.name.startswith(start) and (start.startswith(".") or not entry.name.startswith("."))

    found = []
    for entry in budget.scan(where):
        if not shown(entry, start):
            continue
        path = where + entry.name
        if _is_dir(entry):
            if is_run(path, budget):
                found.append(path)
            else:
                found += [f"{path}/{e.name}" for e in budget.scan(path)
                          if shown(e) and _is_dir(e) and is_run(f"{path}/{e.name}", budget)]
        elif files and entry.name.endswith(".safetensors") and _is_file(entry):
            found.append(path)
    return sorted(found)


def complete_checkpoints(ctx, param, incomplete: str) -> list[CompletionItem]:
    """CHECKPOINT: run directories and .safetensors files; where none matches, any path (the
    shell's own completion), to walk down to a run elsewhere."""
    return [CompletionItem(p) for p in runs(incomplete, files=True)] or [CompletionItem(incomplete, type="file")]


def complete_runs(ctx, param, incomplete: str) -> list[CompletionItem]:
    """A run directory (train --out): existing runs; where none matches, any directory (a new run)."""
    return [CompletionItem(p) for p in runs(incomplete)] or [CompletionItem(incomplete, type="dir")]


def builtin_corpora() -> dict[str, str]:
    """The built-in corpora's names and descriptions, from the manifest (as seqgen.corpora.builtins
    reads it, without importing what opens them)."""
    package = Path(__file__).resolve().parent
    root = package / "bundled" if (package / "bundled").is_dir() else package.parent / "corpora"
    try:
        manifest = json.loads((root / "manifest.json").read_text(encoding="utf-8"))
        return {e["name"]: e.get("description", "") for e in manifest["corpora"]}
    except (OSError, ValueError, KeyError, TypeError):
        return {}


def complete_builtins(ctx, param, incomplete: str) -> list[CompletionItem]:
    """A built-in corpus name (`seqgen corpus download NAME`)."""
    return [CompletionItem(name, help=about) for name, about in builtin_corpora().items() if name.startswith(incomplete)]


def complete_corpus(ctx, param, incomplete: str) -> list[CompletionItem]:
    """A corpus: the built-in names, and any path. (bash shows the names where one matches and the
    paths where none does; zsh and fish show both.)"""
    return [CompletionItem(incomplete, type="file"), *complete_builtins(ctx, param, incomplete)]
