"""A continuous cache (Grave, Joulin and Usunier 2017): the model's next-token distribution mixed
with a read of its own recent states,

    p(w) = (1 - lam) p_model(w) + lam sum_j softmax_j(theta h_t . h_j) [x_(j+1) = w],

j over the `size` positions before t, h the input of the model's head (B, T, H). An attention
read over recent hidden states whose values are the tokens that followed them: no parameters and
no training, and it lets a model use a name or a phrase it has just read (a new play's characters,
a chorale's repeated line). benchmarks/README.md has what it gains and costs.
"""

from __future__ import annotations

import math
import numbers
from dataclasses import dataclass

import torch

from .config import CACHE_DEFAULTS, MAX_CACHE, MAX_LAMBDA, MAX_THETA

MAX_CACHE_BYTES = 2**31  # the keys of every stream's cache, streams x size x H floats
READ_ELEMENTS = 1 << 24  # a window's read is done in chunks of queries of at most this many scores


@dataclass(frozen=True)
class Cache:
    """How the cache reads: the positions it keeps, the scale of its scores, its share."""

    size: int
    theta: float = CACHE_DEFAULTS["theta"]
    lam: float = CACHE_DEFAULTS["lam"]

    def __post_init__(self):
        def number(x, kind) -> bool:
            return isinstance(x, kind) and not isinstance(x, bool)

        if not (number(self.size, numbers.Integral) and 1 <= self.size <= MAX_CACHE):
            raise ValueError(f"cache size {self.size!r}: a whole number of positions from 1 to {MAX_CACHE}")
        if not (number(self.theta, numbers.Real) and 0 < self.theta <= MAX_THETA):
            raise ValueError(f"cache theta {self.theta!r}: a number above 0 and at most {MAX_THETA:g}")
        # At most MAX_LAMBDA: the model keeps a share (in float32 too), so no token gets probability 0.
        if not (number(self.lam, numbers.Real) and 0 <= self.lam <= MAX_LAMBDA):
            raise ValueError(f"cache lambda {self.lam!r}: from 0 to {MAX_LAMBDA}")
        for name, kind in (("size", int), ("theta", float), ("lam", float)):  # plain numbers; -0.0 as 0.0
            object.__setattr__(self, name, kind(getattr(self, name)) + kind(0))

    def streams_within(self, hidden: int, copies: int = 1) -> int:
        """The most streams whose keys, held `copies` times over, fit MAX_CACHE_BYTES."""
        return max(1, MAX_CACHE_BYTES // (copies * 4 * self.size * hidden))


class History:
    """Each stream's last `size` head inputs and the tokens that followed them: keys (B, M, H),
    values (B, M) and which of them hold a position (B, M), M <= size, oldest first."""

    def __init__(self, cache: Cache):
        self.cache = cache
        self.keys: torch.Tensor | None = None
        self.values: torch.Tensor | None = None
        self.held: torch.Tensor | None = None

    def remember(self, h: torch.Tensor, following: torch.Tensor, held: torch.Tensor | None = None) -> None:
        """Add positions: head inputs h (B, T, H), the tokens that followed them (B, T), and, where
        some streams have nothing to add, which rows hold a position (B, T)."""
        self._keep(*self._with(h, following, held))

    def _keep(self, keys: torch.Tensor, values: torch.Tensor, held: torch.Tensor) -> None:
        """Hold the last `size` of these positions."""
        size = self.cache.size
        self.keys, self.values, self.held = keys[:, -size:], values[:, -size:], held[:, -size:]

    def _with(self, h, following, held=None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """The history with these positions after it, untruncated."""
        held = torch.ones_like(following, dtype=torch.bool) if held is None else held
        if self.keys is None or self.values is None or self.held is None:
            return h, following, held
        return torch.cat([self.keys, h], 1), torch.cat([self.values, following], 1), torch.cat([self.held, held], 1)

    def target_logprob(self, logprobs: torch.Tensor, h: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """The mixed log-probability (B, T) of each target (B, T) of a window, given the model's
        log-probabilities (B, T, V) and head inputs h (B, T, H) there; then the window joins the
        history. A position with nothing in reach before it keeps the model's own probability."""
        c, (B, T, _) = self.cache, h.shape
        keys, values, held = self._with(h, targets)  # (B, M + T, H), (B, M + T), (B, M + T)
        M = keys.shape[1] - T
        model = logprobs.gather(-1, targets[..., None]).squeeze(-1)  # (B, T)
        out = torch.empty_like(model)
        step = max(1, READ_ELEMENTS // (B * (c.size + T)))  # queries a chunk: its scores stay bounded
        for a in range(0, T, step):
            b = min(a + step, T)
            lo = max(0, M + a - c.size)  # the oldest position any of these queries reaches
            t = torch.arange(M + a, M + b, device=h.device)[:, None]
            j = torch.arange(lo, M + b, device=h.device)[None, :]
            # Strictly before t (x_(t+1) is the target), at most `size` back, and holding a position.
            reach = ((j < t) & (j >= t - c.size))[None] & held[:, None, lo : M + b]  # (B, q, J)
            scores = torch.baddbmm(torch.where(reach, 0.0, float("-inf")).to(h.dtype), h[:, a:b],
                                   keys[:, lo : M + b].transpose(1, 2), alpha=c.theta)  # (B, q, J)
            weights = scores.softmax(-1).nan_to_num(0.0)  # a row with nothing in reach: all zero
            p_cache = (weights * (values[:, None, lo : M + b] == targets[:, a:b, None])).sum(-1)  # (B, q)
            some = reach.any(-1)  # (B, q): a position with nothing in reach keeps the model's own probability
            keep = torch.where(some, math.log1p(-c.lam), 0.0).to(h.dtype)  # the model's share, as a log
            out[:, a:b] = torch.logaddexp(keep + model[:, a:b], torch.log(c.lam * some * p_cache))
        self._keep(keys, values, held)
        return out


class Recall:
    """The cache while generating: a ring of each sample's last `size` head inputs and the tokens
    drawn after them, keys (K, H, capacity) and values (K, capacity). The samples advance together, so
    they fill it alike: the first `count` slots hold positions until it wraps round. The read
    does not depend on the order of the slots. Keys are kept as columns: a step's read is then a
    (1, H) x (H, n) product per sample, which made 8 and 64 samples 2.2x faster than (n, H) x
    (H, 1) did (one sample: level)."""

    def __init__(self, history: History, num_samples: int, hidden: int, capacity: int, device=None):
        """Starting from what `history` holds (of 1 stream, copied to every sample, or of each);
        `capacity`: the slots (the cache's size, or fewer where fewer positions will come)."""
        self.cache, self.capacity = history.cache, capacity
        self.keys = torch.zeros(num_samples, hidden, capacity, device=device)
        self.values = torch.zeros(num_samples, capacity, dtype=torch.long, device=device)
        self.count = 0
        if history.keys is not None and history.values is not None:
            self.count = M = history.keys.shape[1]
            self.keys[:, :, :M], self.values[:, :M] = history.keys.transpose(1, 2), history.values

    def mix(self, logits: torch.Tensor, h: torch.Tensor) -> torch.Tensor:
        """The model's logits (K, V) and head input h (K, H) of a step -> the mixed distribution's
        log-probabilities (K, V): logits to sample from."""
        n = min(self.count, self.capacity)
        if n == 0:
            return logits
        c = self.cache
        weights = torch.bmm(h[:, None, :], self.keys[:, :, :n]).squeeze(1).mul_(c.theta).softmax(-1)  # (K, n)
        p_cache = torch.zeros_like(logits).scatter_add_(1, self.values[:, :n], weights)  # (K, V)
        return torch.logaddexp(logits.log_softmax(-1) + math.log1p(-c.lam), p_cache.mul_(c.lam).log_())

    def add(self, h: torch.Tensor, token: torch.Tensor) -> None:
        """The step's head input h (K, H) and the token drawn after it (K,) join the ring."""
        slot = self.count % self.capacity
        self.keys[:, :, slot] = h
        self.values[:, slot] = token
        self.count += 1
