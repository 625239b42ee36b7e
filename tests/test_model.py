import itertools

import pytest
import torch

from seqgen.config import CELLS, ModelConfig
from seqgen.model import RNNLM, layer_table, parameter_shapes

V, B, T = 13, 3, 12


def make(cell, residual=False, layers=3):
    torch.manual_seed(0)
    return RNNLM(ModelConfig(vocab_size=V, cell=cell, layers=layers, hidden=16, embed=8, residual=residual)).eval()


@pytest.mark.parametrize("cell,residual", list(itertools.product(CELLS, [False, True])))
def test_step_over_a_sequence_equals_forward(cell, residual):
    model = make(cell, residual)
    ids = torch.randint(0, V, (B, T))
    logits, state = model(ids)
    s = model.initial_state(B)
    stepped = []
    for t in range(T):
        out, s = model.step(ids[:, t], s)
        stepped.append(out)
    torch.testing.assert_close(torch.stack(stepped, 1), logits, atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(s, state, atol=1e-5, rtol=1e-4)


@pytest.mark.parametrize("cell,layers", list(itertools.product(CELLS, [1, 3])))
def test_the_decoder_steps_like_step(cell, layers):
    model = make(cell, residual=layers > 1, layers=layers)
    decode = model.decoder()
    torch.manual_seed(1)
    ids = torch.randint(0, V, (B, T))
    a = b = torch.randn(layers, model.state_size, B, 16) * 0.5  # a state mid-sequence, not zeros
    for t in range(T):
        (out_a, a), (out_b, b) = model.step(ids[:, t], a), decode(ids[:, t], b)
        torch.testing.assert_close(out_b, out_a, atol=1e-5, rtol=1e-4)
        torch.testing.assert_close(b, a, atol=1e-5, rtol=1e-4)


@pytest.mark.parametrize("cell,residual", list(itertools.product(CELLS, [False, True])))
def test_three_chunks_with_carried_state_equal_one_pass(cell, residual):
    model = make(cell, residual)
    ids = torch.randint(0, V, (B, T))
    whole, final = model(ids)
    state, parts = None, []
    for chunk in ids.split([5, 3, 4], dim=1):
        out, state = model(chunk, state)
        parts.append(out)
    torch.testing.assert_close(torch.cat(parts, 1), whole, atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(state, final, atol=1e-5, rtol=1e-4)


def test_the_state_is_what_the_next_chunk_needs():
    model = make("lstm")
    ids = torch.randint(0, V, (B, T))
    _, state = model(ids[:, :6])
    with_state, _ = model(ids[:, 6:], state)
    without, _ = model(ids[:, 6:])
    assert not torch.allclose(with_state, without)  # the carried state matters


def test_irnn_starts_from_identity_and_zero_bias():
    model = make("irnn")
    for rnn in model.rnns:
        assert torch.equal(rnn.weight_hh_l0, torch.eye(16))
        assert not rnn.bias_hh_l0.any() and not rnn.bias_ih_l0.any()
        assert rnn.nonlinearity == "relu"


@pytest.mark.parametrize("cell", CELLS)
def test_layer_table_counts_what_torch_counts(cell):
    model = make(cell, layers=2)
    rows = layer_table(model)
    assert sum(count for *_, count in rows) == sum(p.numel() for p in model.parameters())
    assert [name for name, *_ in rows] == ["embed", "rnns.0", "rnns.1", "head"]


def test_dropout_only_in_training_mode():
    torch.manual_seed(0)
    model = RNNLM(ModelConfig(vocab_size=V, hidden=16, embed=8, dropout=0.5))
    ids = torch.randint(0, V, (B, T))
    model.train()
    assert not torch.equal(model(ids)[0], model(ids)[0])
    model.eval()
    assert torch.equal(model(ids)[0], model(ids)[0])


@pytest.mark.parametrize("cell", CELLS)
def test_parameter_shapes_match_what_the_model_builds(cell):
    for layers, residual in ((1, False), (3, True)):
        config = ModelConfig(vocab_size=11, cell=cell, layers=layers, hidden=7, embed=5, residual=residual)
        built = {k: tuple(v.shape) for k, v in RNNLM(config).state_dict().items()}
        assert parameter_shapes(config) == built
