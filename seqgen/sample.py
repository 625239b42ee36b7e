"""Batched incremental generation: K samples advance together, one model step per token.

Decoding is modality-agnostic: it sees ids only. The prime is read once with `forward`, its final
state copied to every sample, then each step (`model.decoder()`) filters the logits
(temperature, top-k, top-p) and draws the next id from a seeded generator, so the same seed
gives the same samples.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Callable, Protocol, Sequence

import torch

if TYPE_CHECKING:
    import numpy as np

from .cache import MAX_CACHE_BYTES, Cache, History, Recall
from .errors import SeqgenError
from .model import BATCH_DIM, RNNLM


class Rules(Protocol):
    """What may come next, per sample: a tokenizer's grammar, applied as a mask on the logits."""

    def start(self, prime: Sequence[int], num_samples: int, device) -> None: ...

    # (K, V) logits -> (K, V): what may not come next at -inf (`temperature`: how they will be sampled)
    def restrict(self, logits: torch.Tensor, temperature: float) -> torch.Tensor: ...

    def advance(self, token: torch.Tensor) -> None: ...  # the (K,) ids just drawn


def filter_logits(logits: torch.Tensor, top_k: int | None, top_p: float | None) -> torch.Tensor:
    """Mask (with -inf) all but the k most likely ids and the smallest nucleus of mass >= p.

    logits (K, V) -> (K, V). The most likely id always survives.
    """
    if top_k and top_k < logits.shape[-1]:
        kth = torch.topk(logits, top_k, dim=-1).values[:, -1:]  # (K, 1)
        logits = logits.masked_fill(logits < kth, float("-inf"))
    if top_p is not None and top_p < 1.0:
        sorted_logits, order = torch.sort(logits, dim=-1, descending=True)
        cumulative = sorted_logits.softmax(-1).cumsum(-1)
        # Drop an id when the ids ranked above it already reach p.
        drop_sorted = (cumulative - sorted_logits.softmax(-1)) >= top_p
        drop = torch.zeros_like(drop_sorted).scatter(-1, order, drop_sorted)
        logits = logits.masked_fill(drop, float("-inf"))
    return logits


PRIME_CHUNK = 4096  # a long prime is read in pieces: memory for its logits stays bounded
NOISE_BLOCK_ELEMENTS = 1 << 20  # the sampling noise of up to 64 steps is drawn at once, within this


def _log_exponential(shape, generator: torch.Generator) -> torch.Tensor:
    """log E for E ~ Exp(1): E = -log U with U uniform, because uniform_ is vectorised and
    exponential_ is not (5x slower for 64 streams of 65 ids)."""
    return torch.empty(shape, device=generator.device).uniform_(generator=generator).log_().neg_().log_()


@torch.no_grad()
def generate(
    model: RNNLM,
    prime: Sequence[int],
    length: int,
    *,
    num_samples: int = 1,
    temperature: float = 1.0,
    top_k: int | None = None,
    top_p: float | None = None,
    seed: int | None = None,
    stop: Sequence[int] = (),
    rules: Rules | None = None,
    token_time: Sequence[float] | np.ndarray | None = None,
    max_time: float | None = None,
    on_step: Callable[[torch.Tensor], None] | None = None,
    controls: torch.Tensor | None = None,
    cache: Cache | None = None,
) -> list[list[int]]:
    """Generate up to `length` ids after `prime` (at least one id) for each of `num_samples`.

    temperature 0 is greedy decoding. A sample ends early once the prime followed by its output
    ends with `stop` (which is kept in the returned ids), or once the `token_time` of its ids
    (say, the seconds each MIDI event moves the clock) adds up to `max_time`. `rules` may forbid
    ids (what a tokenizer knows cannot come next). `on_step` receives each new (K,) batch of ids
    as it is made. A model with control inputs is given `controls` (K, C): what each sample is
    told at every step, the prime's included. With `cache`, each step draws from the model mixed
    with a continuous cache of its last states, the prime's included (seqgen.cache).
    """
    if len(prime) == 0:
        raise ValueError("generation needs a prime of at least one token")
    model.eval()
    device = model.head.weight.device
    generator = torch.Generator(device=device)
    generator.manual_seed(seed if seed is not None else torch.seed())

    prime_ids = torch.as_tensor(list(map(int, prime)), dtype=torch.long, device=device)
    # The prime is read once for all samples, or once for each when they are told different controls.
    if controls is not None:
        controls = controls.to(device=device, dtype=torch.float32)  # (K, C)
    streams = num_samples if controls is not None and not bool((controls == controls[:1]).all()) else 1
    # The cache's ring holds no more states than the prime and the samples will give it.
    capacity = 0 if cache is None else min(cache.size, len(prime_ids) - 1 + length)
    memory = 0 if cache is None else 4 * num_samples * capacity * model.config.hidden
    if memory > MAX_CACHE_BYTES:
        raise SeqgenError(f"a cache of {capacity} states for {num_samples} samples takes {memory / 2**30:.1f} GB, over "
                          f"{MAX_CACHE_BYTES / 2**30:g} GB; lower --cache or --num-samples")
    state = model.initial_state(streams)  # (L, S, 1 or K, H)
    history = History(cache) if cache is not None else None
    chunk = max(16, PRIME_CHUNK // streams)  # the chunk's logits, (1 or K, chunk, V), stay bounded
    for start in range(0, len(prime_ids) - 1, chunk):  # all but the last id, which the first step reads
        end = min(start + chunk, len(prime_ids) - 1)
        ids = prime_ids[None, start:end].expand(streams, -1)  # (1 or K, T)
        told = None if controls is None else controls[:streams, None, :].expand(-1, ids.shape[1], -1)  # (1 or K, T, C)
        h, state = model.features(ids, state, told)  # (1 or K, T, H)
        if history is not None:
            history.remember(h, prime_ids[None, start + 1 : end + 1].expand(streams, -1))
    if streams == 1:
        state = state.repeat_interleave(num_samples, dim=BATCH_DIM)  # (L, S, K, H)
    token = prime_ids[-1:].expand(num_samples).contiguous()  # (K,)

    stop_ids = torch.as_tensor(list(map(int, stop)), dtype=torch.long, device=device)
    # The output buffer starts with the prime's last len(stop) - 1 ids (or -1 padding), so a stop
    # sequence that begins inside the prime is still found:  [prime tail | generated ...]
    lead = max(len(stop_ids) - 1, 0)
    out = torch.full((num_samples, lead + length), -1, dtype=torch.long, device=device)
    tail = prime_ids[max(len(prime_ids) - lead, 0) :]
    out[:, lead - len(tail) : lead] = tail
    finished = torch.zeros(num_samples, dtype=torch.bool, device=device)
    ends = torch.full((num_samples,), length, dtype=torch.long)
    if rules is not None:
        rules.start(prime, num_samples, device)
    if max_time is not None:
        times = torch.as_tensor(token_time, dtype=torch.float64, device=device)  # (V,)
        clock = torch.zeros(num_samples, dtype=torch.float64, device=device)  # (K,)
    # model.step, with the first layer's input projection precomputed (and what the head read, for the cache)
    step = model.decoder(controls) if cache is None else model.decoder(controls, features=True)
    recall = None if history is None else Recall(history, num_samples, model.config.hidden, capacity, device)
    history = None  # the recall holds its own copy
    # The noise of `block` steps is drawn in one call, one kernel instead of four per step; the
    # block size does not depend on `length`, so a longer sample starts with the shorter one.
    vocab = model.head.weight.shape[0]
    block = max(1, min(64, NOISE_BLOCK_ELEMENTS // (num_samples * vocab)))
    steps = 0
    for t in range(length):
        if temperature and t % block == 0:
            log_e = _log_exponential((block, num_samples, vocab), generator)  # (block, K, V)
        logits, state, *read = step(token, state)  # (K, V), and with a cache what the head read, (K, H)
        if t == 0 and not torch.isfinite(logits).all():  # finite weights can still overflow (3e38, say)
            raise SeqgenError("the model's outputs are not finite numbers: its weights are damaged or far too large")
        if recall is not None:
            logits = recall.mix(logits, read[0])  # log-probabilities of the mixture: logits too
        if rules is not None:
            logits = rules.restrict(logits, temperature)
        # Gumbel-max: argmax(logits / T - log E), E ~ Exp(1), is a draw from softmax(logits / T),
        # in a few cheap kernels instead of softmax and multinomial's cumulative search.
        if temperature == 0:
            token = logits.argmax(-1)
        elif top_k or top_p is not None:
            # Shift by the max before dividing: a tiny temperature then gives a one-hot
            # distribution instead of inf / inf = nan (top-p needs the softmax).
            scaled = filter_logits((logits - logits.amax(-1, keepdim=True)) / temperature, top_k, top_p)
            token = (scaled - log_e[t % block]).argmax(-1)
        else:
            # The same argmax, scaled by T: no division, so no overflow at tiny temperatures.
            token = torch.sub(logits, log_e[t % block], alpha=temperature).argmax(-1)
        out.select(1, lead + t).copy_(token)
        if recall is not None:
            recall.add(read[0], token)
        if rules is not None:
            rules.advance(token)
        steps = t + 1
        if on_step is not None:
            on_step(token.cpu())
        if not len(stop_ids) and max_time is None:
            continue  # nothing ends a sample early: skip the bookkeeping (and its sync)
        done = torch.zeros_like(finished)
        if len(stop_ids):
            done |= (out[:, t : lead + t + 1] == stop_ids).all(-1)
        if max_time is not None:
            clock += times[token]
            done |= clock >= max_time - 1e-9
        done &= ~finished
        if done.any():
            ends[done.cpu()] = t + 1
            finished |= done
            if finished.all():
                break
    rows = out[:, lead : lead + steps].tolist()
    return [row[: min(int(end), steps)] for row, end in zip(rows, ends)]
