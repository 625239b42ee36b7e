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
import torch.nn.functional as F

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from seqgen.checkpoint import load  # noqa: E402
from seqgen.corpora import load_corpus  # noqa: E402

CHUNK = 1024


def floats(text: str) -> list[float]:
    return [float(v) for v in text.split(",")]


def read(model, ids: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The head's inputs h (N, H) and log-probabilities (N, V) at every position of ids (N + 1,)."""
    captured: list[torch.Tensor] = []
    hook = model.head.register_forward_hook(lambda module, args, out: captured.append(args[0][0]))
    state, logps = model.initial_state(1), []
    for start in range(0, len(ids) - 1, CHUNK):
        logits, state = model(ids[None, start : min(start + CHUNK, len(ids) - 1)], state)  # (1, T, V)
        logps.append(F.log_softmax(logits[0], -1))
    hook.remove()
    return torch.cat(captured), torch.cat(logps)


def cache_probs(h: torch.Tensor, following: torch.Tensor, vocab: int, k: int, theta: float) -> torch.Tensor:
    """p_cache (N, V): at each t, softmax(theta h_t . h_j) over the k positions j < t, placed on
    the token that followed j (following[j]); all zero at t = 0."""
    n, out = len(h), torch.zeros(len(h), vocab)
    for t0 in range(0, n, 512):
        t1, j0 = min(t0 + 512, n), max(0, t0 - k)
        t, j = torch.arange(t0, t1)[:, None], torch.arange(j0, t1)[None]
        scores = (theta * h[t0:t1] @ h[j0:t1].t()).masked_fill(~((j < t) & (j >= t - k)), float("-inf"))  # (C, J)
        weights = scores.softmax(-1).nan_to_num(0.0)
        out[t0:t1].scatter_add_(1, following[j0:t1].expand(t1 - t0, -1), weights)
    return out


def repeated(ids: list[int], start: int, n: int = 12) -> float:
    """The share of positions from `start` whose last n tokens occur earlier in ids."""
    seen, hits, total = set(), 0, 0
    for i in range(n, len(ids) + 1):
        gram = tuple(ids[i - n : i])
        if i > start:
            hits, total = hits + (gram in seen), total + 1
        seen.add(gram)
    return hits / max(total, 1)


def generate(model, prime: torch.Tensor, length: int, temperature: float, cache: tuple | None, seed: int) -> list[int]:
    """Token by token (model.step), with the cache (k, theta, lam) or without; the prime fills it."""
    torch.manual_seed(seed)
    h_prime, _ = read(model, prime)
    keys, values = list(h_prime), prime[1:].tolist()  # h_j and the token that followed j
    captured: list[torch.Tensor] = []
    hook = model.head.register_forward_hook(lambda module, args, out: captured.append(args[0][0]))
    _, state = model(prime[None, :-1], model.initial_state(1))
    token, out = prime[-1:], []
    for _ in range(length):
        logits, state = model.step(token, state)  # (1, V)
        h = captured.pop()
        p = logits[0].softmax(-1)
        if cache is not None and keys:
            k, theta, lam = cache
            recent = torch.stack(keys[-k:])  # (J, H)
            weights = (theta * recent @ h).softmax(-1)
            p = (1 - lam) * p + lam * torch.zeros_like(p).index_add_(0, torch.tensor(values[-k:]), weights)
        token = torch.multinomial(p.clamp_min(1e-30).log().div(temperature).softmax(-1), 1)
        keys.append(h)
        values.append(int(token))
        out.append(int(token))
    hook.remove()
    return out


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
    model, tokenizer, _ = load(a.checkpoint)
    model.eval()
    corpus = load_corpus(str(a.text), tokenizer.reads, **tokenizer.reading())  # as `seqgen eval` reads it
    ids = torch.as_tensor(corpus.all_ids(tokenizer), dtype=torch.long)
    with torch.no_grad():
        h, logp = read(model, ids)  # (N, H), (N, V)
        following, vocab = ids[1:], logp.shape[1]
        p_model = logp.exp()
        print(f"{a.text}: {len(following):,} tokens; the model alone {-logp.gather(1, following[:, None]).mean():.4f} "
              "nats/token", flush=True)
        for k, theta in itertools.product(a.k, a.theta):
            p_cache = cache_probs(h, following, vocab, int(k), theta)
            for lam in a.lam:
                p = (1 - lam) * p_model + lam * p_cache
                p[0] = p_model[0]  # nothing cached before the first token
                loss = -p.gather(1, following[:, None]).clamp_min(1e-30).log().mean()
                print(f"K {int(k)} theta {theta} lam {lam}: {loss:.4f}", flush=True)
        if a.sample:
            prime = ids[: a.prime]
            setting = (int(a.k[0]), a.theta[0], a.lam[0])
            real = ids[: a.prime + a.sample].tolist()
            print(f"12-token repeats after the first {a.prime} tokens: the text itself {repeated(real, a.prime):.1%}")
            for name, cache in (("no cache", None), (f"cache {setting}", setting)):
                for seed in (1, 2):
                    sample = generate(model, prime, a.sample, 0.8, cache, seed)
                    shown = f" {tokenizer.decode(sample[:120])!r}" if tokenizer.reads == "text" else ""
                    print(f"{name}, seed {seed}: {repeated(prime.tolist() + sample, a.prime):.1%}{shown}", flush=True)


if __name__ == "__main__":
    main()
