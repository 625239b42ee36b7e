import pytest
import torch

import seqgen.sample
from seqgen.config import ModelConfig
from seqgen.model import RNNLM
from seqgen.sample import filter_logits, generate

V = 20


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(3)
    return RNNLM(ModelConfig(vocab_size=V, layers=2, hidden=24, embed=8)).eval()


def test_same_seed_same_samples_other_seed_other_samples(model):
    a = generate(model, [1, 2, 3], 40, num_samples=4, seed=7)
    b = generate(model, [1, 2, 3], 40, num_samples=4, seed=7)
    c = generate(model, [1, 2, 3], 40, num_samples=4, seed=8)
    assert a == b
    assert a != c
    assert len(set(map(tuple, a))) > 1  # samples in one batch differ from each other
    assert all(len(row) == 40 for row in a)


def test_greedy_is_the_argmax_path_and_ignores_the_seed(model):
    prime = [4, 5]
    out = generate(model, prime, 15, temperature=0, seed=1)[0]
    assert out == generate(model, prime, 15, temperature=0, seed=99)[0]
    ids = torch.tensor([prime])
    expected = []
    for _ in range(15):  # the slow way: rerun forward over the whole sequence each time
        nxt = int(model(ids)[0][0, -1].argmax())
        expected.append(nxt)
        ids = torch.cat([ids, torch.tensor([[nxt]])], 1)
    assert out == expected


def test_a_long_prime_is_read_in_pieces_with_the_same_result(model, monkeypatch):
    prime = [i % V for i in range(50)]
    whole = generate(model, prime, 20, temperature=0)
    monkeypatch.setattr(seqgen.sample, "PRIME_CHUNK", 7)
    assert generate(model, prime, 20, temperature=0) == whole
    assert generate(model, prime, 20, seed=3) == generate(model, prime, 20, seed=3)


def test_a_longer_sample_starts_with_the_shorter_one(model):
    short = generate(model, [1, 2], 30, num_samples=3, seed=5)
    long = generate(model, [1, 2], 200, num_samples=3, seed=5)
    assert [row[:30] for row in long] == short


def test_top_k_one_and_tiny_top_p_are_greedy(model):
    greedy = generate(model, [1], 20, temperature=0)
    assert generate(model, [1], 20, temperature=1.5, top_k=1, seed=3) == greedy
    assert generate(model, [1], 20, temperature=1.5, top_p=1e-6, seed=3) == greedy


def test_filter_logits():
    logits = torch.log(torch.tensor([[0.5, 0.3, 0.15, 0.05]]))
    kept = lambda out: torch.isfinite(out)[0].tolist()  # noqa: E731
    assert kept(filter_logits(logits, 2, None)) == [True, True, False, False]
    assert kept(filter_logits(logits, None, 0.8)) == [True, True, False, False]
    assert kept(filter_logits(logits, None, 0.81)) == [True, True, True, False]
    assert kept(filter_logits(logits, None, 0.5)) == [True, False, False, False]
    assert kept(filter_logits(logits, 3, 0.9)) == [True, True, True, False]


def test_low_temperature_follows_the_model_more_closely(model):
    def agreement_with_greedy(temperature):
        # Fraction of steps at which the sampled token is the model's most likely one.
        rows = generate(model, [1], 200, num_samples=8, temperature=temperature, seed=0)
        hits = 0
        for row in rows:
            logits, _ = model(torch.tensor([[1] + row]))  # (1, T + 1, V)
            hits += (logits[0, :-1].argmax(-1) == torch.tensor(row)).sum().item()
        return hits / (8 * 200)

    cold, warm, hot = agreement_with_greedy(0.1), agreement_with_greedy(1.0), agreement_with_greedy(3.0)
    assert cold > warm > hot


def test_stop_sequence_ends_each_sample(model):
    full = generate(model, [1], 200, num_samples=6, seed=5)
    stop = full[0][10:12]
    out = generate(model, [1], 200, num_samples=6, seed=5, stop=stop)
    for row, whole in zip(out, full):
        assert whole[: len(row)] == row  # stopping does not change what came before
        ends = [i + 2 for i in range(len(whole) - 1) if whole[i : i + 2] == stop]
        assert len(row) == (ends[0] if ends else 200)
    assert len(out[0]) == 12


def test_single_token_prime_and_streaming(model):
    seen = []
    out = generate(model, [0], 10, num_samples=3, seed=1, on_step=lambda tok: seen.append(tok.tolist()))
    assert [list(col) for col in zip(*seen)] == out


def test_a_stop_sequence_may_begin_in_the_prime(model):
    first = generate(model, [1, 2], 1, seed=5)[0][0]
    out = generate(model, [1, 2], 50, seed=5, stop=[2, first])
    assert out == [[first]]  # prime ends with 2, the first generated id completes the stop


def test_tiny_temperatures_are_greedy_not_nan(model):
    assert generate(model, [1], 20, temperature=1e-30, seed=1) == generate(model, [1], 20, temperature=0)


class NoRepeats:
    """Rules for the test: ids in `banned` never, and never the id just drawn (prime included)."""

    def __init__(self, banned):
        self.banned = banned

    def start(self, prime, num_samples, device):
        self.last = torch.full((num_samples,), int(prime[-1]))

    def restrict(self, logits, temperature):
        mask = torch.ones(len(self.last), V, dtype=torch.bool)
        mask[:, list(self.banned)] = False
        mask[torch.arange(len(self.last)), self.last] = False
        return logits.masked_fill(~mask, float("-inf"))

    def advance(self, token):
        self.last = token.clone()


def test_rules_mask_what_may_come_next(model):
    rows = generate(model, [1], 200, num_samples=8, temperature=2.0, seed=4, rules=NoRepeats({0, 5, 7}))
    assert not {t for row in rows for t in row} & {0, 5, 7}
    assert all(row[0] != 1 and all(a != b for a, b in zip(row, row[1:])) for row in rows)
    greedy = generate(model, [1], 30, temperature=0, seed=0)[0]
    assert any(a == b for a, b in zip([1] + greedy, greedy))  # unruled greedy decoding repeats itself...
    ruled = generate(model, [1], 30, temperature=0, seed=0, rules=NoRepeats(set()))[0]
    assert all(a != b for a, b in zip([1] + ruled, ruled))  # ...and the rules stop it


def test_samples_end_once_their_token_times_reach_max_time(model):
    token_time = [0.0] * V
    token_time[3], token_time[4] = 0.5, 1.0  # like TIME_SHIFT events of half a second and one second
    rows = generate(model, [1], 500, num_samples=6, temperature=1.5, seed=2, token_time=token_time, max_time=4.0)
    for row in rows:
        clock = [sum(token_time[t] for t in row[: i + 1]) for i in range(len(row))]
        assert clock[-1] >= 4.0 and (len(row) == 1 or clock[-2] < 4.0)  # ends on the token that gets there
    assert len({len(r) for r in rows}) > 1


class FixedLogits(torch.nn.Module):
    """A 'model' whose next-token logits are always the same: for checking the sampler alone."""

    def __init__(self, logits):
        super().__init__()
        self.head = torch.nn.Linear(1, len(logits))
        self.logits = torch.as_tensor(logits, dtype=torch.float32)

    def initial_state(self, batch_size):
        return torch.zeros(1, 1, batch_size, 1)

    def step(self, ids, state):
        return self.logits.expand(len(ids), -1), state

    def decoder(self, controls=None):
        return self.step


@pytest.mark.parametrize("temperature", [1.0, 0.5, 2.0])
def test_draws_follow_the_tempered_softmax(temperature):
    logits = [2.0, 1.0, 0.0, -1.0, -3.0]
    rows = generate(FixedLogits(logits), [0], 1, num_samples=40_000, temperature=temperature, seed=3)
    counts = torch.bincount(torch.tensor([r[0] for r in rows]), minlength=5).double() / len(rows)
    expected = (torch.tensor(logits, dtype=torch.float64) / temperature).softmax(-1)
    assert torch.allclose(counts, expected, atol=0.01), (counts, expected)
    top = generate(FixedLogits(logits), [0], 1, num_samples=20_000, temperature=temperature, seed=3, top_k=2)
    counts = torch.bincount(torch.tensor([r[0] for r in top]), minlength=5).double() / len(top)
    assert torch.allclose(counts, torch.cat([expected[:2] / expected[:2].sum(), torch.zeros(3)]), atol=0.015)
