"""LSTM (Hochreiter & Schmidhuber 1997, with a forget gate): torch's kernels, oneDNN's fused
sequence kernel on a CPU. State: h and c. Gate order i, f, g, o, as torch keeps them."""

from __future__ import annotations

import torch
from torch import nn

from . import Cell, Folded, Weights, register, weights


@register
class LSTM(Cell):
    """Long short-term memory, forget gates starting open."""

    name = "lstm"
    gates = 4
    state_size = 2
    bf16_pays = True  # oneDNN's bf16 LSTM: 1.2 to 1.6x its fp32 one

    def layer(self, n_in: int, hidden: int) -> nn.Module:
        layer = nn.LSTM(n_in, hidden, batch_first=True)
        _, _, b_ih, b_hh = weights(layer)
        with torch.no_grad():
            # Forget gates start open (bias 1), so the state is remembered from the first step:
            # Gers et al. (2000), Jozefowicz et al. (2015).
            b_ih[hidden : 2 * hidden].fill_(1.0)
            b_hh[hidden : 2 * hidden].zero_()
        return layer

    def sequence(self, layer, x, state):
        y, (h, c) = layer(x, (state[0:1].contiguous(), state[1:2].contiguous()))  # (B, T, H); (1, B, H) each
        return y, torch.cat([h, c])

    def step(self, x, state, w: Weights):
        h, c = torch.lstm_cell(x, (state[0], state[1]), *w)
        return h, torch.stack([h, c])

    def fold(self, w: Weights) -> Folded:
        # The g rows doubled, so that one sigmoid covers all four gates: tanh(x) = 2 sigmoid(2x) - 1.
        H = w[1].shape[1]
        w_ih, w_hh, b_ih, b_hh = (t.detach().clone() for t in w)
        for t in (w_ih, w_hh, b_ih, b_hh):
            t[2 * H : 3 * H] *= 2
        return super().fold((w_ih, w_hh, b_ih, b_hh))

    def decode(self, f, state, out, gates_in=None, x=None):
        gates = self.gates_of(f, state[0], gates_in, x)  # (4H, B)
        i, f_, g, o = gates.sigmoid_().chunk(4)
        cell = torch.addcmul(f_ * state[1], i, g.mul_(2).sub_(1), out=out[1])
        return torch.mul(o, cell.tanh(), out=out[0])
