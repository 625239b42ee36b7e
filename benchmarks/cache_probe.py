#!/usr/bin/env python
"""A continuous cache over a trained seqgen model: would it pay? (issue 18)

Grave, Joulin and Usunier (2017), "Improving neural language models with a continuous cache":
the model's next-token distribution is mixed with one read from its own recent states,

    p(w) = (1 - lam) p_model(w) + lam sum_j softmax_j(theta h_t . h_j) [x_(j+1) = w],

j over the K positions before t, h the input of the model's head. No training and no parameters:
an attention read over recent hidden states whose values are the tokens that followed them.

The text is read as one stream, state carried (as `seqgen eval` reads it, but for its B
parallel streams), and scored alone and with the cache for each (K, theta, lam) asked. With
--sample N it also generates N tokens at temperature 0.8 after the text's first --prime tokens,
with and without the cache, and reports how much of each sample repeats what came before it
(copying is how a cache can go wrong: the share of 12-token strings seen earlier), beside the
same figure for the text itself.

    python benchmarks/cache_probe.py checkpoints/run valid.txt
    python benchmarks/cache_probe.py checkpoints/run valid.txt --k 2000 --theta 0.5 --lam 0.2 --sample 2000
    python benchmarks/cache_probe.py checkpoints/bach ../shared/corpora/bach-chorales-midi/valid
"""

from __future__ import annotations

import argparse
import itertools
import sys
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from seqgen.cache import Cache  # noqa: E402
from seqgen.checkpoint import load  # noqa: E402
from seqgen.corpora import load_corpus  # noqa: E402
from seqgen.sample import generate  # noqa: E402
from seqgen.train import evaluate  # noqa: E402


def floats(text: str) -> list[float]:
    return [float(v) for v in text.split(",")]


def repeated(ids: list[int], start: int, n: int = 12) -> float:
    """The share of positions from `start` whose last n tokens occur earlier in ids."""
    seen, hits, total = set(), 0, 0
    for i in range(n, len(ids) + 1):
        gram = tuple(ids[i - n : i])
        if i > start:
            hits, total = hits + (gram in seen), total + 1
        seen.add(gram)
    return hits / max(total, 1)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("checkpoint", type=Path)
    ap.add_argument("text", type=Path, help="held-out text (or MIDI folder) to score, as `seqgen eval` takes it")
    ap.add_argument("--k", type=floats, default=[500, 2000], help="cache sizes, comma-separated")
    ap.add_argument("--theta", type=floats, default=[0.3, 0.5, 1.0], help="score scales")
    ap.add_argument("--lam", type=floats, default=[0.1, 0.2, 0.3], help="the cache's shares")
    ap.add_argument("--sample", type=int, default=0, help="also generate this many tokens with the first setting")
    ap.add_argument("--prime", type=int, default=1000, help="tokens of the text that start each sample")
    ap.add_argument("--threads", type=int, default=2)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    model, tokenizer, ckpt = load(a.checkpoint)
    corpus = load_corpus(str(a.text), tokenizer.reads, **tokenizer.reading())  # as `seqgen eval` reads it
    ids = corpus.all_ids(tokenizer)
    seq_len = ckpt.meta["train"]["seq_len"]
    plain, count = evaluate(model, ids, 64, seq_len)  # seqgen's own scoring, alone and with seqgen.cache
    print(f"{a.text}: {count:,} tokens; the model alone {plain:.4f} nats/token", flush=True)
    for k, theta, lam in itertools.product(a.k, a.theta, a.lam):
        loss, _ = evaluate(model, ids, 64, seq_len, cache=Cache(int(k), theta, lam))
        print(f"K {int(k)} theta {theta} lam {lam}: {loss:.4f}", flush=True)
    if a.sample:
        prime = ids[: a.prime].tolist()
        setting = Cache(int(a.k[0]), a.theta[0], a.lam[0])
        real = ids[: a.prime + a.sample].tolist()
        print(f"12-token repeats after the first {a.prime} tokens: the text itself {repeated(real, a.prime):.1%}")
        for name, cache in (("no cache", None), (f"cache {setting}", setting)):
            for seed in (1, 2):
                sample = generate(model, prime, a.sample, temperature=0.8, seed=seed, cache=cache)[0]
                shown = f" {tokenizer.decode(sample[:120])!r}" if tokenizer.reads == "text" else ""
                print(f"{name}, seed {seed}: {repeated(prime + sample, a.prime):.1%}{shown}", flush=True)


if __name__ == "__main__":
    main()
