#!/usr/bin/env python
"""Speed: seqgen against the plain-PyTorch code a user would otherwise write, in the same run.

    python benchmarks/speed.py            # everything (about 10 minutes on 2 cores)
    python benchmarks/speed.py --quick    # fewer tokens and invocations (about 2 minutes)

Sections, each a table appended to benchmarks/RESULTS.md with the machine:
  limits      fp32 matmul GFLOP/s and memory copy bandwidth (read + write bytes, as STREAM counts)
  generation  tokens/s: the textbook loop (nn.LSTM/nn.GRU, one `model(x, h)` call per token,
              softmax, torch.multinomial) against `seqgen.sample.generate`, one stream and 64
  training    tokens/s: a word_language_model-style loop (nn.LSTM/GRU/RNN with carried hidden
              state, clip_grad_norm_, Adam) against seqgen's training step, same sizes and batch
  cli         `seqgen --help` start-up, `seqgen sample` overhead, one batch of N samples against
              N separate invocations
  data        text encoding MB/s; peak RSS of training on a large corpus; MIDI reading files/s
              and the cache's speed-up
  distributed tokens/s of one process against two under DDP (gloo, half the cores each), for a
              plain DDP loop and `seqgen train --nproc 2`, same global batch
  compile     the default model's training step under torch.compile against eager, fp32 and bf16
  contention  a shared machine: `seqgen train`, `sample` and `eval` with their default threads
              against each `--threads` value, while 0, 1 or 2 other processes keep a core busy
              (and one at nice 19); not run unless asked for (about 10 minutes)
"""

from __future__ import annotations

import argparse
import os
import re
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch
from torch import nn

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "benchmarks"))
from large_corpus import WRAPPER  # noqa: E402
from quality_shakespeare import machine, publish  # noqa: E402

from seqgen.config import ModelConfig, TrainConfig  # noqa: E402
from seqgen.hardware import pick_precision  # noqa: E402
from seqgen.model import RNNLM  # noqa: E402
from seqgen.sample import generate  # noqa: E402
from seqgen.train import make_optimizer, train_step  # noqa: E402

SIZES = [("lstm", 1, 384, 65), ("lstm", 2, 512, 65), ("lstm", 2, 512, 388), ("gru", 2, 512, 65), ("gru", 2, 512, 388)]
EMBED = 64


def timed(fn, repeat: int = 1) -> float:
    """Best wall-clock seconds of `repeat` calls (after one warm-up call)."""
    fn()
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best


def interleaved(fns, rounds: int) -> list[list[float]]:
    """Wall-clock seconds of each function in each of `rounds` rounds, the functions called in
    turn after one warm-up call each, so a slow spell of a shared machine falls on neighbours
    alike: compare them round by round (`paired`)."""
    for fn in fns:
        fn()
    seconds: list[list[float]] = [[] for _ in fns]
    for _ in range(rounds):
        for times, fn in zip(seconds, fns):
            start = time.perf_counter()
            fn()
            times.append(time.perf_counter() - start)
    return seconds


def paired(base: list[float], other: list[float]) -> float:
    """How many times faster `other` ran than `base`: the median of the rounds' ratios, so that a
    round where the machine slowed down counts once, for both. (The best of three rounds each, as
    before, can pair one loop's best spell with the other's worst; it gave the same code 1.25x and
    then 1.12x on a 2-core VM. This too moves by up to 0.1 between runs there, as the machine's
    speed drifts over minutes: RESULTS.md.)"""
    return statistics.median(b / o for b, o in zip(base, other))


def limits() -> dict:
    a, b = torch.randn(1024, 1024), torch.randn(1024, 1024)
    flops = 2 * 1024**3 * 20 / timed(lambda: [a @ b for _ in range(20)], 3)
    x = torch.empty(64 << 20)
    y = torch.empty_like(x)
    copy = 2 * x.numel() * 4 * 5 / timed(lambda: [y.copy_(x) for _ in range(5)], 3)
    return {"gflops": flops / 1e9, "copy_gbs": copy / 1e9}


class Textbook(nn.Module):
    """What a tutorial writes: embedding, nn.LSTM/nn.GRU with default settings, linear head."""

    def __init__(self, cell: str, layers: int, hidden: int, vocab: int):
        super().__init__()
        self.embed = nn.Embedding(vocab, EMBED)
        kind, options = {"lstm": (nn.LSTM, {}), "gru": (nn.GRU, {}), "rnn": (nn.RNN, {}),
                         "irnn": (nn.RNN, {"nonlinearity": "relu"})}[cell]
        self.rnn = kind(EMBED, hidden, layers, batch_first=True, **options)
        self.head = nn.Linear(hidden, vocab)

    def forward(self, x, h=None):
        out, h = self.rnn(self.embed(x), h)
        return self.head(out), h


# glibc returns freed blocks above its mmap threshold to the kernel, so every oneDNN re-packing of
# nn.LSTM's weights (a fresh 4-8 MB block per call) page-faults anew. Raising the mmap threshold to
# 32 MB, and the trim threshold with it, keeps them in the heap. Ignored by other C libraries.
NO_FAULTS = {"MALLOC_MMAP_THRESHOLD_": str(32 << 20), "MALLOC_TRIM_THRESHOLD_": str(256 << 20)}


def textbook_generation(cell: str, layers: int, hidden: int, vocab: int, tokens: int) -> tuple[float, float]:
    """(tokens/s, page faults per token) of the textbook loop: an embedding, nn.LSTM/nn.GRU with
    default settings called once per token, softmax and torch.multinomial."""
    torch.manual_seed(0)
    textbook = Textbook(cell, layers, hidden, vocab).eval()

    @torch.no_grad()
    def loop():
        x, h = torch.zeros(1, 1, dtype=torch.long), None
        for _ in range(tokens):
            logits, h = textbook(x, h)
            x = torch.multinomial(logits[0, -1].softmax(-1), 1)[None]

    faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    seconds = timed(loop, 3)  # best of three: single-stream speed here varies by tens of percent
    faults = (resource.getrusage(resource.RUSAGE_SELF).ru_minflt - faults) / (4 * tokens)
    return tokens / seconds, faults


def textbook_in_a_fresh_process(size, tokens: int, env: dict) -> tuple[float, float]:
    # A fresh process: the loop's speed depends on the allocator's state (see NO_FAULTS).
    out = subprocess.run([sys.executable, __file__, "--textbook", *map(str, size), str(tokens)], check=True,
                         capture_output=True, text=True, env={**os.environ, **env}).stdout.split()
    return float(out[0]), float(out[1])


def generation(tokens: int, lim: dict) -> list[str]:
    rows = ["| model | textbook loop tok/s (page faults/token) | the same without page faults | seqgen, 1 stream "
            "| ratio to each | weight bytes/token x tok/s | of copy bandwidth | seqgen, 64 streams | vs 1 stream |",
            "|---|---|---|---|---|---|---|---|---|"]
    for cell, layers, hidden, vocab in SIZES:
        base, faults = textbook_in_a_fresh_process((cell, layers, hidden, vocab), tokens, {})
        fast, fast_faults = textbook_in_a_fresh_process((cell, layers, hidden, vocab), tokens, NO_FAULTS)
        model = RNNLM(ModelConfig(vocab_size=vocab, cell=cell, layers=layers, hidden=hidden, embed=EMBED)).eval()
        one = tokens / timed(lambda: generate(model, [1], tokens, seed=0), 3)
        many = 64 * tokens / timed(lambda: generate(model, [1], tokens, num_samples=64, seed=0), 3)
        # Per token a stream reads every recurrent and head weight once, except the embedding and
        # the first layer's input weights, of which it reads one row of their product (decoder()).
        skipped = ("embed.", "rnns.0.weight_ih", "rnns.0.bias_ih")
        weight_bytes = 4 * sum(p.numel() for n, p in model.named_parameters() if not n.startswith(skipped))
        bandwidth = weight_bytes * one / 1e9
        rows.append(f"| {layers} x {hidden} {cell.upper()}, V {vocab} | {base:,.0f} ({faults:,.0f}) "
                    f"| {fast:,.0f} ({fast_faults:,.0f}) | {one:,.0f} | {one / base:.1f}x, {one / fast:.1f}x "
                    f"| {bandwidth:.1f} GB/s | {bandwidth / lim['copy_gbs']:.0%} | {many:,.0f} | {many / one:.1f}x |")
        print(rows[-1], flush=True)
    return rows


TRAIN_SIZES = [("lstm", 1, 384, 65), ("gru", 1, 384, 65), ("rnn", 1, 384, 65), ("irnn", 1, 384, 65),
               ("lstm", 2, 512, 65), ("lstm", 2, 512, 388), ("gru", 2, 512, 65), ("gru", 2, 512, 388),
               ("rnn", 2, 512, 65), ("irnn", 2, 512, 65)]


def training(steps: int, rounds: int, lim: dict, cells: list[str] | None = None) -> list[str]:
    batch, seq_len = 16, 64
    auto = pick_precision("auto", torch.device("cpu"))  # bf16 where this CPU has it natively: the default then
    rows = [f"Tokens/s: the median of {rounds} rounds of {steps} steps, the loops taking turns; ratios: the median of "
            "the rounds' ratios.", "",
            f"| model (batch {batch} x {seq_len}) | word_language_model loop tok/s | seqgen fp32 tok/s | ratio | seqgen MFU "
            "| seqgen `--precision auto` tok/s | ratio |",
            "|---|---|---|---|---|---|---|"]
    for cell, layers, hidden, vocab in TRAIN_SIZES:
        if cells and cell not in cells:
            continue
        data = torch.randint(vocab, (batch, steps * seq_len + 1))
        windows = [(data[:, i * seq_len : (i + 1) * seq_len], data[:, i * seq_len + 1 : (i + 1) * seq_len + 1])
                   for i in range(steps)]
        torch.manual_seed(0)
        textbook = Textbook(cell, layers, hidden, vocab)
        adam = torch.optim.Adam(textbook.parameters(), lr=2e-3)

        def baseline():
            h = None
            for x, y in windows:
                if h is not None:  # repackage_hidden
                    h = tuple(t.detach() for t in h) if isinstance(h, tuple) else h.detach()
                logits, h = textbook(x, h)
                loss = nn.functional.cross_entropy(logits.reshape(-1, vocab), y.reshape(-1))
                adam.zero_grad()
                loss.backward()
                nn.utils.clip_grad_norm_(textbook.parameters(), 1.0)
                adam.step()

        model = RNNLM(ModelConfig(vocab_size=vocab, cell=cell, layers=layers, hidden=hidden, embed=EMBED))
        optimizer = make_optimizer(model, TrainConfig())

        def seqgen_steps(autocast=None):  # what Trainer.run does per batch
            state = model.initial_state(batch)
            for x, y in windows:
                _, state = train_step(model, optimizer, x, y, state, clip=1.0, autocast=autocast)

        fns = [baseline, seqgen_steps] + ([lambda: seqgen_steps(auto)] if auto else [])
        times = interleaved(fns, rounds)
        base, ours, *mixed = (steps * batch * seq_len / statistics.median(t) for t in times)  # tokens/s
        ratio, *mixed_ratio = (paired(times[0], t) for t in times[1:])
        params = sum(p.numel() for p in model.parameters())
        mfu = 6 * params * ours / (lim["gflops"] * 1e9)
        auto_cells = f"{mixed[0]:,.0f} (bf16) | {mixed_ratio[0]:.2f}x" if mixed else "same as fp32 (no native bf16) |"
        rows.append(f"| {layers} x {hidden} {cell.upper()}, V {vocab} | {base:,.0f} | {ours:,.0f} | {ratio:.2f}x "
                    f"| {mfu:.0%} | {auto_cells} |")
        print(rows[-1], flush=True)
    return rows


def seqgen_cli(*args, **kw) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "seqgen", *map(str, args)], capture_output=True, check=True, **kw)


def cli(invocations: int, workdir: Path) -> list[str]:
    run = ROOT / "checkpoints" / "python-docs-lstm"
    help_s = timed(lambda: seqgen_cli("--help"), 5)
    torch_s = timed(lambda: subprocess.run([sys.executable, "-c", "import torch"], check=True), 5)
    sample_s = timed(lambda: seqgen_cli("sample", run, "--length", "1", "--seed", "1"), 3)
    batch_s = timed(lambda: seqgen_cli("sample", run, "--num-samples", invocations, "--length", 200, "--seed", 1,
                                       "--out", workdir / "batch", "--force"))

    separate_s = time.perf_counter()
    for i in range(invocations):
        seqgen_cli("sample", run, "--length", 200, "--seed", i, "--out", workdir / f"one_{i}.txt", "--force")
    separate_s = time.perf_counter() - separate_s
    return ["| measure | seconds |", "|---|---|",
            f"| `seqgen --help` | {help_s:.3f} |",
            f"| `python -c 'import torch'` | {torch_s:.3f} |",
            f"| `seqgen sample` of one character, beyond importing torch | {sample_s - torch_s:.3f} |",
            f"| `seqgen sample --num-samples {invocations} --length 200` | {batch_s:.2f} |",
            f"| {invocations} separate `seqgen sample --length 200` | {separate_s:.2f} ({separate_s / batch_s:.0f}x slower) |"]


def data(megabytes: int, workdir: Path) -> list[str]:
    from seqgen.corpora import load_corpus
    from seqgen.tokenizers import CharTokenizer

    text = load_corpus(None).text
    big = (text * (megabytes * 2**20 // len(text) + 1))[: megabytes * 2**20]
    tok = CharTokenizer.fit(big)
    encode_s = timed(lambda: tok.encode(big), 2)
    path = workdir / "big.txt"
    path.write_text(big, encoding="utf-8")
    # Through large_corpus.py's small wrapper process: a child forked from this one (torch loaded,
    # `big` in memory) would count this process' memory in its own peak.
    peak = workdir / "train.rss"
    subprocess.run([sys.executable, "-c", WRAPPER, str(peak), sys.executable, "-m", "seqgen", "train", str(path),
                    "--max-steps", "20", "--eval-every", "20", "--val-fraction", "0.001", "--out", str(workdir / "big"),
                    "--quiet", "--force"], stdout=subprocess.DEVNULL, check=True)
    peak_mb = int(peak.read_text()) / 1024  # Linux: kB
    rows = ["| measure | value |", "|---|---|",
            f"| encoding {megabytes} MB of text (CharTokenizer) | {len(big.encode()) / 2**20 / encode_s:,.0f} MB/s |",
            f"| peak RSS of `seqgen train` on {megabytes} MB of text (20 steps, evaluation, checkpoints) | {peak_mb:,.0f} MB |"]
    bach = ROOT.parent / "shared" / "corpora" / "bach-chorales-midi" / "train"
    if bach.is_dir():
        os.environ["SEQGEN_CACHE_DIR"] = str(workdir / "cache")
        from seqgen.corpora import midi_pieces
        from seqgen.tokenizers import MidiTokenizer

        corpus = load_corpus(bach)
        first = time.perf_counter()
        midi_pieces(corpus, MidiTokenizer(), log=lambda m: None)
        first = time.perf_counter() - first
        cached = timed(lambda: midi_pieces(corpus, MidiTokenizer(), log=lambda m: None), 3)
        rows += [f"| reading {len(corpus.files)} Bach chorales (MIDI) | {len(corpus.files) / first:,.0f} files/s |",
                 f"| the same from the cache | {cached * 1000:.0f} ms ({first / cached:,.0f}x faster) |"]
    return rows


def _plain_ddp_worker(rank: int, size: int, store: str, batch: int, steps: int, seconds) -> None:
    """The textbook loop under DistributedDataParallel, as its tutorial writes it: each process
    a share of the batch, one thread each."""
    import torch.distributed as dist

    torch.set_num_threads(max(1, (os.cpu_count() or 1) // size))
    dist.init_process_group("gloo", init_method=f"file://{store}", rank=rank, world_size=size)
    torch.manual_seed(0)
    model = nn.parallel.DistributedDataParallel(Textbook("lstm", 1, 384, 65))
    adam = torch.optim.Adam(model.parameters(), lr=2e-3)
    data = torch.randint(65, (batch // size, (steps + 5) * 64 + 1))
    h = None
    for i in range(steps + 5):  # 5 warm-up steps, not timed
        if i == 5:
            dist.barrier()
            start = time.perf_counter()
        x, y = data[:, i * 64 : (i + 1) * 64], data[:, i * 64 + 1 : (i + 1) * 64 + 1]
        h = None if h is None else tuple(t.detach() for t in h)
        logits, h = model(x, h)
        loss = nn.functional.cross_entropy(logits.reshape(-1, 65), y.reshape(-1))
        adam.zero_grad()
        loss.backward()
        nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        adam.step()
    if rank == 0:
        seconds.value = time.perf_counter() - start
    dist.destroy_process_group()


def plain_tokens_per_s(batch: int, steps: int, nproc: int, workdir: Path) -> float:
    import torch.multiprocessing as mp

    seconds = mp.get_context("spawn").Value("d", 0.0)
    store = workdir / f"store-{batch}-{nproc}"
    store.unlink(missing_ok=True)
    mp.spawn(_plain_ddp_worker, args=(nproc, str(store), batch, steps, seconds), nprocs=nproc)
    return steps * batch * 64 / seconds.value


def seqgen_tokens_per_s(batch: int, steps: int, nproc: int, workdir: Path) -> float:
    """From the ms/step of the second evaluation line: the steps after the first `steps`, so
    start-up, the first steps' warm-up and evaluation are all left out, as in the plain loop."""
    run = workdir / f"ddp-{batch}-{nproc}"
    log = seqgen_cli("train", "--batch-size", batch, "--max-steps", 2 * steps, "--eval-every", steps,
                     "--precision", "fp32", "--nproc", nproc, "--out", run, "--force", "--no-progress", text=True).stderr
    ms = float(re.findall(r"([0-9.]+)ms/step", log)[-1])
    return batch * 64 / (ms / 1000)


def distributed(steps: int, workdir: Path) -> list[str]:
    """One process against two (gloo, each with half the cores), same global batch, fp32."""
    rows = ["| global batch x 64, 1 x 384 LSTM | plain loop, 1 process tok/s | plain DDP, 2 processes | "
            "seqgen, 1 process | seqgen `--nproc 2` | seqgen / plain, 2 processes |", "|---|---|---|---|---|---|"]
    for batch in (16, 64, 256):
        plain1, plain2 = (plain_tokens_per_s(batch, steps, n, workdir) for n in (1, 2))
        ours1, ours2 = (seqgen_tokens_per_s(batch, steps, n, workdir) for n in (1, 2))
        rows.append(f"| {batch} | {plain1:,.0f} | {plain2:,.0f} ({plain2 / plain1:.2f}x) | {ours1:,.0f} | "
                    f"{ours2:,.0f} ({ours2 / ours1:.2f}x) | {ours2 / plain2:.2f}x |")
        print(rows[-1], flush=True)
    return rows


def compiled(steps: int) -> list[str]:
    """torch.compile of seqgen's model against eager, the default LSTM's training step."""
    vocab, batch, seq_len = 65, 16, 64
    data = torch.randint(vocab, (batch, (steps + 10) * seq_len + 1))

    def tokens_per_s(compile_it: bool, autocast) -> float:
        torch.manual_seed(0)
        model = RNNLM(ModelConfig(vocab_size=vocab))
        optimizer = make_optimizer(model, TrainConfig())
        stepper = torch.compile(model) if compile_it else model
        state = model.initial_state(batch)
        for i in range(steps + 10):  # the first 10 (compilation among them) are not timed
            if i == 10:
                start = time.perf_counter()
            x, y = data[:, i * seq_len : (i + 1) * seq_len], data[:, i * seq_len + 1 : (i + 1) * seq_len + 1]
            _, state = train_step(stepper, optimizer, x, y, state, 1.0, autocast)
        return steps * batch * seq_len / (time.perf_counter() - start)

    rows = ["| 1 x 384 LSTM, batch 16 x 64 | eager tok/s | `torch.compile` tok/s | ratio |", "|---|---|---|---|"]
    for name, autocast in (("fp32", None), ("bf16 autocast", pick_precision("auto", torch.device("cpu")))):
        if name != "fp32" and autocast is None:
            continue  # no native bf16 here
        eager, comp = tokens_per_s(False, autocast), tokens_per_s(True, autocast)
        eager = max(eager, tokens_per_s(False, autocast))  # eager twice: the better of the two
        rows.append(f"| {name} | {eager:,.0f} | {comp:,.0f} | {comp / eager:.2f}x |")
        print(rows[-1], flush=True)
    return rows


BUSY = "while True: pass"  # another user's job: one core, flat out


def contention(steps: int, rounds: int, workdir: Path, env_variants: list[str]) -> list[str]:
    """Seconds per command for the default threads and each `--threads` value, with 0, 1 and 2
    other processes each keeping a core busy, and one at the lowest priority (nice 19); the median
    of `rounds` interleaved rounds.

    `env_variants` (NAME=VALUE) add columns that run the default under that environment, to
    compare candidate defaults (OMP_WAIT_POLICY=PASSIVE, say) in the same run."""
    from seqgen.corpora import load_corpus

    demo = ROOT / "checkpoints" / "python-docs-lstm"
    text = workdir / "docs.txt"
    text.write_text(load_corpus(None).text[:400_000], encoding="utf-8")
    commands = {
        "train": ["train", text, "--max-steps", steps, "--eval-every", 10 * steps, "--val-fraction", "0.01",
                  "--out", workdir / "contention-run", "--force", "--quiet"],
        "sample": ["sample", demo, "-k", "16", "-n", "10000", "--seed", "1"],
        "eval": ["eval", demo, text],
    }
    cores = os.cpu_count() or 1
    base = {k: v for k, v in os.environ.items() if k != "OMP_NUM_THREADS"}  # the default must be seqgen's own
    settings = [("default", [], {})] + [(f"--threads {n}", ["--threads", n], {}) for n in range(1, cores + 1)]
    settings += [(f"default, {v}", [], dict([v.split("=", 1)])) for v in env_variants]
    rows = ["| command | other busy processes | " + " | ".join(label for label, _, _ in settings)
            + " | default / best |", "|---|---|" + "---|" * (len(settings) + 1)]
    for busy, niceness in ((0, 0), (1, 0), (2, 0), (1, 19)):
        hogs = [subprocess.Popen(["nice", "-n", str(niceness), sys.executable, "-c", BUSY]) for _ in range(busy)]
        try:
            for name, args in commands.items():
                times: list[list[float]] = [[] for _ in settings]
                for _ in range(rounds):
                    for i, (_, extra, env) in enumerate(settings):
                        start = time.perf_counter()
                        seqgen_cli(*args, *extra, env={**base, **env})
                        times[i].append(time.perf_counter() - start)
                medians = [sorted(t)[len(t) // 2] for t in times]
                best = min(medians[1 : cores + 1])  # the best --threads value
                load = f"{busy}{f' (nice {niceness})' if niceness else ''}"
                rows.append(f"| {name} | {load} | " + " | ".join(f"{m:.2f}" for m in medians)
                            + f" | {medians[0] / best:.2f}x |")
                print(rows[-1], flush=True)
        finally:
            for hog in hogs:
                hog.kill()
                hog.wait()
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="fewer tokens, steps and invocations")
    parser.add_argument("--only", nargs="*", default=["generation", "training", "cli", "data", "distributed", "compile"])
    parser.add_argument("--env", nargs="*", default=[], metavar="NAME=VALUE",
                        help="contention: also run the default under each of these environments")
    parser.add_argument("--results", type=Path, default=ROOT / "benchmarks" / "RESULTS.md")
    parser.add_argument("--cells", help="training: only these cells (gru,rnn,...)")
    parser.add_argument("--textbook", nargs=5, metavar=("CELL", "LAYERS", "HIDDEN", "VOCAB", "TOKENS"),
                        help=argparse.SUPPRESS)  # one textbook generation measurement, for a fresh process
    args = parser.parse_args()
    if args.textbook:
        cell, *numbers = args.textbook
        print(*textbook_generation(cell, *map(int, numbers)))
        return
    lim = limits()
    lines = [f"### Speed{' (--quick)' if args.quick else ''} ({time.strftime('%Y-%m-%d')})", "",
             f"Machine: {machine()}; fp32 matmul {lim['gflops']:.0f} GFLOP/s, memory copy "
             f"{lim['copy_gbs']:.1f} GB/s (read + write), both measured in this run."]
    with tempfile.TemporaryDirectory() as tmp:
        sections = {
            "generation": lambda: generation(100 if args.quick else 400, lim),
            "training": lambda: training(10 if args.quick else 20, 3 if args.quick else 9, lim,
                                         args.cells.split(",") if args.cells else None),
            "cli": lambda: cli(10 if args.quick else 100, Path(tmp)),
            "data": lambda: data(20 if args.quick else 100, Path(tmp)),
            "distributed": lambda: distributed(20 if args.quick else 100, Path(tmp)),
            "compile": lambda: compiled(20 if args.quick else 60),
            "contention": lambda: contention(30 if args.quick else 100, 1 if args.quick else 3, Path(tmp), args.env),
        }
        for name in args.only:
            print(f"-- {name}", flush=True)
            lines += ["", f"{name.capitalize()}:", "", *sections[name]()]
    publish(lines, args.results)


if __name__ == "__main__":
    main()
