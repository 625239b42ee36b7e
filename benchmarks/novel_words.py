#!/usr/bin/env python
"""Where a text model's held-out loss is: in words its training text never had, or in the rest.

Scores held-out text one character at a time as one reader would (a single stream, the state
carried throughout), with the model alone and with a continuous cache, and splits the loss by the
kind of word each predicted character belongs to:

  - novel: a word (a run of letters) that the training text does not contain, such as a new
    play's characters;
  - novel, seen here before: such a word that already came up earlier in the held-out text, which
    only a reader that remembers what it read can know;
  - known: a word the training text contains;
  - other: spaces, punctuation, line ends, digits.

    python benchmarks/novel_words.py RUN/best.safetensors train.txt valid.txt --cache 2000

Prints a table; issue 18's numbers are in benchmarks/RESULTS.md.
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import seqgen  # noqa: E402
from seqgen.cache import Cache, History  # noqa: E402

WORD = re.compile(r"[^\W\d_]+")  # a run of letters, in any script
KINDS = ("novel", "novel, seen here before", "known", "other")


def word_kinds(train: str, text: str) -> np.ndarray:
    """The kind (an index into KINDS) of each character of `text`."""
    vocabulary = set(WORD.findall(train))
    kinds = np.full(len(text), KINDS.index("other"), dtype=np.int64)
    seen: set[str] = set()
    for match in WORD.finditer(text):
        word = match.group()
        if word in vocabulary:
            kind = "known"
        else:
            kind = "novel, seen here before" if word in seen else "novel"
            seen.add(word)
        kinds[match.start() : match.end()] = KINDS.index(kind)
    return kinds


@torch.no_grad()
def token_losses(model: seqgen.Model, ids: np.ndarray, cache: Cache | None, window: int = 256) -> np.ndarray:
    """Nats for each of ids[1:], read as one stream."""
    net = model.net
    net.eval()
    ids_t = torch.from_numpy(ids.astype(np.int64))[None]  # (1, N)
    state = net.initial_state(1)
    history = None if cache is None else History(cache)
    out = []
    for start in range(0, ids_t.shape[1] - 1, window):
        x, y = ids_t[:, start : start + window], ids_t[:, start + 1 : start + window + 1]
        x = x[:, : y.shape[1]]
        h, state = net.features(x, state, None)  # (1, T, H)
        logprobs = F.log_softmax(net.head(h).float(), -1)  # (1, T, V)
        if history is None:
            out.append(-logprobs.gather(-1, y[..., None])[0, :, 0])
        else:
            out.append(-history.target_logprob(logprobs, h, y)[0])
    return torch.cat(out).numpy()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("checkpoint", type=Path)
    ap.add_argument("train", type=Path, help="the text the model was trained on")
    ap.add_argument("valid", type=Path, help="held-out text to score")
    ap.add_argument("--cache", type=int, default=2000, help="the cache's size (0: the model alone only)")
    a = ap.parse_args()
    model = seqgen.load(a.checkpoint)
    text = a.valid.read_text(encoding="utf-8")
    kinds = word_kinds(a.train.read_text(encoding="utf-8"), text)[1:]  # the kind of each predicted character
    rows = {"alone": token_losses(model, model.ids_of(text), None)}
    if a.cache:
        rows[f"cache {a.cache}"] = token_losses(model, model.ids_of(text), Cache(a.cache))
    print(f"{a.checkpoint} on {a.valid} ({len(kinds):,} characters scored), nats per character:\n")
    print("| characters in | share | " + " | ".join(f"loss, {name} | share of the total" for name in rows) + " |")
    print("|---|---|" + "---|---|" * len(rows))
    for index, kind in enumerate(KINDS):
        chosen = kinds == index
        cells = " | ".join(f"{loss[chosen].mean():.3f} | {loss[chosen].sum() / len(loss):.3f}" for loss in rows.values())
        print(f"| {kind} | {chosen.mean():.1%} | {cells} |")
    print("| all | 100% | " + " | ".join(f"{loss.mean():.4f} | {loss.mean():.4f}" for loss in rows.values()) + " |")


if __name__ == "__main__":
    main()
