"""IRNN (Le, Jaitly & Hinton 2015): the plain recurrent cell with a ReLU, its recurrent weights
started as the identity and its biases at zero, so the state is copied forward until learning
changes it; then it trains well where a tanh RNN would not."""

from __future__ import annotations

import torch
from torch import nn

from . import register, weights
from .rnn import RNN


@register
class IRNN(RNN):
    """The identity-initialised ReLU RNN."""

    name = "irnn"
    relu = True

    def layer(self, n_in: int, hidden: int) -> nn.Module:
        layer = super().layer(n_in, hidden)
        _, w_hh, b_ih, b_hh = weights(layer)
        with torch.no_grad():
            nn.init.eye_(w_hh)
            b_hh.zero_()
            b_ih.zero_()
        return layer
