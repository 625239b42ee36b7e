"""The plain recurrent cell, h_t = tanh(W_ih x_t + b_ih + W_hh h_{t-1} + b_hh) (Elman 1990).

On a CPU in fp32 or fp64, without autocast, a window runs through `RNNSequence`, a
sequence-level autograd function (see gru.py for why). irnn.py is the same cell with a ReLU, started as the identity.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.autograd.function import once_differentiable

from . import Cell, Weights, packed, register, sequence_kernels, weights


class RNNSequence(torch.autograd.Function):
    """A tanh or ReLU layer over a window: x (B, T, n_in), h0 (B, H), the weights and `relu` ->
    y (B, T, H), h_T (B, H). As GRUSequence: time-major inside, two operations a step each way,
    W_hh packed once per window, and each weight's gradient one product over all steps."""

    @staticmethod
    def forward(ctx, x, h0, w_ih, w_hh, b_ih, b_hh, relu: bool):
        B, T, n_in = x.shape
        H = w_hh.shape[1]
        xs = x.transpose(0, 1).reshape(T * B, n_in)  # (T*B, n_in)
        gi = torch.addmm(b_ih + b_hh, xs, w_ih.t()).view(T, B, H)  # the input's part, both biases
        recurrent = packed(w_hh, B)
        hs = x.new_empty(T + 1, B, H)  # h_0 .. h_T
        hs[0] = h0
        h_, gi_ = hs.unbind(0), gi.unbind(0)  # each step's blocks, as views made once
        for t in range(T):
            pre = recurrent(h_[t], gi_[t])
            torch.clamp_min(pre, 0, out=h_[t + 1]) if relu else torch.tanh(pre, out=h_[t + 1])
        if any(ctx.needs_input_grad):  # not when scoring without gradients
            ctx.save_for_backward(xs, w_ih, w_hh, hs)
        ctx.relu = relu
        return hs[1:].transpose(0, 1), hs[T]  # (B, T, H), (B, H)

    @staticmethod
    @once_differentiable  # no graph of the backward pass: a second derivative is refused
    def backward(ctx, dy, dh_last):
        xs, w_ih, w_hh, hs = ctx.saved_tensors
        T, B, H = hs.shape[0] - 1, hs.shape[1], hs.shape[2]
        y = hs[1:]
        slope = (y > 0).to(y.dtype) if ctx.relu else 1 - y * y  # the nonlinearity's derivative, (T, B, H)
        dy = dy.transpose(0, 1).contiguous()  # (T, B, H): each step reads a contiguous block
        d_pre = hs.new_empty(T, B, H)  # gradient of the pre-activation
        recurrent_t = packed(w_hh.t().contiguous(), B)
        dh = dy[T - 1] if dh_last is None else dy[T - 1] + dh_last  # (B, H)
        dy_, slope_, d_pre_ = dy.unbind(0), slope.unbind(0), d_pre.unbind(0)
        for t in range(T - 1, -1, -1):
            d = torch.mul(dh, slope_[t], out=d_pre_[t])
            dh = recurrent_t(d, dy_[t - 1] if t else None)
        d_pre = d_pre.view(T * B, H)
        dx = (d_pre @ w_ih).view(T, B, -1).transpose(0, 1) if ctx.needs_input_grad[0] else None  # (B, T, n_in)
        db = d_pre.sum(0)
        return dx, dh, d_pre.t() @ xs, d_pre.t() @ hs[:T].reshape(T * B, H), db, db, None


@register
class RNN(Cell):
    """The tanh RNN."""

    name = "rnn"
    relu = False

    def layer(self, n_in: int, hidden: int) -> nn.Module:
        return nn.RNN(n_in, hidden, batch_first=True, nonlinearity="relu" if self.relu else "tanh")

    def sequence(self, layer, x, state):
        if sequence_kernels(x):
            y, h = RNNSequence.apply(x, state[0], *weights(layer), self.relu)
            return y, h[None]
        return layer(x, state.contiguous())

    def step(self, x, state, w: Weights):
        h = (torch.rnn_relu_cell if self.relu else torch.rnn_tanh_cell)(x, state[0], *w)
        return h, h[None]

    def decode(self, f, state, out, gates_in=None, x=None):
        gates = self.gates_of(f, state[0], gates_in, x)  # (H, B)
        return torch.clamp_min(gates, 0, out=out[0]) if self.relu else torch.tanh(gates, out=out[0])
