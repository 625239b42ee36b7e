"""Token ids laid out as contiguous streams for truncated backpropagation through time.

The ids are cut into B equal streams laid side by side (word_language_model's `batchify`).
Batch j holds the window [jT, jT + T) of every stream, so row b of batch j + 1 continues row b
of batch j and the recurrent state can be carried from one batch to the next:

    stream 0:  a b c d | e f g h | i j k l ...      x = window, y = window shifted by one
    stream 1:  m n o p | q r s t | u v w x ...
               batch 0   batch 1   batch 2
"""

from __future__ import annotations

import bisect
from typing import Callable

import numpy as np
import torch

from .config import seed_entropy
from .errors import SeqgenError

VAL_BLOCKS = 20
MAX_VAL_TOKENS = 1 << 20  # evaluation scores at most this many: minutes, not hours, on a corpus of gigabytes


class Joined:
    """Several 1-D arrays read as one sequence without joining them: joining would copy a corpus
    that may be a memory map larger than RAM. Slicing copies only the slice."""

    def __init__(self, parts: list[np.ndarray]):
        self.parts = [p for p in parts if len(p)]
        self.starts = np.cumsum([0] + [len(p) for p in self.parts]).tolist()
        self.dtype = parts[0].dtype if parts else np.int64

    def __len__(self) -> int:
        return self.starts[-1]

    def __getitem__(self, index: slice) -> np.ndarray:
        start, stop, step = index.indices(len(self))
        assert step == 1, "contiguous slices only"
        out, i = [], bisect.bisect_right(self.starts, start) - 1
        while start < stop:
            lo = start - self.starts[i]
            piece = self.parts[i][lo : lo + stop - start]
            out.append(piece)
            start, i = start + len(piece), i + 1
        if len(out) == 1:
            return out[0]
        return np.concatenate(out) if out else np.empty(0, self.dtype)


def split(ids: np.ndarray, val_fraction: float, blocks: int = VAL_BLOCKS) -> tuple[Joined, np.ndarray]:
    """Hold out `val_fraction` of the ids (at most MAX_VAL_TOKENS) as `blocks` evenly spaced
    contiguous pieces; returns (the training ids as views, the validation ids in memory).

    The validation set samples the whole corpus (not just its last file or chapter), and every
    region of the corpus still contributes training text. Each piece is the tail of one of
    `blocks` equal segments, taken from its start:   [val|train....][val|train....] ...
    """
    n = len(ids)
    n_val = min(int(n * val_fraction), MAX_VAL_TOKENS)
    blocks = max(1, min(blocks, n_val // 256))  # pieces of at least 256 tokens
    segment, piece = n // blocks, n_val // blocks
    train, val = [], []
    for b in range(blocks):
        start, end = b * segment, n if b == blocks - 1 else (b + 1) * segment
        val.append(ids[start : start + piece])
        train.append(ids[start + piece : end])
    return Joined(train), np.concatenate(val)


class Streams:
    """`batch_size` streams side by side over `ids` (an array, a tensor or a Joined), from
    `offset`; only the streams numbered in `rows` are read (a process' share of the batch).
    `controls`, when the model reads them: (N, C), each id's control values, cut as the ids are."""

    def __init__(self, ids, batch_size: int, seq_len: int, offset: int = 0, rows: range | None = None,
                 controls: np.ndarray | None = None):
        self.ids = ids.numpy() if isinstance(ids, torch.Tensor) else ids
        self.controls = controls
        # Each stream needs one token beyond its last input, for the last target.
        self.length = (len(self.ids) - offset) // batch_size  # tokens per stream
        self.batch_size, self.seq_len, self.offset = batch_size, seq_len, offset
        self.rows = range(batch_size) if rows is None else rows
        self.num_batches = max(0, (self.length - 1) // seq_len)  # full windows only
        self.num_windows = -(-(self.length - 1) // seq_len) if self.length > 1 else 0  # with a final short one

    def __len__(self) -> int:
        return self.num_batches

    def batch(self, j: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
        """x, y of shape (B, T) for window j (B: the streams in `rows`), and x's controls (B, T, C)
        or None; the final window may be shorter than T."""
        start = j * self.seq_len
        end = min(start + self.seq_len, self.length - 1)
        first = [self.offset + b * self.length + start for b in self.rows]
        window = torch.from_numpy(np.stack([self.ids[a : a + end - start + 1] for a in first]).astype(np.int64))  # (B, T + 1)
        controls = None if self.controls is None else torch.from_numpy(
            np.stack([self.controls[a : a + end - start] for a in first]).astype(np.float32))  # (B, T, C)
        return window[:, :-1], window[:, 1:], controls


def check_trainable(n_train: int, batch_size: int, seq_len: int) -> None:
    """A clear error instead of an empty epoch when the corpus cannot fill one batch."""
    if seq_len >= n_train:
        raise SeqgenError(
            f"--seq-len {seq_len} is longer than the training text ({n_train} tokens); lower it"
        )
    # Epochs after the first start up to seq_len - 1 tokens in, and must still fill a batch.
    if n_train < batch_size * (seq_len + 1) + seq_len - 1:
        largest = (n_train - seq_len + 1) // (seq_len + 1)
        raise SeqgenError(
            f"the training text ({n_train} tokens) is smaller than one batch of "
            f"{batch_size} x {seq_len + 1}; use --batch-size {largest} or less, or a smaller --seq-len"
        )


def eval_streams(ids, batch_size: int, seq_len: int, controls: np.ndarray | None = None) -> Streams:
    """Streams for scoring: each at least four windows long so most tokens see a warm state."""
    streams = max(1, min(batch_size, len(ids) // (4 * seq_len)))
    return Streams(ids, streams, seq_len, controls=controls)


class TextData:
    """A corpus that is one long sequence: split once into train and valid (see `split`)."""

    val_controls = None  # text has no control inputs

    def __init__(self, ids: np.ndarray, val_fraction: float, sha256: str):
        self._train, self.val = split(ids, val_fraction)
        self.sha256 = sha256

    def train(self, epoch: int) -> Joined:
        return self._train

    def train_controls(self, epoch: int) -> None:
        return None


class PieceData:
    """A corpus of separate pieces (MIDI files): whole pieces, evenly spaced, are held out for
    validation; each epoch the training pieces are shuffled and encoded again with `encode`,
    which may augment them using the generator it is given (None: no augmentation). Everything
    random derives from (seed, epoch), so a resumed run sees exactly the data it would have."""

    def __init__(self, pieces: list, encode: Callable, val_fraction: float, seed: int, sha256: str,
                 controls: Callable | None = None):
        if len(pieces) < 2:
            raise SeqgenError("a corpus of pieces needs at least two (one is held out for validation)")
        n_val = min(len(pieces) - 1, max(1, round(len(pieces) * val_fraction)))
        held = set(np.linspace(0, len(pieces) - 1, n_val).round().astype(int).tolist())
        self._pieces = [p for i, p in enumerate(pieces) if i not in held]
        self._encode, self._seed, self.sha256, self._controls = encode, seed, sha256, controls
        self.val = np.concatenate([encode(pieces[i], None) for i in sorted(held)])
        self.val_controls = self._control_values(self.val)
        self._epoch: int | None = None
        self._ids = np.empty(0, np.int64)  # the epoch's training ids, made when first asked for
        self._control_ids: np.ndarray | None = None  # and their control values

    def _control_values(self, ids: np.ndarray) -> np.ndarray | None:
        # float16: 40 bytes an event for density and key (20 numbers), half of float32's, and precise enough
        return None if self._controls is None else self._controls(ids).astype(np.float16)

    def train(self, epoch: int) -> np.ndarray:
        if epoch != self._epoch:
            rng = np.random.default_rng([seed_entropy(self._seed), epoch])
            order = rng.permutation(len(self._pieces))
            self._ids = np.concatenate([self._encode(self._pieces[i], rng) for i in order.tolist()])
            self._control_ids = self._control_values(self._ids)
            self._epoch = epoch
        return self._ids

    def train_controls(self, epoch: int) -> np.ndarray | None:
        """(N, C): the control values of `train(epoch)`'s ids (computed after augmentation), or
        None for a model without controls."""
        self.train(epoch)
        return self._control_ids
