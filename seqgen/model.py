"""RNNLM: embedding -> stacked recurrent layers -> linear head. No I/O here.

Dimensions, named once:  B batch, T time steps, V vocabulary, E embedding, H hidden,
L layers, S state tensors per layer (2 for an LSTM's h and c, 1 for the others), C control inputs
(numbers read beside each token's embedding: seqgen.controls; most models have none).

The recurrent state is one tensor of shape (L, S, B, H). Everything outside this file treats it as
opaque: it is carried between batches, detached, indexed on dim 2 (the batch) and saved, never
inspected, so no caller branches on the cell type.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from .config import ModelConfig

BATCH_DIM = 2  # of the state tensor


def weights(layer: nn.Module) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """A one-layer recurrent module's W_ih (G*H, n_in), W_hh (G*H, H), b_ih (G*H,), b_hh (G*H,)."""
    return tuple(getattr(layer, f"{name}_l0") for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"))


def _make_layer(cell: str, n_in: int, hidden: int) -> nn.RNNBase:
    layer: nn.RNNBase
    if cell == "lstm":
        layer = nn.LSTM(n_in, hidden, batch_first=True)
        _, _, b_ih, b_hh = weights(layer)
        with torch.no_grad():
            # Forget gates start open (bias 1, gate order i, f, g, o), so the state is remembered
            # from the first step: Gers et al. (2000), Jozefowicz et al. (2015).
            b_ih[hidden : 2 * hidden].fill_(1.0)
            b_hh[hidden : 2 * hidden].zero_()
        return layer
    if cell == "gru":
        return nn.GRU(n_in, hidden, batch_first=True)
    layer = nn.RNN(n_in, hidden, batch_first=True, nonlinearity="relu" if cell == "irnn" else "tanh")
    if cell == "irnn":
        # Le, Jaitly & Hinton (2015): a ReLU RNN trains well when its recurrent weights start as the
        # identity and its biases at zero, so the state is copied forward until learning changes it.
        _, w_hh, b_ih, b_hh = weights(layer)
        with torch.no_grad():
            nn.init.eye_(w_hh)
            b_hh.zero_()
            b_ih.zero_()
    return layer


GATES = {"lstm": 4, "gru": 3, "rnn": 1, "irnn": 1}  # weight blocks per recurrent layer


def parameter_shapes(c: ModelConfig) -> dict[str, tuple[int, ...]]:
    """The shape of every tensor in an RNNLM's state_dict, from the config alone: what a
    checkpoint must hold, known before building anything (a test keeps it true)."""
    g = GATES[c.cell] * c.hidden
    shapes: dict[str, tuple[int, ...]] = {"embed.weight": (c.vocab_size, c.embed)}
    for i in range(c.layers):
        shapes |= {f"rnns.{i}.weight_ih_l0": (g, c.embed + c.control_inputs if i == 0 else c.hidden),
                   f"rnns.{i}.weight_hh_l0": (g, c.hidden), f"rnns.{i}.bias_ih_l0": (g,), f"rnns.{i}.bias_hh_l0": (g,)}
    return shapes | {"head.weight": (c.vocab_size, c.hidden), "head.bias": (c.vocab_size,)}


# One step of each cell on (B, n_in) inputs, using the same weights as the layer's sequence kernel.
_CELL_STEP = {
    "gru": torch.gru_cell,
    "rnn": torch.rnn_tanh_cell,
    "irnn": torch.rnn_relu_cell,
}


class RNNLM(nn.Module):
    """A recurrent language model: token embedding, `layers` recurrent layers of one cell kind,
    and a linear head to the vocabulary's logits. No I/O: it sees ids and states only."""

    def __init__(self, config: ModelConfig):
        super().__init__()
        self.config = config
        c = config
        self.state_size = 2 if c.cell == "lstm" else 1
        self.embed = nn.Embedding(c.vocab_size, c.embed)
        self.rnns = nn.ModuleList(
            _make_layer(c.cell, c.embed + c.control_inputs if i == 0 else c.hidden, c.hidden) for i in range(c.layers)
        )
        self.drop = nn.Dropout(c.dropout)
        self.head = nn.Linear(c.hidden, c.vocab_size)

    def initial_state(self, batch_size: int, device=None) -> torch.Tensor:
        c = self.config
        device = device or self.head.weight.device
        return torch.zeros(c.layers, self.state_size, batch_size, c.hidden, device=device)

    def _residual(self, i: int, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        # Skip connections join stacked layers of equal width (the first layer's input is E wide).
        return y + x if self.config.residual and i > 0 else y

    def _inputs(self, ids: torch.Tensor, controls: torch.Tensor | None) -> torch.Tensor:
        """The first layer's input: ids (B, T) or (B,) -> their embeddings, with the controls
        (B, T, C) or (B, C) beside them: (..., E + C)."""
        x = self.embed(ids)
        if not self.config.control_inputs:
            return x
        if controls is None:
            raise ValueError("this model reads control inputs beside its ids")
        return torch.cat([x, controls.to(x.dtype)], -1)

    def forward(self, ids: torch.Tensor, state: torch.Tensor | None = None, controls: torch.Tensor | None = None):
        """ids (B, T) and, in a model with controls, controls (B, T, C) -> logits (B, T, V),
        state (L, S, B, H) after the last step."""
        if state is None:
            state = self.initial_state(ids.shape[0])
        x = self._inputs(ids, controls)  # (B, T, E + C)
        new_state = []
        for i, rnn in enumerate(self.rnns):
            s = state[i]  # (S, B, H)
            if self.state_size == 2:
                y, (h, c) = rnn(x, (s[0:1].contiguous(), s[1:2].contiguous()))
                new_state.append(torch.cat([h, c]))
            else:
                y, h = rnn(x, s.contiguous())
                new_state.append(h)
            x = self._residual(i, x, self.drop(y))  # (B, T, H)
        return self.head(x), torch.stack(new_state)

    def step(self, ids: torch.Tensor, state: torch.Tensor, controls: torch.Tensor | None = None):
        """One token per stream: ids (B,) (and controls (B, C)) -> logits (B, V), state (L, S, B, H).

        Uses the cells' single-step kernels, which on a CPU are much faster for T = 1 than the
        sequence kernels; `forward` over a sequence and `step` token by token agree.
        """
        return self._step_from(0, self._inputs(ids, controls), state, [])

    def _step_from(self, first: int, x: torch.Tensor, state: torch.Tensor, new_state: list):
        """Layers `first`.. of `step`, given the input x (B, n_in) of layer `first`."""
        for i in range(first, len(self.rnns)):
            w = weights(self.rnns[i])
            if self.state_size == 2:
                h, c = torch.lstm_cell(x, (state[i, 0], state[i, 1]), *w)
                new_state.append(torch.stack([h, c]))
            else:
                h = _CELL_STEP[self.config.cell](x, state[i, 0], *w)
                new_state.append(h.unsqueeze(0))
            x = self._residual(i, x, self.drop(h))  # (B, H)
        return self.head(x), torch.stack(new_state)

    @torch.no_grad()
    def decoder(self, controls: torch.Tensor | None = None):
        """`step` for generation (frozen weights, no dropout), built for speed; agrees with `step`.
        A model with controls is given them here, (B, C), one row per stream, held for every step.

        - The first layer's input gates of every token are computed once, a (G*H, V) table, so a
          step reads one column of it instead of the embedding and the input weights; the
          controls' share of them, one (G*H, B) block, is computed once too.
        - It works in column layout: each layer's activations are (n, B) blocks, so every weight
          multiplies from the left, a (G*H, n) x (n, B) product that MKL runs about 15% faster
          than the row-layout one for B of 16 to 64. The state it returns is a transposed view.
        - Biases are folded together where the cell allows, a stacked LSTM or RNN layer multiplies
          [W_ih | W_hh] by its input and state in one product, and an LSTM's g rows are doubled so
          that one sigmoid covers all four gates: tanh(x) = 2 sigmoid(2x) - 1.
        """
        c = self.config
        H, gru = c.hidden, c.cell == "gru"
        layers: list[tuple[Any, ...]] = []  # per layer: (W_ih (G*H, n_in), W_hh (G*H, H), b_ih (G*H, 1), b_hh (G*H, 1) or None)
        for rnn in self.rnns:
            w_ih, w_hh, b_ih, b_hh = (t.clone() for t in weights(rnn))
            b_ih, b_hh = b_ih[:, None], b_hh[:, None]
            if c.cell == "lstm":
                for t in (w_ih, w_hh, b_ih, b_hh):
                    t[2 * H : 3 * H] *= 2
            recurrent_bias: torch.Tensor | None = b_hh  # a GRU's sits inside its reset gate, so it stays apart
            if not gru:
                b_ih, recurrent_bias = b_ih + b_hh, None
            layers.append((w_ih, w_hh, b_ih, recurrent_bias))
        E = c.embed
        table = torch.addmm(layers[0][2], layers[0][0][:, :E], self.embed.weight.t())  # (G*H, V)
        steer: torch.Tensor | None = None  # the controls' part of the first layer's input gates, (G*H, B)
        if c.control_inputs:
            if controls is None:
                raise ValueError("this model reads control inputs beside its ids")
            steer = layers[0][0][:, E:] @ controls.to(table.dtype).t()
        stacked = [(torch.cat([w_ih, w_hh], 1), b_ih) for w_ih, w_hh, b_ih, _ in layers[1:]]  # non-GRU
        head_w, head_b = self.head.weight, self.head.bias[:, None]  # (V, H), (V, 1)
        residual = c.residual

        def update(gates, h_hh, h, c_prev, out):
            """One cell update in column layout: the layer's new h (H, B), written into out (S, H, B).
            gates: the summed pre-activations (G*H, B), or for a GRU the input part, with h_hh its
            recurrent part."""
            if c.cell == "lstm":
                i, f, g, o = gates.sigmoid_().chunk(4)
                cell = torch.addcmul(f * c_prev, i, g.mul_(2).sub_(1), out=out[1])
                return torch.mul(o, cell.tanh(), out=out[0])
            if gru:
                rz = gates[: 2 * H].add_(h_hh[: 2 * H]).sigmoid_()
                n = torch.addcmul(gates[2 * H :], rz[:H], h_hh[2 * H :]).tanh_()
                return torch.lerp(n, h, rz[H:], out=out[0])  # n + z (h - n)
            return torch.clamp_min(gates, 0, out=out[0]) if c.cell == "irnn" else torch.tanh(gates, out=out[0])

        def step(ids: torch.Tensor, state: torch.Tensor):
            state = state.transpose(2, 3)  # (L, S, H, B)
            new = torch.empty(state.shape, dtype=state.dtype, device=state.device)
            x: Any = None  # the layer's input (n_in, B), from the second layer on
            for i, (w_ih, w_hh, b_ih, b_hh) in enumerate(layers):
                h = state[i, 0]  # (H, B)
                if i == 0:
                    gates = table.index_select(1, ids)  # (G*H, B)
                    if steer is not None:
                        gates += steer
                    if not gru:
                        gates.addmm_(w_hh, h)
                elif gru:
                    gates = torch.addmm(b_ih, w_ih, x)
                else:
                    w, b = stacked[i - 1]
                    gates = torch.addmm(b, w, torch.cat([x, h]))
                h_hh = torch.addmm(b_hh, w_hh, h) if gru else None
                y = update(gates, h_hh, h, state[i, -1], new[i])
                x = y + x if residual and i > 0 else y
            return torch.addmm(head_b, head_w, x).t(), new.transpose(2, 3)  # (B, V), (L, S, B, H)

        return step


def layer_table(model: RNNLM) -> list[tuple[str, str, str, int]]:
    """(name, type, output shape, parameter count) for each layer, in the order data flows."""
    c = model.config
    rows: list[tuple[str, str, str, nn.Module]] = [("embed", "Embedding", f"(B, T, {c.embed})", model.embed)]
    rows += [(f"rnns.{i}", type(r).__name__, f"(B, T, {c.hidden})", r) for i, r in enumerate(model.rnns)]
    rows += [("head", "Linear", f"(B, T, {c.vocab_size})", model.head)]
    return [(name, kind, shape, sum(p.numel() for p in m.parameters())) for name, kind, shape, m in rows]


def sequence_loss(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Mean cross-entropy in nats: logits (B, T, V), targets (B, T)."""
    return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), targets.reshape(-1))
