"""The cells' own sequence functions (seqgen/cells/gru.py, rnn.py) against torch's modules."""

import pytest
import torch

from seqgen.cells import CELLS, onednn_products, packed, sequence_kernels, weights
from seqgen.cells.gru import GRUSequence
from seqgen.cells.rnn import RNNSequence

FUNCTIONS = ["gru", "rnn", "irnn"]  # the cells whose windows run through a function of ours on a CPU


def torch_and_ours(name, B=4, T=9, n_in=6, H=5, dtype=torch.float32):
    """Outputs and gradients of torch's module and of the cell's sequence, on the same weights,
    input and mid-sequence state, under a loss that reads both the outputs and the last state."""
    torch.manual_seed(0)
    cell = CELLS[name]
    layer = cell.layer(n_in, H).to(dtype)
    if name == "irnn":  # the identity start: perturb it, so that the ReLU's kinks are met
        with torch.no_grad():
            for w in weights(layer):
                w.add_(torch.randn_like(w) * 0.3)
    x = torch.randn(B, T, n_in, dtype=dtype)
    state = torch.randn(1, B, H, dtype=dtype)
    y_weights, h_weights = torch.randn(B, T, H, dtype=dtype), torch.randn(B, H, dtype=dtype)
    results = []
    for run in (lambda x, s: layer(x, s), lambda x, s: cell.sequence(layer, x, s)):
        xi, si = x.clone().requires_grad_(), state.clone().requires_grad_()
        layer.zero_grad()
        y, h = run(xi, si)
        ((y * y_weights).sum() + (h[0] * h_weights).sum()).backward()
        results.append([y, h, xi.grad, si.grad] + [w.grad.clone() for w in weights(layer)])
    return results


@pytest.mark.parametrize("name", FUNCTIONS)
def test_the_sequence_function_agrees_with_torch_in_fp32(name):
    theirs, ours = torch_and_ours(name)
    for what, a, b in zip(["y", "h_T", "dx", "dh_0", "dW_ih", "dW_hh", "db_ih", "db_hh"], theirs, ours):
        torch.testing.assert_close(b, a, atol=1e-5, rtol=1e-5, msg=lambda m, what=what: f"{what}: {m}")


@pytest.mark.parametrize("name", FUNCTIONS)
def test_the_sequence_function_is_used_on_a_cpu(name):
    """The test above compares something: on a CPU in fp32 the window goes through our function."""
    layer, x, state = CELLS[name].layer(3, 4), torch.randn(2, 5, 3, requires_grad=True), torch.zeros(1, 2, 4)
    y, _ = CELLS[name].sequence(layer, x, state)
    assert type(y.grad_fn).__name__ == ("GRUSequence" if name == "gru" else "RNNSequence") + "Backward"


def test_gradcheck_in_float64():
    torch.manual_seed(0)
    B, T, n_in, H = 2, 4, 3, 4
    x, h0 = torch.randn(B, T, n_in, dtype=torch.float64), torch.randn(B, H, dtype=torch.float64)
    for gates, function, extra in ((3, GRUSequence, ()), (1, RNNSequence, (False,)), (1, RNNSequence, (True,))):
        w = [torch.randn(gates * H, n_in), torch.randn(gates * H, H), torch.randn(gates * H), torch.randn(gates * H)]
        inputs = [t.double().mul(0.5).requires_grad_() for t in (x, h0, *w)]
        assert torch.autograd.gradcheck(lambda *a, f=function, e=extra: f.apply(*a, *e), inputs)


def test_under_bf16_autocast_torch_kernels_run():
    """Our functions compute in the dtype they are given; under autocast torch's kernels follow it,
    and bf16 tensors go to torch's kernels too."""
    x = torch.randn(2, 3, 4)
    assert sequence_kernels(x) and sequence_kernels(x.double())
    assert not sequence_kernels(x.bfloat16())
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert not sequence_kernels(x)


@pytest.mark.parametrize("name", FUNCTIONS)
def test_a_second_derivative_is_refused_clearly(name):
    """Their backward passes are not differentiable: torch says there is no graph to differentiate
    (before @once_differentiable it failed inside them, on an in-place change of a view)."""
    layer, x = CELLS[name].layer(3, 4), torch.randn(2, 5, 3, requires_grad=True)
    y, _ = CELLS[name].sequence(layer, x, torch.zeros(1, 2, 4))
    (grad,) = torch.autograd.grad(y.sum(), x, create_graph=True)
    with pytest.raises(RuntimeError, match="does not require grad|once_differentiable"):
        grad.sum().backward()


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_packed_products_equal_addmm(dtype):
    """fp32 reads oneDNN's packed weights where torch has them, fp64 takes addmm: both the same sums."""
    torch.manual_seed(0)
    w, x = torch.randn(12, 7, dtype=dtype), torch.randn(5, 7, dtype=dtype)
    bias, other = torch.randn(12, dtype=dtype), torch.randn(5, 12, dtype=dtype)
    if dtype == torch.float32 and torch.backends.mkldnn.is_available():
        assert onednn_products()  # torch 2.13 has the operations: the packed path is the one tested
    mm = packed(w, 5)
    torch.testing.assert_close(mm(x), x @ w.t())
    torch.testing.assert_close(mm(x, bias), x @ w.t() + bias)
    torch.testing.assert_close(mm(x, other), x @ w.t() + other)
