"""Recurrent cells: one module per kind behind one interface (`Cell`), as char-rnn keeps one cell
per file with one signature. `RNNLM` holds a cell and never asks which kind it is.

A cell is a class in this package with the `Cell` members, decorated with `@register` (every
module here is imported). `seqgen.config.CELLS` names them for the command line without importing
torch (tests/test_design.py keeps the two the same).

Dimensions: B batch, T time steps, H hidden, G gates (weight blocks per layer), S state tensors
(2 for an LSTM's h and c, 1 for the others), n_in a layer's input width.

Each layer's weights live in a torch module (`nn.LSTM`, `nn.GRU`, `nn.RNN`), so checkpoints name
them as torch does: weight_ih_l0 (G*H, n_in), weight_hh_l0 (G*H, H), bias_ih_l0, bias_hh_l0
(G*H,). A cell runs them three ways, which agree (tests/test_model.py):
  - `sequence`: a whole window, for training and scoring;
  - `step`: one token, with torch's single-step kernels;
  - `decode`: one token in the decoder's column layout, on weights `fold` arranged once.
"""

from __future__ import annotations

import functools
import importlib
import pkgutil
from dataclasses import dataclass
from typing import Callable

import torch
from torch import nn

Weights = tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]  # W_ih, W_hh, b_ih, b_hh


def weights(layer: nn.Module) -> Weights:
    """A layer's W_ih (G*H, n_in), W_hh (G*H, H), b_ih (G*H,), b_hh (G*H,)."""
    return tuple(getattr(layer, f"{name}_l0") for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"))


def sequence_kernels(x: torch.Tensor) -> bool:
    """Whether the CPU sequence functions of this package (gru.py, rnn.py) run on x: on a CPU in
    fp32 or fp64, without autocast. Elsewhere torch's own kernels do (cuDNN on a GPU; bf16, which
    these functions would accumulate in, and autocast, which they would not follow)."""
    if x.device.type != "cpu" or x.dtype not in (torch.float32, torch.float64):
        return False
    try:
        autocast = torch.is_autocast_enabled("cpu")
    except TypeError:  # torch < 2.4
        autocast = torch.is_autocast_cpu_enabled()
    return not autocast


@functools.cache
def onednn_products() -> bool:
    """Whether this torch multiplies by oneDNN-packed weights (`packed`), and gets the same
    numbers as addmm: the operations are internal to torch (its compiler's), so a torch without
    them, or with others of the same names, is found out once here, on a tiny product."""
    if not (torch.backends.mkldnn.is_available() and torch.backends.mkldnn.enabled):
        return False
    try:
        g = torch.Generator().manual_seed(0)
        w, x, add = (torch.randn(*shape, generator=g) for shape in ((3, 2), (4, 2), (4, 3)))
        blocked = torch.ops.mkldnn._reorder_linear_weight(w, 4)
        linear = torch.ops.mkldnn._linear_pointwise
        return (torch.allclose(linear(x, blocked, add[0], "none", [], ""), x @ w.t() + add[0], atol=1e-5)
                and torch.allclose(linear.binary(x, add, blocked, None, "add"), x @ w.t() + add, atol=1e-5))
    except Exception:  # noqa: BLE001  whatever a torch without them raises, the answer is: addmm
        return False


def packed(w: torch.Tensor, batch: int) -> Callable[[torch.Tensor, torch.Tensor | None], torch.Tensor]:
    """mm(x, add) = x @ w.T + add, for x (batch, n) and w (m, n), add (m,) or (batch, m) or None:
    a product taken once per step of a window with the same weights.

    In fp32 where torch has oneDNN (`onednn_products`), w is packed once into oneDNN's blocked
    layout, and each product reads it as is: 1.1 to 1.7x faster than addmm for B = 16 and weights
    of 384 x 384 to 1,536 x 512 (benchmarks/README.md), which re-packs w at every call.
    Elsewhere (fp64, no oneDNN), addmm."""
    if w.dtype == torch.float32 and onednn_products():
        blocked = torch.ops.mkldnn._reorder_linear_weight(w, batch)
        linear = torch.ops.mkldnn._linear_pointwise

        def mm(x: torch.Tensor, add: torch.Tensor | None = None) -> torch.Tensor:
            if add is None or add.dim() == 1:
                return linear(x, blocked, add, "none", [], "")
            return linear.binary(x, add, blocked, None, "add")

        return mm
    wt = w.t()

    def plain(x: torch.Tensor, add: torch.Tensor | None = None) -> torch.Tensor:
        return x @ wt if add is None else torch.addmm(add, x, wt)

    return plain


@dataclass
class Folded:
    """A layer's weights copied and arranged for decoding (`Cell.fold`), in column layout: the
    decoder multiplies each weight by (n, B) blocks from the left."""

    w_ih: torch.Tensor  # (G*H, n_in)
    w_hh: torch.Tensor  # (G*H, H)
    b_in: torch.Tensor  # (G*H, 1): the bias added with the input's part of the gates
    b_hh: torch.Tensor | None = None  # (G*H, 1): a bias kept with the recurrent part (GRU)
    stacked: torch.Tensor | None = None  # (G*H, n_in + H): [W_ih | W_hh], for one product per layer


class Cell:
    """A kind of recurrent cell. Stateless: the weights are the layer module's."""

    name: str = ""
    gates: int = 1  # weight blocks per layer
    state_size: int = 1  # S
    # Whether bf16 autocast trains it faster than fp32 on a CPU that computes bf16 natively, as
    # measured (benchmarks/README.md): `--precision auto` picks bf16 only for such cells.
    bf16_pays: bool = False

    def layer(self, n_in: int, hidden: int) -> nn.Module:
        """A new layer of this cell: a module holding the four weights above, initialised."""
        raise NotImplementedError

    def sequence(self, layer: nn.Module, x: torch.Tensor, state: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """x (B, T, n_in), state (S, B, H) -> outputs (B, T, H), the state after the last step."""
        raise NotImplementedError

    def step(self, x: torch.Tensor, state: torch.Tensor, w: Weights) -> tuple[torch.Tensor, torch.Tensor]:
        """x (B, n_in), state (S, B, H) -> h (B, H), the new state (S, B, H)."""
        raise NotImplementedError

    def fold(self, w: Weights) -> Folded:
        """Copies of the weights for `decode`. By default the two biases are added together and
        [W_ih | W_hh] is stacked, so a layer after the first takes one product."""
        w_ih, w_hh, b_ih, b_hh = (t.detach().clone() for t in w)
        return Folded(w_ih, w_hh, (b_ih + b_hh)[:, None], None, torch.cat([w_ih, w_hh], 1))

    def gates_of(self, f: Folded, h: torch.Tensor, gates_in: torch.Tensor | None, x: torch.Tensor | None) -> torch.Tensor:
        """The summed pre-activations (G*H, B) of `fold`'s default layout: the input's part given
        (gates_in, which this adds to) or computed from x (n_in, B) with the state h (H, B)."""
        if gates_in is None:
            assert f.stacked is not None and x is not None
            return torch.addmm(f.b_in, f.stacked, torch.cat([x, h]))
        return gates_in.addmm_(f.w_hh, h)

    def decode(self, f: Folded, state: torch.Tensor, out: torch.Tensor, gates_in: torch.Tensor | None = None,
               x: torch.Tensor | None = None) -> torch.Tensor:
        """One step in column layout: state (S, H, B) -> h (H, B), the new state written into out
        (S, H, B). The input comes as its part of the gates, gates_in (G*H, B) with b_in in it
        (the first layer's, read from a table of every token), or as x (n_in, B)."""
        raise NotImplementedError


CELLS: dict[str, Cell] = {}  # name -> the cell, filled by @register


def register(cls: type[Cell]) -> type[Cell]:
    CELLS[cls.name] = cls()
    return cls


for _module in pkgutil.iter_modules(__path__):
    importlib.import_module(f"{__name__}.{_module.name}")
