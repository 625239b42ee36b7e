"""The continuous cache (seqgen.cache): its read against a position-by-position one, and what
scoring with it does."""

import math

import numpy as np
import pytest
import torch

from seqgen import checkpoint
from seqgen.cache import Cache, History, Recall
from seqgen.train import evaluate

from .conftest import invoke


def naive_logprob(logprobs, h, targets, held, cache):
    """Position by position, stream by stream: logprobs (B, N, V), h (B, N, H), targets (B, N)
    over the whole text, held (B, N) -> the mixed log-probability of each target (B, N)."""
    B, N = targets.shape
    out = torch.empty(B, N, dtype=torch.float64)
    for b in range(B):
        for t in range(N):
            p_model = logprobs[b, t, targets[b, t]].double().exp()
            reach = [j for j in range(max(0, t - cache.size), t) if held[b, j]]
            if not reach:
                out[b, t] = p_model.log()
                continue
            scores = torch.stack([cache.theta * (h[b, t].double() @ h[b, j].double()) for j in reach])
            weights = scores.softmax(0)
            p_cache = sum(float(w) for w, j in zip(weights, reach) if targets[b, j] == targets[b, t])
            out[b, t] = math.log((1 - cache.lam) * float(p_model) + cache.lam * p_cache)
    return out


@pytest.mark.parametrize("size,chunked", [(3, False), (50, False), (50, True)])
def test_the_read_of_each_window_is_the_read_of_each_position(size, chunked, monkeypatch):
    if chunked:  # a window's queries read in chunks of 2 (long windows, many streams, a large cache)
        monkeypatch.setattr("seqgen.cache.READ_ELEMENTS", 2 * 3 * (size + 11))
    torch.manual_seed(0)
    B, N, H, V = 3, 23, 4, 5
    h = torch.randn(B, N, H)
    logprobs = torch.randn(B, N, V).log_softmax(-1)
    targets = torch.randint(V, (B, N))
    held = torch.ones(B, N, dtype=torch.bool)
    held[0, :6] = False  # the first stream read nothing before its first window
    cache = Cache(size, theta=0.7, lam=0.3)
    history = History(cache)
    history.remember(h[:, :6], targets[:, :6], held[:, :6])  # a warm-up, not scored
    got = torch.cat([history.target_logprob(logprobs[:, a:b], h[:, a:b], targets[:, a:b])
                     for a, b in [(6, 11), (11, 12), (12, 23)]], 1)  # windows of 5, 1 and 11
    expected = naive_logprob(logprobs, h, targets, held, cache)[:, 6:]
    torch.testing.assert_close(got.double(), expected, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("bad", [dict(size=0), dict(size=10**6), dict(size=2.5), dict(size=4, theta=0.0),
                                 dict(size=4, theta=float("nan")), dict(size=4, theta=1e4), dict(size=4, lam=1.0),
                                 dict(size=4, lam=-0.1), dict(size=4, lam="0.2"), dict(size=4, theta=True)])
def test_cache_settings_out_of_range_are_refused(bad):
    with pytest.raises(ValueError, match="cache"):
        Cache(**bad)


def test_cache_settings_take_any_number_type_and_keep_plain_ones():
    c = Cache(np.int64(10), theta=np.float32(0.5), lam=-0.0)
    assert (c.size, c.theta, c.lam) == (10, 0.5, 0.0) and type(c.size) is int and str(c.lam) == "0.0"


def test_a_cache_with_no_share_scores_as_the_model_alone(trained_run, corpus_text):
    model, tokenizer, _ = checkpoint.load(trained_run)
    ids = tokenizer.encode(corpus_text)[:3000]
    plain, n = evaluate(model, ids, 4, 32)
    assert evaluate(model, ids, 4, 32, cache=Cache(100, lam=0.0)) == pytest.approx((plain, n), abs=1e-6)
    # A cache longer than the streams' warm-up: fewer, longer streams, warmed longer; the same score.
    loss, count = evaluate(model, ids, 16, 32, cache=Cache(600, lam=0.0))
    assert n - count < 32 and loss == pytest.approx(plain, abs=2e-3)


def test_a_cache_reads_what_the_text_repeats_and_its_score_does_not_depend_on_the_streams(trained_run):
    model, tokenizer, _ = checkpoint.load(trained_run)
    rng = np.random.default_rng(0)
    phrase = rng.integers(tokenizer.vocab_size, size=40)  # gibberish the model cannot have learned
    ids = np.tile(phrase, 30)  # ... said 30 times
    plain, _ = evaluate(model, ids, 1, 32)
    one, n = evaluate(model, ids, 1, 32, cache=Cache(200, theta=2.0))
    assert one < plain - 0.5, (one, plain)
    for streams in (3, 8):
        loss, n_streams = evaluate(model, ids, streams, 32, cache=Cache(200, theta=2.0))
        assert n - n_streams < 2 * streams and abs(loss - one) < 2e-3, (streams, loss, one)


def test_seqgen_eval_with_a_cache_says_so(trained_run, corpus_file):
    plain = invoke("eval", trained_run, corpus_file, "--json")
    cached = invoke("eval", trained_run, corpus_file, "--json", "--cache", "300", "--cache-theta", "1", "--cache-lambda",
                    "0.1")
    assert plain.exit_code == 0 and cached.exit_code == 0, cached.stderr
    import json

    result = json.loads(cached.stdout)
    assert result["cache"] == {"size": 300, "theta": 1.0, "lambda": 0.1}
    assert result["loss"] != json.loads(plain.stdout)["loss"] and "cache" not in json.loads(plain.stdout)
    text = invoke("eval", trained_run, corpus_file, "--cache", "300")
    assert text.stdout.endswith("cache: 300 states, theta 0.5, lambda 0.2\n")
    alone = invoke("eval", trained_run, corpus_file, "--cache-theta", "2")
    assert alone.exit_code == 2 and alone.stderr == "Error: --cache-theta needs --cache N\n"


def test_a_step_of_generation_reads_the_ring_as_a_position_by_position_reading():
    torch.manual_seed(0)
    K, H, V, size = 3, 4, 6, 5
    cache = Cache(size, theta=0.8, lam=0.4)
    history = History(cache)
    keys, values = torch.randn(1, 3, H), torch.randint(V, (1, 3))
    history.remember(keys, values)  # a prime of 3 positions, copied to each of the K samples
    recall = Recall(history, K, H, size)
    past_h, past_v = [keys[0].expand(K, -1, -1)[:, i] for i in range(3)], [values[0, i].expand(K) for i in range(3)]
    for _ in range(6):  # past the ring's size: the oldest positions leave it
        logits, h = torch.randn(K, V), torch.randn(K, H)
        mixed = recall.mix(logits, h)
        keep_h, keep_v = torch.stack(past_h[-size:], 1), torch.stack(past_v[-size:], 1)  # (K, n, H), (K, n)
        weights = (cache.theta * (keep_h @ h[:, :, None])).squeeze(-1).softmax(-1)
        p_cache = torch.stack([torch.bincount(keep_v[k], weights[k], minlength=V) for k in range(K)])
        expected = ((1 - cache.lam) * logits.softmax(-1) + cache.lam * p_cache).log()
        torch.testing.assert_close(mixed, expected, atol=1e-5, rtol=1e-5)
        token = torch.randint(V, (K,))
        recall.add(h, token)
        past_h.append(h)
        past_v.append(token)


def test_generation_draws_from_the_cache_of_the_prime(trained_run):
    from seqgen.sample import generate

    model, tokenizer, _ = checkpoint.load(trained_run)
    prime = tokenizer.encode("It was the best of times, it was the worst of times").tolist()
    with torch.no_grad():  # greedy, nearly all cache: the token the prime's states most like the last one led to
        logits, _ = model(torch.tensor(prime)[None])  # (1, T, V)
        h, _ = model.features(torch.tensor(prime)[None])  # (1, T, H)
        weights = torch.softmax(50.0 * (h[0, :-1] @ h[0, -1]), 0)  # (T - 1,): each earlier position's share
        read = torch.zeros(logits.shape[-1]).index_add_(0, torch.tensor(prime[1:]), weights)  # (V,) by following token
        mixed = 0.001 * torch.softmax(logits[0, -1], 0) + 0.999 * read
    out = generate(model, prime, 1, temperature=0.0, seed=1, cache=Cache(200, theta=50.0, lam=0.999))[0]
    assert out == [int(mixed.argmax())] != [int(logits[0, -1].argmax())]  # the cache's pick, not the model's


def test_a_cache_with_no_share_draws_what_the_model_alone_draws(trained_run):
    from seqgen.sample import generate

    model, tokenizer, _ = checkpoint.load(trained_run)
    prime = tokenizer.encode("It was the best of times").tolist()
    for options in (dict(), dict(top_p=0.9), dict(top_k=5)):
        plain = generate(model, prime, 200, num_samples=3, temperature=0.8, seed=4, **options)
        assert generate(model, prime, 200, num_samples=3, temperature=0.8, seed=4, cache=Cache(50, lam=0.0),
                        **options) == plain


def test_seqgen_sample_with_a_cache_text_and_midi(trained_run, tmp_path):
    import json

    text = invoke("sample", trained_run, "--prime", "It was", "--cache", "100", "-k", "2", "-n", "80", "--seed", "1",
                  "--json")
    assert text.exit_code == 0, text.stderr
    summary = json.loads(text.stdout)
    assert summary["cache"] == {"size": 100, "theta": 0.5, "lambda": 0.2}
    assert [s["tokens"] for s in summary["samples"]] == [80, 80]
    music = invoke("sample", "checkpoints/bach-chorales-lstm", "--cache", "300", "--seconds", "5", "--seed", "1",
                   "--out", tmp_path / "cached.mid")
    assert music.exit_code == 0, music.stderr
    import pretty_midi

    assert pretty_midi.PrettyMIDI(str(tmp_path / "cached.mid")).instruments[0].notes
    too_much = invoke("sample", trained_run, "--cache", "8000", "-k", "10000", "-n", "5000")
    assert too_much.exit_code == 1 and "lower --cache or --num-samples" in too_much.stderr
