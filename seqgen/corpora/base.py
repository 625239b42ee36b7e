"""What every corpus is: the interface training, evaluation and the CLI use without asking which
kind of data it holds.

A kind of corpus is one module in this package: a `Corpus` subclass that says how to tell its
data from a path (`claims`), how to open it (`open`), which tokenizer a new run fits to it, and
how its tokens are laid out for training (`dataset`). `loading.load_corpus` asks each kind in
turn.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, ClassVar

import numpy as np

if TYPE_CHECKING:
    from ..config import TrainConfig
    from ..data import PieceData, TextData
    from ..tokenizers import Tokenizer

# The kinds of data, as users name them (`--kind`) and checkpoints record them.
TEXT, MIDI = "text", "midi"
LABELS = {TEXT: "text", MIDI: "MIDI"}  # as messages name them

Log = Callable[[str], None]


@dataclass(frozen=True)
class Corpus:
    """What a run trains on, as load_corpus found it: `spec` reloads it (a resume), `source` says
    where it came from, `describe()` is what checkpoints record. One subclass per kind of data."""

    name: str
    spec: str  # what reloads it: an absolute path, or a built-in corpus name
    source: str  # a path, or the provenance of a built-in corpus

    kind: ClassVar[str]  # TEXT or MIDI: the kind of data, whatever its form on disk
    options: ClassVar[frozenset[str]] = frozenset()  # `seqgen train` options only this kind takes
    train_defaults: ClassVar[dict[str, Any]] = {}  # training settings this kind changes from TrainConfig's

    @staticmethod
    def claims(path: Path) -> bool:
        """Whether the file or directory at `path` holds this kind of corpus."""
        raise NotImplementedError

    @classmethod
    def open(cls, path: Path, settings: dict) -> Corpus:
        """The corpus at `path`, read with the `settings` this kind takes (others are ignored)."""
        raise NotImplementedError

    def describe(self) -> dict:
        return {"name": self.name, "kind": self.kind, "spec": self.spec, "source": self.source, **self._size()}

    def _size(self) -> dict:
        raise NotImplementedError

    def new_tokenizer(self, options: dict, log: Log | None = None) -> Tokenizer:
        """The tokenizer a new run fits to this corpus, with the settings given in `options` (the
        train command's options given on its command line, of which it reads its own; "tokenizer"
        names one, else the kind chooses)."""
        raise NotImplementedError

    def dataset(self, tokenizer: Tokenizer, cfg: TrainConfig, *, strict: bool = False,
                log: Log | None = None) -> TextData | PieceData:
        """The training and validation ids, as `tokenizer` encodes the corpus."""
        raise NotImplementedError

    def all_ids(self, tokenizer: Tokenizer, *, log: Log | None = None) -> np.ndarray:
        """Every token, unaugmented, in order: what `seqgen eval` scores."""
        raise NotImplementedError

    def notices(self) -> list[str]:
        """What reading the corpus did that its user should hear of (said once, when training starts)."""
        return []

    def reads(self, path: Path) -> bool:
        """Whether a file put at `path` would be read as part of this corpus next time."""
        return False


def cache_dir() -> Path:
    if os.environ.get("SEQGEN_CACHE_DIR"):
        return Path(os.environ["SEQGEN_CACHE_DIR"])
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "seqgen"


def files_under(directory: Path, suffixes: tuple[str, ...] | None = None) -> list[Path]:
    """Files under `directory` (recursively, hidden ones skipped), optionally by suffix."""
    return [
        p
        for p in sorted(directory.rglob("*"))
        if p.is_file()
        and not any(part.startswith(".") for part in p.relative_to(directory).parts)
        and (suffixes is None or p.suffix.lower() in suffixes)
    ]
