"""RNNLM: embedding -> stacked recurrent layers -> linear head. No I/O here.

Dimensions, named once:  B batch, T time steps, V vocabulary, E embedding, H hidden,
L layers, S state tensors per layer (2 for an LSTM's h and c, 1 for the others), C control inputs
(numbers read beside each token's embedding: seqgen.controls; most models have none).

The recurrent state is one tensor of shape (L, S, B, H). Everything outside this file treats it as
opaque: it is carried between batches, detached, indexed on dim 2 (the batch) and saved, never
inspected, so no caller branches on the cell type.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .cells import CELLS, weights
from .config import ModelConfig

BATCH_DIM = 2  # of the state tensor


def parameter_shapes(c: ModelConfig) -> dict[str, tuple[int, ...]]:
    """The shape of every tensor in an RNNLM's state_dict, from the config alone: what a
    checkpoint must hold, known before building anything (a test keeps it true)."""
    g = CELLS[c.cell].gates * c.hidden
    shapes: dict[str, tuple[int, ...]] = {"embed.weight": (c.vocab_size, c.embed)}
    for i in range(c.layers):
        shapes |= {f"rnns.{i}.weight_ih_l0": (g, c.embed + c.control_inputs if i == 0 else c.hidden),
                   f"rnns.{i}.weight_hh_l0": (g, c.hidden), f"rnns.{i}.bias_ih_l0": (g,), f"rnns.{i}.bias_hh_l0": (g,)}
    return shapes | {"head.weight": (c.vocab_size, c.hidden), "head.bias": (c.vocab_size,)}


class RNNLM(nn.Module):
    """A recurrent language model: token embedding, `layers` recurrent layers of one cell kind,
    and a linear head to the vocabulary's logits. No I/O: it sees ids and states only."""

    def __init__(self, config: ModelConfig):
        super().__init__()
        self.config = config
        c = config
        self.cell = CELLS[c.cell]
        self.state_size = self.cell.state_size
        self.embed = nn.Embedding(c.vocab_size, c.embed)
        self.rnns = nn.ModuleList(
            self.cell.layer(c.embed + c.control_inputs if i == 0 else c.hidden, c.hidden) for i in range(c.layers)
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
        h, state = self.features(ids, state, controls)
        return self.head(h), state

    def features(self, ids: torch.Tensor, state: torch.Tensor | None = None, controls: torch.Tensor | None = None):
        """`forward` without the head: what the head reads, (B, T, H), and the state."""
        if state is None:
            state = self.initial_state(ids.shape[0])
        x = self._inputs(ids, controls)  # (B, T, E + C)
        new_state = []
        for i, rnn in enumerate(self.rnns):
            y, s = self.cell.sequence(rnn, x, state[i])  # (B, T, H), (S, B, H)
            new_state.append(s)
            x = self._residual(i, x, self.drop(y))  # (B, T, H)
        return x, torch.stack(new_state)

    def step(self, ids: torch.Tensor, state: torch.Tensor, controls: torch.Tensor | None = None):
        """One token per stream: ids (B,) (and controls (B, C)) -> logits (B, V), state (L, S, B, H).

        Uses the cells' single-step kernels, which on a CPU are much faster for T = 1 than the
        sequence kernels; `forward` over a sequence and `step` token by token agree.
        """
        return self._step_from(0, self._inputs(ids, controls), state, [])

    def _step_from(self, first: int, x: torch.Tensor, state: torch.Tensor, new_state: list):
        """Layers `first`.. of `step`, given the input x (B, n_in) of layer `first`."""
        for i in range(first, len(self.rnns)):
            h, s = self.cell.step(x, state[i], weights(self.rnns[i]))  # (B, H), (S, B, H)
            new_state.append(s)
            x = self._residual(i, x, self.drop(h))  # (B, H)
        return self.head(x), torch.stack(new_state)

    @torch.no_grad()
    def decoder(self, controls: torch.Tensor | None = None, features: bool = False):
        """`step` for generation (frozen weights, no dropout), built for speed; agrees with `step`.
        A model with controls is given them here, (B, C), one row per stream, held for every step.
        With `features`, each step also returns what the head read, (B, H) (for seqgen.cache).

        - The first layer's input gates of every token are computed once, a (G*H, V) table, so a
          step reads one column of it instead of the embedding and the input weights; the
          controls' share of them, one (G*H, B) block, is computed once too.
        - It works in column layout: each layer's activations are (n, B) blocks, so every weight
          multiplies from the left, a (G*H, n) x (n, B) product that MKL runs about 15% faster
          than the row-layout one for B of 16 to 64. The state it returns is a transposed view.
        - Each cell arranges its own weights for this once (`Cell.fold`: biases added together
          where the cell allows, [W_ih | W_hh] stacked for one product per layer) and runs its
          update on them (`Cell.decode`).
        """
        c, rnn_cell = self.config, self.cell  # a local: the step closure reads it per layer
        folded = [rnn_cell.fold(weights(rnn)) for rnn in self.rnns]
        E = c.embed
        table = torch.addmm(folded[0].b_in, folded[0].w_ih[:, :E], self.embed.weight.t())  # (G*H, V)
        steer: torch.Tensor | None = None  # the controls' part of the first layer's input gates, (G*H, B)
        if c.control_inputs:
            if controls is None:
                raise ValueError("this model reads control inputs beside its ids")
            steer = folded[0].w_ih[:, E:] @ controls.to(table.dtype).t()
        head_w, head_b = self.head.weight, self.head.bias[:, None]  # (V, H), (V, 1)
        residual = c.residual

        def step(ids: torch.Tensor, state: torch.Tensor):
            state = state.transpose(2, 3)  # (L, S, H, B)
            new = torch.empty(state.shape, dtype=state.dtype, device=state.device)
            gates = table.index_select(1, ids)  # the first layer's input part, (G*H, B)
            if steer is not None:
                gates += steer
            y = rnn_cell.decode(folded[0], state[0], new[0], gates_in=gates)  # (H, B)
            for i in range(1, len(folded)):
                x = y
                y = rnn_cell.decode(folded[i], state[i], new[i], x=x)
                if residual:
                    y = y + x
            logits = torch.addmm(head_b, head_w, y).t()  # (B, V)
            if features:
                return logits, new.transpose(2, 3), y.t()  # ..., (L, S, B, H), (B, H)
            return logits, new.transpose(2, 3)

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
