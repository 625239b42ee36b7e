"""Token ids laid out as contiguous streams for truncated backpropagation through time.

The ids are cut into B equal streams laid side by side (word_language_model's `batchify`).
Batch j holds the window [jT, jT + T) of every stream, so row b of batch j + 1 continues row b
of batch j and the recurrent state can be carried from one batch to the next:

    stream 0:  a b c d | e f g h | i j k l ...      x = window, y = window shifted by one
    stream 1:  m n o p | q r s t | u v w x ...
               batch 0   batch 1   batch 2
"""

from __future__ import annotations

import hashlib
from typing import Callable

import numpy as np
import torch

from .corpora import midi_pieces
from .errors import SeqgenError
from .tokenizers import ENCODE_CHUNK, CharTokenizer


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


class TextData:
    """A corpus that is one long sequence: split once into train and valid (see `split`)."""

    def __init__(self, ids: torch.Tensor, val_fraction: float, sha256: str):
        self._train, self.val = split(ids, val_fraction)
        self.sha256 = sha256

    def train(self, epoch: int) -> torch.Tensor:
        return self._train


class PieceData:
    """A corpus of separate pieces (MIDI files): whole pieces, evenly spaced, are held out for
    validation; each epoch the training pieces are shuffled and encoded again with `encode`,
    which may augment them using the generator it is given (None: no augmentation). Everything
    random derives from (seed, epoch), so a resumed run sees exactly the data it would have."""

    def __init__(self, pieces: list, encode: Callable, val_fraction: float, seed: int, sha256: str):
        if len(pieces) < 2:
            raise SeqgenError("a corpus of pieces needs at least two (one is held out for validation)")
        n_val = min(len(pieces) - 1, max(1, round(len(pieces) * val_fraction)))
        held = set(np.linspace(0, len(pieces) - 1, n_val).round().astype(int).tolist())
        self._pieces = [p for i, p in enumerate(pieces) if i not in held]
        self._encode, self._seed, self.sha256 = encode, seed, sha256
        self.val = as_tensor(np.concatenate([encode(pieces[i], None) for i in sorted(held)]))
        self._epoch, self._ids = None, None

    def train(self, epoch: int) -> torch.Tensor:
        if epoch != self._epoch:
            rng = np.random.default_rng([self._seed, epoch])
            order = rng.permutation(len(self._pieces))
            self._ids = as_tensor(np.concatenate([self._encode(self._pieces[i], rng) for i in order.tolist()]))
            self._epoch = epoch
        return self._ids


def new_tokenizer(corpus, midi_config=None):
    """The tokenizer for a new run: a character vocabulary fitted to a text corpus, or the MIDI
    event vocabulary with the given settings."""
    if corpus.kind == "midi":
        from .midi import MidiTokenizer

        return MidiTokenizer(midi_config)
    return CharTokenizer.fit(corpus.text)


def dataset(corpus, tokenizer, cfg, *, strict: bool = False, log=None) -> TextData | PieceData:
    """The training data of a corpus as the tokenizer encodes it."""
    if corpus.kind == "midi":
        pieces, sha256 = midi_pieces(corpus, tokenizer, strict=strict, log=log)

        def encode(notes, rng):
            if rng is None:
                return tokenizer.encode(notes)
            return tokenizer.augmented(notes, rng, cfg.transpose, cfg.stretch)

        return PieceData(pieces, encode, cfg.val_fraction, cfg.seed, sha256)
    ids = as_tensor(tokenizer.encode(corpus.text))
    digest = hashlib.sha256()
    for start in range(0, len(corpus.text), ENCODE_CHUNK):  # in pieces: no second copy of a large corpus
        digest.update(corpus.text[start : start + ENCODE_CHUNK].encode("utf-8"))
    return TextData(ids, cfg.val_fraction, digest.hexdigest())


def all_ids(corpus, tokenizer, *, log=None) -> torch.Tensor:
    """Every token of a corpus, unaugmented, in order: what `seqgen eval` scores."""
    if corpus.kind == "midi":
        pieces, _ = midi_pieces(corpus, tokenizer, log=log)
        return as_tensor(np.concatenate([tokenizer.encode(p) for p in pieces]))
    return as_tensor(tokenizer.encode(corpus.text))
