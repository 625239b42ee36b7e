#!/usr/bin/env python
"""Would an attention read over recent hidden states pay for itself? (issue 18)

The default model (1 x 384 LSTM, seqgen's optimizer and schedule, the same streams) against the
same model with a single-head attention read after the LSTM, on tiny Shakespeare's first 90%,
scored on the last 10%. The read, as in Magenta's attention RNN and Transformer-XL's memory:
each step's query q = W_q h_t looks at the keys of its K most recent states (this window's and
the previous window's, carried detached as keys and values), and out = h_t + W_o softmax(q k / sqrt(d)) v
goes to the head. A prototype, not a seqgen model: it answers whether the feature would be worth
building, in step-matched runs (quality per step) and timed runs (quality per second).
With `--ramp 4,8,16`, the batch grows over the run (each stream splits in two, so every
character is still read once an epoch): the probe that led to seqgen's --batch-ramp (which
cuts each window into pieces instead).
With `--mlstm H`, the model is instead a multiplicative LSTM of H units (Krause et al. 2016), as
a plain autograd loop: the other architectural lever issue 18 names, compared per step.

    python benchmarks/attention_probe.py --steps 2500 --threads 1            # plain
    python benchmarks/attention_probe.py --steps 2500 --threads 1 --mem 64   # with the read
    python benchmarks/attention_probe.py --budget 105 --mem 64               # 105 s, 2 threads
    python benchmarks/attention_probe.py --steps 1500 --mlstm 352 --lr 5e-3  # the mLSTM
    python benchmarks/attention_probe.py --budget 105 --ramp 4,8,16          # a batch ramp

Each run prints one line; results and the machine are in benchmarks/RESULTS.md.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from seqgen.config import ModelConfig, TrainConfig  # noqa: E402
from seqgen.data import split  # noqa: E402
from seqgen.model import RNNLM  # noqa: E402
from seqgen.train import learning_rate, make_optimizer  # noqa: E402


class AttentionLM(RNNLM):
    """RNNLM (one layer) with an attention read over the last `mem` states before the head.
    Its state is (LSTM state (1, S, B, H), memory (B, mem, dk + dv + 1)): each memory slot holds a
    past step's key, value and a 1 marking it filled (a new stream's memory is empty)."""

    def __init__(self, c: ModelConfig, mem: int, dk: int, dv: int):
        super().__init__(c)
        self.mem, self.dk, self.dv = mem, dk, dv
        self.qkv = nn.Linear(c.hidden, 2 * dk + dv, bias=False)
        self.out = nn.Linear(dv, c.hidden, bias=False)
        nn.init.zeros_(self.out.weight)  # starts as the plain model

    def initial_state(self, batch_size: int, device=None):
        return super().initial_state(batch_size), torch.zeros(batch_size, self.mem, self.dk + self.dv + 1)

    def forward(self, ids, state=None, controls=None):
        B, T = ids.shape
        K, dk = self.mem, self.dk
        rnn_state, memory = self.initial_state(B) if state is None else state
        y, s = self.cell.sequence(self.rnns[0], self.embed(ids), rnn_state[0])  # (B, T, H)
        qkv = self.qkv(y)  # (B, T, 2 dk + dv)
        new = torch.cat([qkv[..., dk:], torch.ones(B, T, 1)], -1)  # (B, T, dk + dv + 1)
        slots = torch.cat([memory, new], 1)  # (B, K + T, dk + dv + 1)
        t = torch.arange(T)[:, None] + K
        p = torch.arange(K + T)[None, :]
        band = (p <= t) & (p > t - K)  # each step reads its K most recent states, itself included
        bias = torch.where(band, 0.0, float("-inf")) + slots[:, None, :, -1].log()  # (B, T, K + T); empty slots -inf
        scores = torch.baddbmm(bias, qkv[..., :dk], slots[..., :dk].transpose(1, 2), alpha=dk**-0.5)
        read = torch.bmm(scores.softmax(-1), slots[..., dk:-1])  # (B, T, dv)
        logits = self.head(y + self.out(read))  # (B, T, V)
        return logits, (s[None], slots[:, -K:].detach())


class MLSTMLM(RNNLM):
    """A multiplicative LSTM (Krause et al. 2016): m = (W_mx x) * (W_mh h_(t-1)) replaces h_(t-1)
    in the gates, W_x x + W_hm m + b, so each input character picks its own recurrent matrix."""

    def __init__(self, c: ModelConfig, hidden: int):
        super().__init__(c)
        del self.rnns
        self.hidden = H = hidden
        self.wx = nn.Linear(c.embed, 5 * H)  # the gates' input part (i, f, u, o) and m's
        self.wmh = nn.Linear(H, H, bias=False)
        self.whm = nn.Linear(H, 4 * H, bias=False)
        self.head = nn.Linear(H, c.vocab_size)
        with torch.no_grad():
            self.wx.bias.zero_()
            self.wx.bias[H : 2 * H] = 1.0  # forget gates start open, as seqgen's LSTM

    def initial_state(self, batch_size: int, device=None):
        return torch.zeros(2, batch_size, self.hidden)  # (h, c)

    def forward(self, ids, state=None, controls=None):
        B, T = ids.shape
        H = self.hidden
        h, c = (self.initial_state(B) if state is None else state).unbind(0)  # (B, H) each
        xs = self.wx(self.embed(ids))  # (B, T, 5H)
        ys = []
        for t in range(T):
            m = xs[:, t, 4 * H :] * self.wmh(h)  # (B, H)
            i, f, u, o = (xs[:, t, : 4 * H] + self.whm(m)).chunk(4, 1)
            c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(u)
            h = torch.sigmoid(o) * torch.tanh(c)
            ys.append(h)
        return self.head(torch.stack(ys, 1)), torch.stack([h, c])  # (B, T, V), (2, B, H)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--mem", type=int, default=0, help="states the read looks at (0: the plain model)")
    ap.add_argument("--dk", type=int, default=64, help="key width")
    ap.add_argument("--dv", type=int, default=64, help="value width")
    ap.add_argument("--mlstm", type=int, default=0, help="units of a multiplicative LSTM instead (0: off)")
    ap.add_argument("--lr", type=float, default=TrainConfig.lr, help="peak learning rate")
    ap.add_argument("--ramp", default="", help="batch sizes over even shares of the run, as 4,8,16 (default: 16 throughout)")
    ap.add_argument("--steps", type=int, default=2500, help="training steps (when no --budget)")
    ap.add_argument("--budget", type=float, default=0.0, help="seconds of training instead of --steps")
    ap.add_argument("--seed", type=int, default=1337)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--corpus", type=Path, default=ROOT.parent / "shared" / "corpora" / "tinyshakespeare.txt")
    a = ap.parse_args()
    if a.ramp and (a.mem or a.mlstm):
        ap.error("--ramp splits the plain model's state; not with --mem or --mlstm")
    torch.set_num_threads(a.threads)
    torch.manual_seed(a.seed)
    text = a.corpus.read_text(encoding="utf-8")
    chars = sorted(set(text))
    lookup = {ch: i for i, ch in enumerate(chars)}
    ids = np.array([lookup[ch] for ch in text], dtype=np.int64)
    cut = int(len(text) * 0.9)
    train, _ = split(ids[:cut], 0.02)  # seqgen's split: its 2% of validation pieces are left out
    valid = ids[cut:]

    c, cfg = ModelConfig(vocab_size=len(chars)), TrainConfig(max_steps=a.steps, lr=a.lr)
    model = MLSTMLM(c, a.mlstm) if a.mlstm else AttentionLM(c, a.mem, a.dk, a.dv) if a.mem else RNNLM(c)
    optimizer = make_optimizer(model, cfg)

    def detach(state):
        return tuple(s.detach() for s in state) if a.mem else state.detach()

    ramp = [int(b) for b in a.ramp.split(",")] if a.ramp else [cfg.batch_size]
    sl = cfg.seq_len
    step, epoch, done, started = 0, 1, 0.0, time.monotonic()
    while done < 1:  # seqgen's epochs: streams restart at a seeded offset, the state starts empty
        # The streams as seqgen's Streams cuts them, read window by window; with --ramp, each
        # splits in two (or more) when the batch grows, the first part keeping its state.
        g = torch.Generator().manual_seed(a.seed * 1_000_003 + epoch)
        offset = 0 if epoch == 1 else int(torch.randint(sl, (1,), generator=g))
        stage = min(int(done * len(ramp)), len(ramp) - 1)
        bsz = ramp[stage]
        n = len(train) - offset
        length = n // bsz
        starts = [offset + b * length for b in range(bsz)]
        pos = 0
        state = model.initial_state(bsz)
        while pos + sl + 1 <= length:
            done = (time.monotonic() - started) / a.budget if a.budget else step / a.steps
            if done >= 1:
                break
            new_stage = min(int(done * len(ramp)), len(ramp) - 1)
            if new_stage > stage:  # each stream splits in two: the first half keeps its state
                factor = ramp[new_stage] // ramp[stage]
                rest = (length - pos) // factor
                starts = [s0 + pos + k * rest for s0 in starts for k in range(factor)]
                length, pos, stage = rest, 0, new_stage
                L, S, B, H = state.shape
                grown = state.new_zeros(L, S, B, factor, H)
                grown[:, :, :, 0] = state
                state = grown.view(L, S, B * factor, H)
                if pos + sl + 1 > length:
                    break
            window = torch.from_numpy(np.stack([train[s0 + pos : s0 + pos + sl + 1] for s0 in starts]).astype(np.int64))
            x, y = window[:, :-1], window[:, 1:]
            pos += sl
            for group in optimizer.param_groups:
                group["lr"] = learning_rate(cfg, step, done)
            logits, state = model(x, detach(state))  # (B, T, V)
            loss = F.cross_entropy(logits.flatten(0, 1), y.flatten())
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.clip)
            optimizer.step()
            state = detach(state)
            step += 1
        epoch += 1
    seconds = time.monotonic() - started

    model.eval()
    with torch.no_grad():  # 8 contiguous streams over the valid text, state carried
        B = 8
        n = (len(valid) - 1) // B
        total, count, state = 0.0, 0, model.initial_state(B)
        for start in range(0, n, cfg.seq_len):
            end = min(start + cfg.seq_len, n)
            x = torch.from_numpy(np.stack([valid[b * n + start : b * n + end] for b in range(B)]))
            y = torch.from_numpy(np.stack([valid[b * n + start + 1 : b * n + end + 1] for b in range(B)]))
            logits, state = model(x, state)
            total += F.cross_entropy(logits.flatten(0, 1), y.flatten(), reduction="sum").item()
            count += y.numel()
    params = sum(p.numel() for p in model.parameters())
    kind = f"mlstm {a.mlstm}" if a.mlstm else f"mem {a.mem} dk {a.dk} dv {a.dv}"
    kind += f" ramp {a.ramp}" if a.ramp else ""
    print(f"{kind} lr {a.lr:g} seed {a.seed} threads {a.threads}: {step} steps in {seconds:.0f} s, "
          f"{params:,} parameters, valid {total / count:.4f} nats/char", flush=True)


if __name__ == "__main__":
    main()
