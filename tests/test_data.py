import numpy as np
import pytest
import torch

from seqgen import data
from seqgen.data import Joined, Streams, check_trainable, eval_streams, split
from seqgen.errors import SeqgenError


def test_streams_are_contiguous_across_batches():
    ids = torch.arange(1000)
    streams = Streams(ids, batch_size=4, seq_len=10)
    x0, y0, _ = streams.batch(0)
    x1, _, _ = streams.batch(1)
    assert x0.shape == (4, 10)
    assert torch.equal(y0[:, :-1], x0[:, 1:])  # targets are the inputs shifted by one
    assert torch.equal(x1[:, 0], x0[:, -1] + 1)  # each row continues where it stopped
    assert torch.equal(x0[:, 0], torch.tensor([0, 250, 500, 750]))
    assert len(streams) == (250 - 1) // 10


def test_every_token_but_the_first_of_a_stream_is_a_target_once():
    ids = torch.arange(103)
    streams = eval_streams(ids, batch_size=2, seq_len=8)
    targets = torch.cat([streams.batch(j)[1].flatten() for j in range(streams.num_windows)])
    width = streams.length
    expected = set(range(103 - 103 % streams.batch_size)) - set(range(0, 103, width))
    assert sorted(targets.tolist()) == sorted(expected)


def test_split_holds_out_evenly_spaced_pieces():
    ids = np.arange(200_000)
    train, val = split(ids, 0.05, blocks=20)
    assert len(val) == 10_000 and len(train) == 190_000
    assert sorted(train[:].tolist() + val.tolist()) == ids.tolist()  # a partition
    pieces = val.reshape(20, 500)
    assert all((np.diff(piece) == 1).all() for piece in pieces)  # each piece is contiguous
    assert pieces[:, 0].tolist() == [10_000 * b for b in range(20)]  # one per segment
    assert all(np.shares_memory(part, ids) for part in train.parts)  # views of the corpus, not a copy
    small_train, small_val = split(np.arange(1000), 0.1)  # too short for 20 pieces: one
    assert small_val.tolist() == list(range(100)) and small_train[:].tolist() == list(range(100, 1000))


def test_validation_is_capped_on_huge_corpora(monkeypatch):
    monkeypatch.setattr(data, "MAX_VAL_TOKENS", 2560)
    train, val = split(np.arange(1_000_000), 0.02)
    assert len(val) == 2560 and len(train) == 1_000_000 - 2560


@pytest.mark.parametrize("start,stop", [(0, 10), (5, 7), (8, 25), (9, 31), (0, 31), (30, 31), (12, 12)])
def test_joined_slices_read_across_parts(start, stop):
    parts = [np.arange(0, 10), np.arange(10, 12), np.arange(12, 12), np.arange(12, 31)]
    assert Joined(parts)[start:stop].tolist() == list(range(start, stop))


def test_streams_read_only_their_rows_of_a_joined_corpus():
    ids = Joined([np.arange(0, 333), np.arange(333, 1000)])
    everything = Streams(ids, batch_size=4, seq_len=10, offset=3)
    share = Streams(ids, batch_size=4, seq_len=10, offset=3, rows=range(2, 4))
    for j in (0, 5, len(everything) - 1):
        assert torch.equal(share.batch(j)[0], everything.batch(j)[0][2:])
        assert torch.equal(share.batch(j)[1], everything.batch(j)[1][2:])
    assert everything.batch(0)[0][:, 0].tolist() == [3, 252, 501, 750]


def test_too_small_corpora_are_refused_with_advice():
    with pytest.raises(SeqgenError, match="longer than the training text"):
        check_trainable(100, 1, 100)
    with pytest.raises(SeqgenError, match="--batch-size 2 or less"):
        check_trainable(100, 64, 32)
    check_trainable(100, 2, 32)


@pytest.mark.parametrize("n", range(20, 90))
def test_every_epoch_offset_fills_a_batch_when_the_corpus_is_accepted(n):
    batch_size, seq_len = 3, 7
    fills = [len(Streams(torch.arange(n), batch_size, seq_len, offset)) >= 1 for offset in range(seq_len)]
    try:
        check_trainable(n, batch_size, seq_len)
    except SeqgenError:
        assert not all(fills)  # refused only when some epoch's offset would leave it without a batch
        return
    assert all(fills)
