"""GRU (Cho et al. 2014), as torch defines it: the reset gate multiplies the recurrent part of the
candidate after its bias, n = tanh(W_in x + b_in + r * (W_hn h + b_hn)). Gate order r, z, n.

On a CPU in fp32 or fp64, without autocast, a window runs through `GRUSequence`, a
sequence-level autograd function: torch sends only the LSTM to oneDNN's fused sequence kernel,
and its GRU records every step's operations for autograd and forms the weight gradient one step
at a time.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.autograd.function import once_differentiable

from . import Cell, Folded, Weights, packed, register, sequence_kernels, weights


class GRUSequence(torch.autograd.Function):
    """A GRU layer over a window: x (B, T, n_in), h0 (B, H) and the weights -> y (B, T, H), h_T (B, H).

    Torch's GRU on a CPU records each step's operations for autograd and forms the weight
    gradient one step at a time. Here the input's part of the gates is one product over the whole
    window, and so is each weight's gradient, (3H, T*B) x (T*B, n), instead of T small ones; each
    step's product with W_hh reads weights packed once per window (`packed`) and adds the input's
    part of r and z as it writes. What the backward pass can know before its loop is computed for
    all steps at once, which leaves a product and four element-wise operations a step forward,
    three backward. Inside, tensors are time-major, (T, B, F). Its outputs are views of one
    buffer, not to be changed in place (autograd refuses it).
    """

    @staticmethod
    def forward(ctx, x, h0, w_ih, w_hh, b_ih, b_hh):
        B, T, n_in = x.shape
        H = w_hh.shape[1]
        xs = x.transpose(0, 1).reshape(T * B, n_in)  # (T*B, n_in)
        gi = torch.addmm(b_ih, xs, w_ih.t()).view(T, B, 3 * H)  # the input's part of the gates
        gi_n = gi[..., 2 * H :].clone()  # (T, B, H)
        # What each step adds to W_hh h: [gi_r + b_hr, gi_z + b_hz, b_hn] (r multiplies all of W_hn h + b_hn).
        gi[..., : 2 * H] += b_hh[: 2 * H]
        gi[..., 2 * H :] = b_hh[2 * H :]
        recurrent = packed(w_hh, B)
        hs = x.new_empty(T + 1, B, H)  # h_0 .. h_T
        hs[0] = h0
        n = x.new_empty(T, B, H)  # candidate
        gates = []  # per step (B, 3H): r, z and W_hn h + b_hn
        # Each step's blocks as views made once (indexing in the loop costs a call each).
        h_, gi_, gi_n_, n_ = hs.unbind(0), gi.unbind(0), gi_n.unbind(0), n.unbind(0)
        for t in range(T):
            h = h_[t]  # (B, H)
            g = recurrent(h, gi_[t])  # (B, 3H)
            rz, gh_n = g.split((2 * H, H), 1)
            r, z = rz.sigmoid_().chunk(2, 1)
            candidate = torch.addcmul(gi_n_[t], r, gh_n, out=n_[t]).tanh_()
            torch.lerp(candidate, h, z, out=h_[t + 1])  # n + z (h - n)
            gates.append(g)
        if any(ctx.needs_input_grad):  # not when scoring without gradients
            ctx.save_for_backward(xs, w_ih, w_hh, hs, n, torch.stack(gates))
        return hs[1:].transpose(0, 1), hs[T]  # (B, T, H) and (B, H), views of hs

    @staticmethod
    @once_differentiable  # no graph of the backward pass: a second derivative is refused
    def backward(ctx, dy, dh_last):
        xs, w_ih, w_hh, hs, n, gates = ctx.saved_tensors
        T, B, H = n.shape
        r, z, gh_n = gates[..., :H], gates[..., H : 2 * H], gates[..., 2 * H :]
        # With dh the gradient reaching h_t, the gradients of the recurrent part of the gates are
        # dh * [r (1 - r) (W_hn h + b_hn) a, (h_prev - n) z (1 - z), r a], (B, 3H), and of the candidate's
        # input part dh * a, where a = (1 - n^2)(1 - z). All but dh known now: (T, B, H) each.
        one_minus_z = 1 - z
        a = torch.addcmul(n.new_ones(()), n, n, value=-1).mul_(one_minus_z)
        coefficients = n.new_empty(T, B, 3, H)
        torch.addcmul(r, r, r, value=-1, out=coefficients[:, :, 0]).mul_(gh_n).mul_(a)
        torch.sub(hs[:T], n, out=coefficients[:, :, 1]).mul_(z).mul_(one_minus_z)
        torch.mul(a, r, out=coefficients[:, :, 2])
        dy = dy.transpose(0, 1).contiguous()  # (T, B, H): each step reads a contiguous block
        d_gh = hs.new_empty(T, B, 3 * H)  # gradient of the recurrent part of the gates
        dhs = hs.new_empty(T, B, H)  # the gradient reaching each h_t
        recurrent_t = packed(w_hh.t().contiguous(), B)  # (B, 3H) -> (B, H)
        dh = dy[T - 1] if dh_last is None else dy[T - 1] + dh_last  # (B, H)
        dy_, z_, dhs_, coefficients_ = dy.unbind(0), z.unbind(0), dhs.unbind(0), coefficients.unbind(0)
        d_gh_, d_gh3_ = d_gh.unbind(0), d_gh.view(T, B, 3, H).unbind(0)
        for t in range(T - 1, -1, -1):
            dhs_[t].copy_(dh)
            torch.mul(dh.unsqueeze(1), coefficients_[t], out=d_gh3_[t])
            carried = torch.addcmul(dy_[t - 1], dh, z_[t]) if t else dh * z_[t]
            dh = recurrent_t(d_gh_[t], carried)
        d_gh = d_gh.view(T * B, 3 * H)
        d_rz, d_n = d_gh[:, : 2 * H], dhs.mul_(a).view(T * B, H)  # the input's part: r's and z's are the same
        d_w_ih = torch.cat([d_rz.t() @ xs, d_n.t() @ xs])
        dx = None
        if ctx.needs_input_grad[0]:
            dx = torch.addmm(d_n @ w_ih[2 * H :], d_rz, w_ih[: 2 * H]).view(T, B, -1).transpose(0, 1)  # (B, T, n_in)
        d_w_hh = d_gh.t() @ hs[:T].reshape(T * B, H)
        return dx, dh, d_w_ih, d_w_hh, torch.cat([d_rz.sum(0), d_n.sum(0)]), d_gh.sum(0)


@register
class GRU(Cell):
    """Gated recurrent unit."""

    name = "gru"
    gates = 3

    def layer(self, n_in: int, hidden: int) -> nn.Module:
        return nn.GRU(n_in, hidden, batch_first=True)

    def sequence(self, layer, x, state):
        if sequence_kernels(x):
            y, h = GRUSequence.apply(x, state[0], *weights(layer))
            return y, h[None]
        return layer(x, state.contiguous())

    def step(self, x, state, w: Weights):
        h = torch.gru_cell(x, state[0], *w)
        return h, h[None]

    def fold(self, w: Weights) -> Folded:
        # b_hh stays apart: the reset gate multiplies the recurrent part with its bias.
        w_ih, w_hh, b_ih, b_hh = (t.detach().clone() for t in w)
        return Folded(w_ih, w_hh, b_ih[:, None], b_hh[:, None])

    def decode(self, f, state, out, gates_in=None, x=None):
        H, h = f.w_hh.shape[1], state[0]
        gates = torch.addmm(f.b_in, f.w_ih, x) if gates_in is None else gates_in  # (3H, B)
        h_hh = torch.addmm(f.b_hh, f.w_hh, h)
        rz = gates[: 2 * H].add_(h_hh[: 2 * H]).sigmoid_()
        n = torch.addcmul(gates[2 * H :], rz[:H], h_hh[2 * H :]).tanh_()
        return torch.lerp(n, h, rz[H:], out=out[0])  # n + z (h - n)
