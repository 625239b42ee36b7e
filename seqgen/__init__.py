"""seqgen: train recurrent sequence models on text and MIDI, and generate from them.

    import seqgen
    m = seqgen.load("checkpoints/python-docs-lstm")
    m.generate(prime="The ", length=200, num_samples=4, temperature=0.8, seed=1)

Importing seqgen is light: torch is imported when a model is loaded (see seqgen.api).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

__version__ = "0.1.0"

if TYPE_CHECKING:
    from pathlib import Path

    from .api import Model


def load(path: str | Path, device: str = "cpu") -> Model:
    """The model of a checkpoint file or run directory (its best checkpoint): `generate` and
    `score` with it (see seqgen.api.Model)."""
    from .api import load as load_model

    return load_model(path, device)


__all__ = ["__version__", "load"]
