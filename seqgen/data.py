"""Token ids laid out as contiguous streams for truncated backpropagation through time.

The ids are cut into B equal streams laid side by side (word_language_model's `batchify`).
Batch j holds the window [jT, jT + T) of every stream, so row b of batch j + 1 continues row b
of batch j and the recurrent state can be carried from one batch to the next:

    stream 0:  a b c d | e f g h | i j k l ...      x = window, y = window shifted by one
    stream 1:  m n o p | q r s t | u v w x ...
               batch 0   batch 1   batch 2
"""

from __future__ import annotations

import numpy as np
import torch

from .errors import SeqgenError


def as_tensor(ids: np.ndarray) -> torch.Tensor:
    """Compact ids (uint8/uint16) as a CPU tensor without copying; batches widen to int64 lazily."""
    if ids.dtype in (np.uint16, np.uint32):  # torch lacks arithmetic on these; int32 is still compact
        ids = ids.astype(np.int32)
    return torch.from_numpy(np.ascontiguousarray(ids))


VAL_BLOCKS = 20


def split(ids: torch.Tensor, val_fraction: float, blocks: int = VAL_BLOCKS) -> tuple[torch.Tensor, torch.Tensor]:
    """Hold out `val_fraction` of the ids as `blocks` evenly spaced contiguous pieces.

    The validation set samples the whole corpus (not just its last file or chapter), and every
    region of the corpus still contributes training text. Each piece is the tail of one of
    `blocks` equal segments, taken from its start:   [val|train....][val|train....] ...
    """
    n = len(ids)
    n_val = int(n * val_fraction)
    blocks = max(1, min(blocks, n_val // 256))  # pieces of at least 256 tokens
    segment, piece = n // blocks, n_val // blocks
    train, val = [], []
    for b in range(blocks):
        start, end = b * segment, n if b == blocks - 1 else (b + 1) * segment
        val.append(ids[start : start + piece])
        train.append(ids[start + piece : end])
    return torch.cat(train), torch.cat(val)


class Streams:
    def __init__(self, ids: torch.Tensor, batch_size: int, seq_len: int, offset: int = 0):
        # Each stream needs one token beyond its last input, for the last target.
        length = (len(ids) - offset) // batch_size
        self.seq_len = seq_len
        self.data = ids[offset : offset + length * batch_size].view(batch_size, length)  # (B, N)
        self.num_batches = max(0, (length - 1) // seq_len)  # full windows only
        self.num_windows = -(-(length - 1) // seq_len) if length > 1 else 0  # with a final short one

    def __len__(self) -> int:
        return self.num_batches

    def batch(self, j: int) -> tuple[torch.Tensor, torch.Tensor]:
        """x, y of shape (B, T) for window j; the final window may be shorter than T."""
        start = j * self.seq_len
        end = min(start + self.seq_len, self.data.shape[1] - 1)
        window = self.data[:, start : end + 1].long()  # (B, T + 1)
        return window[:, :-1], window[:, 1:]


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


def eval_streams(ids: torch.Tensor, batch_size: int, seq_len: int) -> Streams:
    """Streams for scoring: each at least four windows long so most tokens see a warm state."""
    streams = max(1, min(batch_size, len(ids) // (4 * seq_len)))
    return Streams(ids, streams, seq_len)
