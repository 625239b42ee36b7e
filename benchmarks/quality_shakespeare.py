#!/usr/bin/env python
"""Tiny Shakespeare in a fixed wall-clock budget: seqgen's defaults against a textbook loop.

Splits tinyshakespeare into its first 90% (train) and last 10% (valid), then, one after the other
on the same machine:
  1. `seqgen train train.txt --time-budget B` with default settings, scored by `seqgen eval` on valid;
  2. the plain textbook loop (2 x 256 nn.LSTM, Adam 2e-3, batch 64 x 100, carried state, clip 5)
     for the same budget, scored the same way (seqgen's evaluate: contiguous streams, carried state).
Prints a table and appends it to benchmarks/RESULTS.md.

    python benchmarks/quality_shakespeare.py                 # 105 s each, needs ../shared/corpora
    python benchmarks/quality_shakespeare.py --budget 30 --corpus path/to/tinyshakespeare.txt
    python benchmarks/quality_shakespeare.py --skip-baseline --corpus warpeace_input.txt  # War and Peace
    python benchmarks/quality_shakespeare.py --cache 2000    # seqgen's run also scored with a continuous cache
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch
from torch import nn

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_CORPUS = ROOT.parent / "shared" / "corpora" / "tinyshakespeare.txt"


def split(corpus: Path, workdir: Path) -> tuple[Path, Path]:
    text = corpus.read_text(encoding="utf-8")
    cut = int(len(text) * 0.9)
    train, valid = workdir / "train.txt", workdir / "valid.txt"
    train.write_text(text[:cut], encoding="utf-8")
    valid.write_text(text[cut:], encoding="utf-8")
    return train, valid


def seqgen(*args: str) -> str:
    return subprocess.run([sys.executable, "-m", "seqgen", *args], check=True, capture_output=True, text=True).stdout


def run_seqgen(train: Path, valid: Path, budget: float, workdir: Path, extra: list[str], cache: int) -> list[dict]:
    """seqgen's run, scored alone and, with `cache`, also by `seqgen eval --cache`: a row each."""
    out = workdir / "seqgen-run"
    started = time.monotonic()
    seqgen("train", str(train), "--time-budget", str(budget), "--out", str(out), *extra)
    wall = time.monotonic() - started
    meta = json.loads(seqgen("info", str(out / "last.safetensors"), "--json"))
    name = f"seqgen defaults ({meta.get('precision', 'fp32')})" + (" " + " ".join(extra) if extra else "")
    row = {"steps": meta["progress"]["step"], "tokens": meta["progress"]["tokens"], "wall_s": wall,
           "params": meta["total_params"]}
    rows = [{"name": name, "valid_loss": json.loads(seqgen("eval", str(out), str(valid), "--json"))["loss"], **row}]
    if cache:
        loss = json.loads(seqgen("eval", str(out), str(valid), "--json", "--cache", str(cache)))["loss"]
        rows.append({"name": f"{name}, scored with `--cache {cache}`", "valid_loss": loss, **row})
    return rows


class TextbookLSTM(nn.Module):
    def __init__(self, vocab: int, hidden: int = 256, layers: int = 2):
        super().__init__()
        self.embed = nn.Embedding(vocab, hidden)
        self.lstm = nn.LSTM(hidden, hidden, layers, batch_first=True)
        self.head = nn.Linear(hidden, vocab)

    def forward(self, x, state=None):
        y, state = self.lstm(self.embed(x), state)
        return self.head(y), state


def run_textbook(train: Path, valid: Path, budget: float) -> dict:
    """The loop a user would write from word_language_model: no schedule, no tricks."""
    from seqgen.model import RNNLM  # only for scoring with the same evaluation code
    from seqgen.train import evaluate

    text = train.read_text(encoding="utf-8")
    chars = sorted(set(text))
    index = {c: i for i, c in enumerate(chars)}
    ids = torch.tensor([index[c] for c in text])
    B, T = 64, 100
    n = len(ids) // B
    streams = ids[: n * B].view(B, n)  # (B, N)
    torch.manual_seed(0)
    model = TextbookLSTM(len(chars))
    opt = torch.optim.Adam(model.parameters(), lr=2e-3)
    loss_fn = nn.CrossEntropyLoss()
    state, step, tokens, start, i = None, 0, 0, time.monotonic(), 0
    while time.monotonic() - start < budget:
        if i + T + 1 > n:
            i, state = 0, None
        x, y = streams[:, i : i + T], streams[:, i + 1 : i + T + 1]
        state = None if state is None else tuple(s.detach() for s in state)
        logits, state = model(x, state)
        loss = loss_fn(logits.reshape(-1, len(chars)), y.reshape(-1))
        opt.zero_grad()
        loss.backward()
        nn.utils.clip_grad_norm_(model.parameters(), 5.0)
        opt.step()
        i, step, tokens = i + T, step + 1, tokens + x.numel()

    class Adapter(RNNLM):  # seqgen's evaluate() drives it through the RNNLM interface
        def __init__(self):
            nn.Module.__init__(self)
            self.inner, self.head = model, model.head

        def initial_state(self, batch_size, device=None):
            return torch.zeros(2, 2, batch_size, 256)

        def forward(self, x, state=None, controls=None):  # no controls: a text model
            logits, (h, c) = self.inner(x, (state[:, 0].contiguous(), state[:, 1].contiguous()))
            return logits, torch.stack([h, c], 1)

    vtext = valid.read_text(encoding="utf-8")
    vids = torch.tensor([index[c] for c in vtext])
    loss, _ = evaluate(Adapter(), vids, 64, 128)
    return {"name": "textbook 2x256 LSTM", "valid_loss": loss, "steps": step, "tokens": tokens,
            "wall_s": budget, "params": sum(p.numel() for p in model.parameters())}


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    from seqgen.hardware import pick_precision

    bf16 = "yes" if pick_precision("auto", torch.device("cpu")) else "no"  # what --precision auto trains in
    capped = " ".join(f"{k}={os.environ[k]}" for k in ("MKL_ENABLE_INSTRUCTIONS", "ONEDNN_MAX_CPU_ISA", "ATEN_CPU_CAPABILITY")
                      if k in os.environ)
    return (f"{cpu}{f' capped by {capped}' if capped else ''}, {os.cpu_count()} cores, native bf16 {bf16}, "
            f"torch {torch.__version__}, {torch.get_num_threads()} threads{others_note()}")


def others_note(seconds: float = 1.0) -> str:
    """What other processes take of the CPUs, over the next `seconds`: a warning on stderr and a
    note for the report. Timed numbers taken beside another busy process are wrong without a sign
    (a textbook run beside the test suite made a fifth of its usual steps). Called as a benchmark
    starts, to warn, and by machine(), for the report."""
    from seqgen import threads

    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    then = threads.sample()
    time.sleep(seconds)
    now = threads.sample()
    if then is None or now is None:
        return ""
    taken = cpus - threads.free_cpus(then, now, cpus)
    if taken < 0.25:
        return ""
    print(f"warning: other processes are using {taken:.1f} of this machine's {cpus} CPUs: timed numbers "
          "will be low", file=sys.stderr)
    return f"; other processes were using {taken:.1f} of the {cpus} CPUs as this report was written"


def publish(lines: list[str], results: Path) -> None:
    """Print a report and append it to RESULTS.md."""
    report = "\n".join(lines) + "\n"
    print(report)
    with results.open("a", encoding="utf-8") as f:
        f.write("\n" + report)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--budget", type=float, default=105.0, help="seconds of training for each contender")
    parser.add_argument("--corpus", type=Path, default=DEFAULT_CORPUS)
    parser.add_argument("--skip-baseline", action="store_true")
    parser.add_argument("--cache", type=int, default=0, help="also score seqgen's run with `seqgen eval --cache N`")
    parser.add_argument("--results", type=Path, default=ROOT / "benchmarks" / "RESULTS.md")
    parser.add_argument("extra", nargs="*", help="extra options for seqgen train, after --")
    args = parser.parse_args()
    if not args.corpus.exists():
        sys.exit(f"error: {args.corpus} not found; pass --corpus path/to/tinyshakespeare.txt")
    others_note()  # a warning now, before minutes of timed training

    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        train, valid = split(args.corpus, workdir)
        results = run_seqgen(train, valid, args.budget, workdir, args.extra, args.cache)
        if not args.skip_baseline:
            results.append(run_textbook(train, valid, args.budget))

    title = "Tiny Shakespeare" if args.corpus == DEFAULT_CORPUS else args.corpus.name
    lines = [f"### {title}, 90/10 split, {args.budget:g} s of training ({time.strftime('%Y-%m-%d')})", "",
             f"Machine: {machine()}.", "",
             "| contender | valid loss (nats/char) | bits/char | steps | tokens/s | parameters |",
             "|---|---|---|---|---|---|"]
    for r in results:
        lines.append(f"| {r['name']} | {r['valid_loss']:.4f} | {r['valid_loss'] / math.log(2):.3f} | {r['steps']:,} "
                     f"| {r['tokens'] / args.budget:,.0f} | {r['params']:,} |")
    if not args.skip_baseline:
        diff = results[-1]["valid_loss"] - results[0]["valid_loss"]
        lines += ["", f"In the same run seqgen's valid loss is {abs(diff):.4f} nats/char "
                      f"{'lower' if diff > 0 else 'higher'} than the textbook loop's."]
    publish(lines, args.results)


if __name__ == "__main__":
    main()
