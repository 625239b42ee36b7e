"""The training loop.

Truncated BPTT over contiguous streams with the state carried between batches, AdamW, linear
warmup then cosine decay, global gradient-norm clipping. Every `eval_every` steps (and at the end)
it scores the held-out tail of the corpus, appends a row to metrics.csv, writes `last` (resumable:
optimizer, RNG and carried state included) and, when validation improved, `best` (weights only),
then draws curves.png anew (with matplotlib; less often where evaluations come every second or so)
and, with `tensorboard`, logs TensorBoard's scalars.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import math
import shlex
import signal
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from . import checkpoint
from .cache import Cache, History
from .config import (
    EVAL_EVERY,
    MIN_EVAL_EVERY,
    WARMUP_BATCHES,
    ModelConfig,
    Progress,
    TrainConfig,
    from_dict,
    seed_entropy,
    to_dict,
    torch_seed,
)
from .corpora import Corpus
from .curves import CURVES, TensorBoard, draw_run_curves
from .data import Streams, check_trainable, eval_streams
from .distributed import World
from .errors import SeqgenError
from .hardware import check_fits, native_bf16_cpu, pick_device, pick_precision
from .model import BATCH_DIM, RNNLM, parameter_shapes, sequence_loss
from .progress import Reporter, duration
from .rundir import RunDir
from .threads import Threads
from .tokenizers import Tokenizer

EXIT_CODES = {signal.SIGINT: 130, signal.SIGTERM: 143}
EVAL_WARMUP = 256  # tokens of context each evaluation stream reads before it is scored
# Drawing curves.png may take at most this share of a run's time: evaluations that come faster
# (a tiny model evaluated every few steps) are drawn less often, and the last always. At 5%, a
# 600 s run on the Bach chorales made 5% fewer steps (benchmarks/RESULTS.md).
CURVES_SHARE = 0.01


def _mean(total: torch.Tensor, count: int) -> float:
    return (total / count).item()


def on(device: torch.device, x: torch.Tensor, y: torch.Tensor,
       controls: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
    """A batch (Streams.batch) on `device`."""
    return (x.to(device, non_blocking=True), y.to(device, non_blocking=True),
            None if controls is None else controls.to(device, non_blocking=True))


def learning_rate(cfg: TrainConfig, step: int, done: float) -> float:
    """Linear warmup over `warmup_steps`, then cosine decay to `min_lr_ratio * lr` as `done` -> 1.

    `done` is the fraction of the run completed by whichever limit binds first (steps, epochs or
    the time budget), so a time-budgeted run reaches the low learning rate just as time runs out.
    A config whose `warmup_steps` is None (the default, which Trainer resolves) warms up for
    WARMUP_BATCHES steps (for callers with whole-window steps: benchmarks/attention_probe.py).
    """
    warmup = WARMUP_BATCHES if cfg.warmup_steps is None else cfg.warmup_steps
    if step < warmup:
        return cfg.lr * (step + 1) / warmup
    floor = cfg.lr * cfg.min_lr_ratio
    return floor + (cfg.lr - floor) * 0.5 * (1 + math.cos(math.pi * min(1.0, done)))


@torch.no_grad()
def evaluate(model: RNNLM, ids, batch_size: int, seq_len: int, world: World = World(),
             controls: np.ndarray | None = None, cache: Cache | None = None) -> tuple[float, int]:
    """(mean loss in nats per token, tokens scored) over `ids` (an array or a tensor), state
    carried across windows; `controls` (N, C): their control values, for a model that reads them;
    `cache`: mix in a continuous cache of the model's recent states (seqgen.cache).

    The text is scored as B parallel streams. Every stream but the first starts from the state
    after reading the EVAL_WARMUP tokens before it (scored by the stream before), and with a
    cache, with the cache's size of them in its history (B is lowered until each stream is that
    long), as one reader going through the whole text would: the loss does not depend on B.
    Under several processes each scores its share of the streams and the sums are added up, so
    every rank gets the result one process would.
    """
    was_training = model.training
    model.eval()
    device = model.head.weight.device
    if cache is not None:  # streams at least the cache's size long, and their keys in bounded memory
        batch_size = max(1, min(batch_size, len(ids) // cache.size, cache.streams_within(model.config.hidden, copies=3)))
    streams = eval_streams(ids, batch_size, seq_len, controls)
    ids, n, rows = streams.ids, streams.length, world.share(streams.batch_size)  # ids as NumPy
    streams.rows = rows
    state = model.initial_state(len(rows))
    history = None if cache is None else History(cache)
    warmup = min(max(EVAL_WARMUP, cache.size if cache else 0), n)
    later = [i for i in rows if i > 0]  # streams that start after the text's first token
    if later:
        context = torch.from_numpy(np.stack([ids[i * n - warmup : i * n + 1] for i in later]).astype(np.int64))  # (B', W + 1)
        steer = None if controls is None else torch.from_numpy(
            np.stack([controls[i * n - warmup : i * n] for i in later]).astype(np.float32)).to(device)  # (B', W, C)
        context = context.to(device)
        read = model if history is None else model.features  # the cache needs what the head reads, (B', W, H)
        h, warmed = read(context[:, :-1], model.initial_state(len(later)), steer)
        state = torch.cat([state[:, :, : len(rows) - len(later)], warmed], dim=BATCH_DIM)
        if history is not None:  # the first stream has nothing before it: its rows hold no position
            first = len(rows) - len(later)
            pad = h.new_zeros(first, warmup, h.shape[2]), context.new_zeros(first, warmup)
            held = torch.arange(len(rows), device=device)[:, None].ge(first).expand(-1, warmup)
            history.remember(torch.cat([pad[0], h]), torch.cat([pad[1], context[:, 1:]]), held)
    total, count = 0.0, 0
    for j in range(streams.num_windows if rows else 0):
        x, y, steer = on(device, *streams.batch(j))
        if history is None:
            logits, state = model(x, state, steer)  # (B, T, V)
            total += F.cross_entropy(logits.flatten(0, 1), y.flatten(), reduction="sum").item()
        else:
            h, state = model.features(x, state, steer)  # (B, T, H)
            logprobs = F.log_softmax(model.head(h).float(), -1)  # (B, T, V)
            total -= history.target_logprob(logprobs, h, y).sum().item()
        count += y.numel()
    model.train(was_training)
    total, summed = world.sum(total, count)
    count = int(summed)
    if count == 0:
        raise SeqgenError("nothing to evaluate: the text is shorter than two tokens")
    return total / count, count


class _StopOnSignal:
    """SIGINT/SIGTERM ask the loop to stop after the current step; a second SIGINT aborts at once."""

    def __init__(self):
        self.signum = None
        self._previous = {}

    def __enter__(self):
        for signum in EXIT_CODES:
            try:
                self._previous[signum] = signal.signal(signum, self._handle)
            except ValueError:  # not the main thread: leave signals alone
                pass
        return self

    def _handle(self, signum, frame):
        if self.signum == signal.SIGINT and signum == signal.SIGINT:
            raise KeyboardInterrupt
        self.signum = signum

    def __exit__(self, *exc):
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)


def make_optimizer(model: RNNLM, cfg: TrainConfig) -> torch.optim.AdamW:
    """AdamW, with weight decay on matrices only (not biases).

    Fused (one kernel over all parameters) where torch has it for the parameters' device: torch's
    default on a CPU loops over the parameters in Python, tensor by tensor (the default model's
    training step: 28.0 ms with it, 27.3 ms fused). Elsewhere (older torch) that loop, which
    computes the same update."""
    decay = [p for p in model.parameters() if p.dim() >= 2]
    no_decay = [p for p in model.parameters() if p.dim() < 2]
    groups = [{"params": decay, "weight_decay": cfg.weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    betas = (0.9, 0.99)  # a shorter second-moment memory suits the short, high-lr runs we default to
    try:
        return torch.optim.AdamW(groups, lr=cfg.lr, betas=betas, fused=True)
    except (RuntimeError, TypeError, ValueError):  # no fused kernel for this device or torch
        return torch.optim.AdamW(groups, lr=cfg.lr, betas=betas)


def train_step(model: RNNLM, optimizer: torch.optim.Optimizer, x: torch.Tensor, y: torch.Tensor,
               carry: torch.Tensor, clip: float | None, autocast: torch.dtype | None = None,
               controls: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """One step of truncated BPTT: ids x, targets y (B, T), the state carried in from the previous
    batch (L, S, B, H) -> (loss, the state to carry on), both detached from the graph and fp32.
    `autocast`: the dtype the forward pass computes in (None: fp32); `controls` (B, T, C): x's
    control values, for a model that reads them."""
    # No autocast context at all in fp32: older torch refuses one for some devices (mps) even when disabled.
    with torch.autocast(x.device.type, dtype=autocast) if autocast else contextlib.nullcontext():
        logits, state = model(x, carry.detach(), controls)  # (B, T, V)
    loss = sequence_loss(logits.float(), y)  # the softmax in fp32
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    if clip:
        torch.nn.utils.clip_grad_norm_(model.parameters(), clip)
    optimizer.step()
    return loss.detach(), state.detach().float()


class Trainer:
    """One training run: builds the data, model and optimizer from a corpus and configs (or
    restores them from a resumable checkpoint), then `run()` trains to the first limit, writing
    checkpoints and metrics.csv through `RunDir` (rank 0 only, under several processes).

    `world` and `device` are those of the processes torchrun started, once they have joined
    (`distributed.join`); by default one process on `config.device`. `tensorboard`: also log
    each evaluation's scalars for TensorBoard (see curves.TensorBoard)."""

    def __init__(
        self,
        corpus: Corpus,
        model_config: ModelConfig,
        config: TrainConfig,
        run_dir: Path,
        *,
        tokenizer: Tokenizer | None = None,
        resume_from: checkpoint.Checkpoint | None = None,
        init_from: Any = None,
        reporter: Reporter | None = None,
        strict: bool = False,
        world: World | None = None,
        device: torch.device | None = None,
        tensorboard: bool = False,
    ):
        self.corpus, self.cfg, self.run_dir = corpus, config, Path(run_dir)
        self.out = RunDir(self.run_dir, config.keep)
        self.tensorboard = tensorboard
        self.board: TensorBoard | None = None  # its writer, while run() runs (rank 0)
        self.drawing = True  # curves.png: until matplotlib is found missing or a drawing fails
        # The last drawing of curves.png: when, how long it took (a guess before the first), and
        # whether an evaluation has come since.
        self.drawn_at, self.draw_s, self.undrawn = 0.0, 0.1, False
        self.reporter = reporter or Reporter(quiet=True)
        self.tokenizer = tokenizer or corpus.new_tokenizer({})
        # The processes torchrun started have joined (commands.train): one world of one otherwise.
        self.world, self.device = world or World(), device or pick_device(config.device)
        if not self.world.is_main:  # rank 0 speaks for every process
            self.reporter = Reporter(quiet=True)
        if config.batch_size % self.world.size:
            raise SeqgenError(f"--batch-size {config.batch_size} does not split evenly over {self.world.size} "
                              f"processes; use a multiple of {self.world.size}", exit_code=2)
        self.rows = self.world.share(config.batch_size)  # this process' streams of the global batch
        self.autocast = pick_precision(config.precision, self.device, model_config.cell)
        self.precision = "bf16" if self.autocast == torch.bfloat16 else "fp32"
        if self.autocast is not None and self.device.type == "cpu" and not native_bf16_cpu():
            self.reporter.log("Warning: this CPU has no native bf16, so bf16 is emulated and may well be slower "
                              "than fp32 (which --precision auto would pick here)")
        self.threads = Threads(config.threads, log=self.reporter.log)
        torch.manual_seed(config.seed)

        self.data = corpus.dataset(self.tokenizer, config, strict=strict, log=self.reporter.log)
        self.corpus_meta = {**corpus.describe(), "sha256": self.data.sha256}
        self.val_ids, self.val_controls = self.data.val, self.data.val_controls
        first_epoch = self.data.train(1)
        self.train_tokens = len(first_epoch)  # epoch 1's (augmentation varies it a little by epoch)
        check_trainable(self.train_tokens, config.batch_size, config.seq_len)
        # Epoch 1's count (later epochs start at an offset and may hold one batch fewer).
        self.batches_per_epoch = len(Streams(first_epoch, config.batch_size, config.seq_len))
        self.eval_every = config.eval_every or min(EVAL_EVERY, max(MIN_EVAL_EVERY, self.batches_per_epoch))
        if len(self.val_ids) < 2:
            raise SeqgenError("the validation split is under two tokens; raise --val-fraction")

        self.model_config = dataclasses.replace(model_config, vocab_size=self.tokenizer.vocab_size,
                                                control_inputs=self.tokenizer.control_size)
        check_fits(sum(math.prod(s) for s in parameter_shapes(self.model_config).values()), self.device)
        self.model = RNNLM(self.model_config).to(self.device)
        self.stepper: Any = self.world.wrap(self.model)  # what a training step calls: DDP under several processes
        self.optimizer = make_optimizer(self.model, config)
        self.progress = Progress()
        if config.warmup_steps is None:
            self.cfg = config = dataclasses.replace(config, warmup_steps=self._default_warmup())
        self.carry: Any = None  # the recurrent state (L, S, B, H) carried into the next batch, this process' rows
        # A fine-tuning run (finetune.Base) starts from its base's weights; its lineage stays in every checkpoint.
        self.lineage = [] if init_from is None else init_from.lineage
        if init_from is not None:
            self.model.load_state_dict(init_from.weights)
        if resume_from is not None:
            self.lineage = resume_from.meta.get("lineage", [])
            self._restore(resume_from)
        self._reseed()

    def _reseed(self) -> None:
        """Under several processes each draws its own dropout masks from (seed, rank, step),
        reseeded at every checkpoint, so a resumed run draws what it would have drawn."""
        if self.world.size > 1:
            key = [seed_entropy(self.cfg.seed), self.world.rank, self.progress.step]
            torch.manual_seed(int(np.random.SeedSequence(key).generate_state(1)[0]))

    # -- schedule -----------------------------------------------------------------------------
    def _done_fraction(self) -> float:
        cfg, p = self.cfg, self.progress
        fractions = [0.0]
        if cfg.max_steps:
            fractions.append(p.step / cfg.max_steps)
        if cfg.epochs:  # by tokens: with --batch-ramp, early batches take several steps
            fractions.append(p.tokens / (cfg.epochs * self.batches_per_epoch * cfg.batch_size * cfg.seq_len))
        if cfg.time_budget:
            fractions.append(p.elapsed / cfg.time_budget)
        return max(fractions)

    def _done(self) -> float | None:
        """The share of the run done, for the progress report (None: no limit, no end in sight)."""
        cfg = self.cfg
        return self._done_fraction() if cfg.max_steps or cfg.epochs or cfg.time_budget else None

    def _ramp(self) -> int:
        """The halvings of --batch-ramp this run can take: none without a limit to take shares
        of, and no more than leave a token to every piece of a window."""
        ramp = self.cfg.batch_ramp
        if self._done() is None:
            return 0
        while 2**ramp > self.cfg.seq_len:
            ramp -= 1
        return ramp

    def _groups(self) -> int:
        """The pieces the next batch's window is trained in, one step each (--batch-ramp): 2^N at
        the start, halved at each of N even shares of the run, 1 from then on."""
        ramp = self._ramp()
        return 2 ** (ramp - min(ramp, int(self._done_fraction() * (ramp + 1))))

    def _default_warmup(self) -> int:
        """WARMUP_BATCHES batches in the ramp's first, smallest steps (400 at --batch-ramp 3), but no
        more than a tenth of a run whose length in steps is known (--max-steps, --epochs), so that
        a short run still reaches its peak learning rate."""
        cfg, warmup = self.cfg, WARMUP_BATCHES * 2 ** self._ramp()
        if cfg.max_steps:
            warmup = min(warmup, cfg.max_steps // 10)
        if cfg.epochs:
            warmup = min(warmup, int(self._epoch_limit_steps()) // 10)
        return warmup

    def _epoch_limit_steps(self) -> float:
        """About how many steps --epochs takes (the ramp's steps included); 0 without it."""
        return (self.cfg.epochs or 0) * self.batches_per_epoch * self._steps_per_batch()

    def _steps_per_batch(self) -> float:
        """Steps a batch takes on average over a run: 2^N, ..., 2, 1 over even shares of it."""
        ramp = self._ramp()
        return (2 ** (ramp + 1) - 1) / (ramp + 1)

    def _epoch_streams(self, epoch: int) -> Streams:
        # Each epoch starts the streams at a different offset, so windows do not always begin at
        # the same characters; the offset depends only on (seed, epoch), which keeps resume exact.
        g = torch.Generator().manual_seed(torch_seed(self.cfg.seed * 1_000_003 + epoch))
        offset = 0 if epoch == 1 else int(torch.randint(self.cfg.seq_len, (1,), generator=g))
        return Streams(self.data.train(epoch), self.cfg.batch_size, self.cfg.seq_len, offset, self.rows,
                       self.data.train_controls(epoch))

    # -- the loop -----------------------------------------------------------------------------
    def run(self, stop_at_step: int | None = None) -> Path:
        """Train until a limit is reached; returns the path of the best checkpoint.

        `stop_at_step` stops early as if interrupted (the run stays resumable); tests use it.
        """
        if self.world.is_main:
            self.out.prepare()
            if self.tensorboard:
                self.board = TensorBoard(self.run_dir, self.progress.step)
        try:
            return self._train(stop_at_step)
        finally:
            if self.board is not None:
                self.board.close()
                self.board = None

    def _train(self, stop_at_step: int | None) -> Path:
        cfg, p, model = self.cfg, self.progress, self.model
        self._log_start()
        self.reporter.start(step=p.step, done=self._done())
        model.train()
        started, elapsed_before = time.monotonic(), p.elapsed
        self.drawn_at = started
        window_loss, window_steps, window_start = torch.zeros((), device=self.device), 0, time.monotonic()
        # A resumed run may already be at a limit: then it only reports, without another step.
        stopped_by = self._limit_reached(False, stop_at_step, epoch_done=False)
        agreed_signum = None
        with _StopOnSignal() as signals:
            while stopped_by is None:
                if cfg.epochs and p.epoch > cfg.epochs:
                    stopped_by = "epochs"
                    break
                streams = self._epoch_streams(p.epoch)
                nb = len(streams)
                if (p.batch == 0 and p.group == 0) or self.carry is None:  # a new epoch's streams start empty
                    self.carry = model.initial_state(len(self.rows))
                while p.batch < nb and stopped_by is None:
                    self.threads.check()  # between steps: another process may have taken a core, or left
                    if p.group == 0:
                        p.groups = self._groups()
                    x, y, steer = streams.batch(p.batch)
                    lr = learning_rate(cfg, p.step, self._done_fraction())
                    for group in self.optimizer.param_groups:
                        group["lr"] = lr
                    # The step's piece of the window: the group-th of groups, the state carried from the
                    # piece before (the whole window when groups is 1).
                    t = x.shape[1]
                    piece = slice(p.group * t // p.groups, (p.group + 1) * t // p.groups)
                    x, y, steer = on(self.device, x[:, piece], y[:, piece], None if steer is None else steer[:, piece])
                    loss, self.carry = train_step(self.stepper, self.optimizer, x, y, self.carry, cfg.clip,
                                                  self.autocast, steer)
                    p.step, p.tokens, p.group = p.step + 1, p.tokens + y.numel() * self.world.size, p.group + 1
                    if p.group == p.groups:
                        p.batch, p.group = p.batch + 1, 0
                    # Every process must stop at the same step and follow the same schedule: they
                    # agree on the clock (the slowest one's) and on whether any was signalled.
                    # (Only the agreed signal stops a process: one arriving after the agreement
                    # counts at the next step, in every process alike.)
                    p.elapsed, signum = self.world.max(elapsed_before + time.monotonic() - started,
                                                       float(signals.signum or 0))
                    agreed_signum = int(signum) or None
                    window_loss += loss.detach()
                    window_steps += 1
                    self.reporter.step(step=p.step, epoch=p.epoch, epochs=cfg.epochs, done=self._done(),
                                       lr=lr, loss=functools.partial(_mean, window_loss, window_steps))

                    stopped_by = self._limit_reached(agreed_signum is not None, stop_at_step, epoch_done=p.batch == nb)
                    if p.step % self.eval_every == 0 or stopped_by:
                        train_loss = (window_loss / window_steps).item()
                        seconds = time.monotonic() - window_start
                        self._evaluate_and_save(train_loss, lr, seconds / window_steps, nb)
                        window_loss.zero_()
                        window_steps, window_start = 0, time.monotonic()
                        if stopped_by is None and cfg.patience and p.stale_evals >= cfg.patience:
                            stopped_by = "patience"
                if p.batch >= nb:
                    p.epoch, p.batch, p.group = p.epoch + 1, 0, 0
        self.reporter.close()
        if self.world.is_main:
            self._draw(final=True)
        self.world.barrier()  # rank 0 may still be writing the last checkpoint
        return self._finish(stopped_by, agreed_signum)

    def _limit_reached(self, signalled: bool, stop_at_step: int | None, epoch_done: bool) -> str | None:
        cfg, p = self.cfg, self.progress
        if signalled or (stop_at_step is not None and p.step >= stop_at_step):
            return "signal"
        if cfg.epochs and epoch_done and p.epoch >= cfg.epochs:
            return "epochs"
        if cfg.max_steps and p.step >= cfg.max_steps:
            return "max_steps"
        if cfg.time_budget and p.elapsed >= cfg.time_budget:
            return "time_budget"
        return None

    def _evaluate_and_save(self, train_loss: float, lr: float, seconds_per_step: float, nb: int) -> None:
        cfg, p = self.cfg, self.progress
        train_loss = self.world.sum(train_loss)[0] / self.world.size  # the same on every process
        if not math.isfinite(train_loss):
            kept = (f"the last good checkpoint is kept in {self.run_dir}" if self.out.saved_step is not None
                    else "no checkpoint was saved")
            raise SeqgenError(f"the training loss became {train_loss} by step {p.step}; {kept} (try a lower --lr or --clip)")
        val_loss, _ = evaluate(self.model, self.val_ids, cfg.batch_size, cfg.seq_len, self.world, self.val_controls)
        improved = p.best_val_loss is None or val_loss < p.best_val_loss
        if improved:
            p.best_val_loss, p.best_step, p.stale_evals = val_loss, p.step, 0
        else:
            p.stale_evals += 1
        carry = self.world.gather(self.carry, BATCH_DIM)  # (L, S, B, H): the whole batch's state
        self._reseed()
        if not self.world.is_main:
            return
        row = {"step": p.step, "epoch": p.epoch, "tokens": p.tokens, "elapsed_s": round(p.elapsed, 2),
               "lr": f"{lr:.4g}", "loss": round(train_loss, 5), "val_loss": round(val_loss, 5),
               "val_bpc": round(val_loss / math.log(2), 5)}
        weights = {f"model.{k}": v for k, v in self.model.state_dict().items()}
        self.out.save(p.step, self._meta(row), weights, (self._resume_meta(), self._resume_tensors(carry)), improved, row)
        self._curves(row)
        self.reporter.evaluation(
            epoch=p.epoch, epochs=cfg.epochs, batch=p.batch, batches=nb, seconds=p.elapsed,
            ms_per_step=1000 * seconds_per_step, loss=train_loss, val_loss=val_loss,
        )

    def _curves(self, row: dict) -> None:
        """After each evaluation: TensorBoard's scalars (--tensorboard), and curves.png."""
        if self.board is not None:
            self.board.log(row)
        self._draw(final=False)

    def _draw(self, final: bool) -> None:
        """curves.png drawn anew where matplotlib is installed: at an evaluation, unless drawing
        so soon after the last drawing would take over CURVES_SHARE of the time; at the end of
        training (`final`), if an evaluation has not been drawn. A picture that cannot be drawn
        never stops the run: it is said once, and not tried again."""
        now = time.monotonic()
        if not self.drawing or (final and not self.undrawn):
            return
        if not final and now - self.drawn_at < self.draw_s / CURVES_SHARE:
            self.undrawn = True
            return
        try:
            self.drawing = draw_run_curves(self.run_dir)
        except Exception as e:
            self.drawing = False
            self.reporter.log(f"Warning: no {CURVES} for this run ({e})")
        self.drawn_at, self.draw_s, self.undrawn = time.monotonic(), time.monotonic() - now, False

    def _finish(self, stopped_by: str | None, signum) -> Path:
        p = self.progress
        if stopped_by == "signal" and signum is not None:
            name = signal.Signals(signum).name
            raise SeqgenError(
                f"{name}: stopped at step {p.step:,} and saved {self.run_dir / checkpoint.LAST}; "
                f"resume with: seqgen train {shlex.quote(self.corpus.spec)} --out {shlex.quote(str(self.run_dir))} --resume",
                exit_code=EXIT_CODES[signum],
            )
        reason = {
            "epochs": lambda: f"{self.cfg.epochs} epochs done",
            "max_steps": lambda: f"{self.cfg.max_steps} steps done",
            "time_budget": lambda: f"time budget of {duration(self.cfg.time_budget or 0)} spent",
            "patience": lambda: f"no improvement in {self.cfg.patience} evaluations",
        }.get(stopped_by or "", lambda: "stopped on request")()
        best = "" if p.best_val_loss is None else (
            f"; best val_loss {p.best_val_loss:.4f} ({p.best_val_loss / math.log(2):.3f} bpc) at step {p.best_step:,}")
        self.reporter.log(f"Finished ({reason}): {p.step:,} steps in {duration(p.elapsed)}{best}")
        return self.run_dir / checkpoint.BEST

    # -- checkpoints --------------------------------------------------------------------------
    def _meta(self, metrics: dict) -> dict:
        return {
            "model": to_dict(self.model_config),
            "tokenizer": self.tokenizer.to_dict(),
            "train": to_dict(self.cfg),
            "corpus": self.corpus_meta,
            "progress": dataclasses.asdict(self.progress),
            "precision": self.precision,  # what --precision resolved to on the machine that saved it
            "processes": self.world.size,
            "metrics": metrics,
            **({"lineage": self.lineage} if self.lineage else {}),
        }

    def _resume_meta(self) -> dict:
        groups = self.optimizer.state_dict()["param_groups"]
        return {"resumable": True, "optimizer": {"param_groups": groups}}

    def _resume_tensors(self, carry: torch.Tensor) -> dict[str, torch.Tensor]:
        state = self.optimizer.state_dict()["state"]
        tensors = {f"optim.{i}.{k}": v for i, s in state.items() for k, v in s.items()}
        tensors["rng.torch"] = torch.get_rng_state()
        if self.device.type == "cuda":
            tensors["rng.cuda"] = torch.cuda.get_rng_state(self.device)
        tensors["carry"] = carry
        return tensors

    def _restore(self, ckpt: checkpoint.Checkpoint) -> None:
        if not ckpt.meta.get("resumable"):
            raise SeqgenError(f"{ckpt.path}: not a resumable checkpoint (use the run's {checkpoint.LAST})")
        # Everything is checked before anything is loaded: a bad file changes nothing.
        optimizer_state = checkpoint.resume_state(ckpt, self.model, self.optimizer, self.cfg.batch_size)
        progress = from_dict(Progress, ckpt.meta.get("progress", {}))
        if progress.group and progress.groups > self.cfg.seq_len:  # more pieces than the window has tokens
            raise SeqgenError(f"{ckpt.path}: bad checkpoint metadata (progress groups = {progress.groups}: "
                              f"more than --seq-len {self.cfg.seq_len})")
        checkpoint.restore_rng(ckpt, self.device)
        self.model.load_state_dict({k: v.to(self.device) for k, v in ckpt.group("model.").items()})
        self.optimizer.load_state_dict(optimizer_state)
        self.progress = progress
        # The state of every stream of the global batch is saved, so the run can go on with any
        # number of processes that divides the batch.
        self.carry = ckpt.tensors["carry"][:, :, self.rows.start : self.rows.stop].to(self.device)
        self.out.saved_step = self.progress.step
        if self.world.is_main:
            self.out.drop_metrics_after(self.progress.step)

    def _log_start(self) -> None:
        m, c, p = self.model_config, self.cfg, self.progress
        params = sum(t.numel() for t in self.model.parameters())
        action = f"Resuming at step {p.step}" if p.step else "Training"
        w = self.world
        where = self.device.type if w.size == 1 else f"{w.size} {self.device.type} processes ({w.backend})"
        if self.device.type == "cpu":
            where += f" ({self.threads.count} thread{'s' if self.threads.count > 1 else ''}{' each' if w.size > 1 else ''})"
        batch = f"batch {c.batch_size} x {c.seq_len}" if w.size == 1 else (
            f"global batch {c.batch_size} x {c.seq_len} ({len(self.rows)} streams per process)")
        pieces = 2 ** self._ramp()
        shortest, longest = c.seq_len // pieces, -(-c.seq_len // pieces)
        ramp = (f", steps on {shortest}{'' if shortest == longest else f'- to {longest}'}-token pieces at first"
                if pieces > 1 else "")
        self.reporter.log(
            f"{action}: {m.layers} x {m.hidden} {m.cell.upper()}, {params:,} parameters, vocabulary "
            f"{m.vocab_size}{f', {m.control_inputs} control inputs' if m.control_inputs else ''}, on {where}; "
            f"{self.train_tokens:,} train / "
            f"{len(self.val_ids):,} valid tokens; {batch}, {self.precision}, "
            f"{self.batches_per_epoch} batches/epoch{ramp} -> {self.run_dir}"
        )
        limits = [f"{c.max_steps:,} steps"] if c.max_steps else []
        if c.epochs:
            steps = self._epoch_limit_steps()
            limits.append(f"{c.epochs} epochs ({'about ' if pieces > 1 else ''}{round(steps):,} steps)")
        if c.time_budget:
            limits.append(duration(c.time_budget))
        if p.step:
            limits = [f"{limit} in all" for limit in limits]
        runs = ("Runs until stopped" if not limits else f"Runs for {limits[0]}" if len(limits) == 1
                else f"Runs until {' or '.join(limits)}, whichever comes first")
        self.reporter.log(
            f"{runs}; AdamW, lr {c.lr:g} after {c.warmup_steps} warmup steps, cosine decay to "
            f"{c.lr * c.min_lr_ratio:.3g} at the end"
        )
