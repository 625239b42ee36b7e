"""What each CLI command does, as plain functions: the CLI parses options and calls one of these."""

from __future__ import annotations

import json
import math
import sys
import time
from pathlib import Path

from . import checkpoint
from .atomic import atomic_write_text
from .config import ModelConfig, TrainConfig, from_dict
from .corpora import load_corpus
from .data import as_tensor
from .errors import SeqgenError
from .model import layer_table
from .progress import Reporter
from .sample import generate
from .tokenizers import tokenizer_from_dict
from .train import METRICS, Trainer, evaluate as evaluate_ids, pick_device

MODEL_FIELDS = tuple(ModelConfig.__dataclass_fields__.keys() - {"vocab_size"})
TRAIN_FIELDS = tuple(TrainConfig.__dataclass_fields__)
# The data layout a resumed run depends on: changing these would not continue the same run.
FIXED_ON_RESUME = ("seq_len", "batch_size", "val_fraction", "seed")


def train(corpus_spec, out, *, resume, force, options, explicit, bar, quiet) -> Path:
    """Start (or with `resume`, continue) a run; returns the best checkpoint's path."""
    reporter = Reporter(bar=bar, quiet=quiet)
    model_options = {k: options[k] for k in MODEL_FIELDS}
    train_options = {k: options[k] for k in TRAIN_FIELDS}
    if resume:
        trainer = _resumed_trainer(corpus_spec, out, model_options, train_options, explicit, reporter)
    else:
        corpus = load_corpus(corpus_spec)
        out = Path(out) if out else _default_run_dir(corpus.name, model_options["cell"])
        if (out / checkpoint.BEST).exists() or (out / checkpoint.LAST).exists():
            if not force:
                raise SeqgenError(
                    f"{out} already holds a run; continue it with --resume, or start over with --force"
                )
        trainer = Trainer(corpus, ModelConfig(vocab_size=0, **model_options), TrainConfig(**train_options),
                          out, reporter=reporter)
        if force:  # start over: nothing of the old run may be mistaken for the new one's
            for name in (checkpoint.BEST, checkpoint.LAST, METRICS):
                (out / name).unlink(missing_ok=True)
    return trainer.run()


def _resumed_trainer(corpus_spec, out, model_options, train_options, explicit, reporter) -> Trainer:
    if out is None:
        raise SeqgenError("--resume needs --out RUN_DIR: the run directory to continue")
    last = Path(out) / checkpoint.LAST
    if not last.exists():
        raise SeqgenError(f"{out}: no {checkpoint.LAST} to resume from")
    ckpt = checkpoint.read(last)
    saved = {**ckpt.meta["train"], **ckpt.meta["model"]}
    given = {**model_options, **train_options}
    for name in sorted(explicit & (set(model_options) | set(FIXED_ON_RESUME))):
        if saved.get(name) != given[name]:
            raise SeqgenError(
                f"--{name.replace('_', '-')} cannot change when resuming (this run uses {saved.get(name)})"
            )
    # The run keeps its own settings; options given now (say a larger --max-steps) override them.
    config = from_dict(TrainConfig, {**ckpt.meta["train"], **{k: train_options[k] for k in explicit & set(train_options)}})
    corpus = load_corpus(corpus_spec or ckpt.meta["corpus"]["spec"])
    trainer = Trainer(corpus, from_dict(ModelConfig, ckpt.meta["model"]), config, Path(out),
                      tokenizer=tokenizer_from_dict(ckpt.meta["tokenizer"]), resume_from=ckpt, reporter=reporter)
    if trainer.corpus_meta["sha256"] != ckpt.meta["corpus"].get("sha256"):
        reporter.log("Warning: this corpus differs from the one the run started on")
    return trainer


def _default_run_dir(corpus_name: str, cell: str) -> Path:
    base = Path("checkpoints") / f"{corpus_name}-{cell}-{time.strftime('%Y%m%d-%H%M%S')}"
    path, n = base, 1
    while path.exists():  # a second run started within the same second gets its own directory
        n += 1
        path = base.with_name(f"{base.name}-{n}")
    return path


def _encode_option(tokenizer, text: str, option: str):
    unknown = tokenizer.unknown(text)
    if unknown:
        raise SeqgenError(f"{option} has characters not in the model's vocabulary: {''.join(unknown)!r}")
    return tokenizer.encode(text)


def _output_files(out: str | None, count: int, force: bool) -> list[Path] | None:
    """None for stdout; otherwise the files to write, checked before any work is done."""
    if out in (None, "-"):
        return None
    path = Path(out)
    if path.is_dir() or out.endswith(("/", "\\")) or count > 1:
        if path.exists() and not path.is_dir():
            raise SeqgenError(f"{out}: exists and is not a directory (needed for {count} samples)")
        width = max(3, len(str(count)))
        files = [path / f"sample_{i:0{width}d}.txt" for i in range(1, count + 1)]
    else:
        files = [path]
    existing = [f for f in files if f.exists()]
    if existing and not force:
        more = f" and {len(existing) - 1} more" if len(existing) > 1 else ""
        raise SeqgenError(f"{existing[0]}{more} already exist; use --force to overwrite")
    return files


def sample(checkpoint_path, *, prime, length, temperature, top_k, top_p, num_samples, stop, seed, out,
           continuation_only, force, device) -> None:
    files = _output_files(out, num_samples, force)
    model, tokenizer, _ = checkpoint.load(checkpoint_path)
    model.to(pick_device(device))
    if prime:
        prime_ids, shown_prime = _encode_option(tokenizer, prime, "--prime"), prime
    else:
        # No prime: start as if at the beginning of a line, and show only what the model writes.
        start = "\n" if not tokenizer.unknown("\n") else tokenizer.chars[0]
        prime_ids, shown_prime = tokenizer.encode(start), ""
    stop_ids = _encode_option(tokenizer, stop, "--stop") if stop else ()
    head = "" if continuation_only else shown_prime

    stream = files is None and num_samples == 1 and sys.stdout.isatty()
    on_step = None
    if stream:
        sys.stdout.write(head)
        sys.stdout.flush()

        def on_step(token):  # token (1,)
            sys.stdout.write(tokenizer.decode(token))
            sys.stdout.flush()

    rows = generate(model, prime_ids, length, num_samples=num_samples, temperature=temperature,
                    top_k=top_k, top_p=top_p, seed=seed, stop=stop_ids, on_step=on_step)
    texts = [head + tokenizer.decode(row) for row in rows]

    if files is not None:
        for file, text in zip(files, texts):
            file.parent.mkdir(parents=True, exist_ok=True)
            atomic_write_text(file, text)
            print(file)
        return
    if stream:
        if not texts[0].endswith("\n"):
            sys.stdout.write("\n")
        return
    for i, text in enumerate(texts, 1):
        if num_samples > 1:
            sys.stdout.write(f"{'' if i == 1 else chr(10)}==> sample {i} <==\n")
        sys.stdout.write(text if text.endswith("\n") else text + "\n")
    sys.stdout.flush()


def info(checkpoint_path, *, as_json: bool) -> str:
    ckpt = checkpoint.read(checkpoint_path)
    model = checkpoint.build_model(ckpt)
    rows = layer_table(model)
    total = sum(p.numel() for p in model.parameters())
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    meta = ckpt.meta
    progress, corpus, train_cfg = meta.get("progress", {}), meta.get("corpus", {}), meta.get("train", {})
    best = progress.get("best_val_loss")
    if as_json:
        report = {
            "path": str(ckpt.path),
            "layers": [{"name": n, "type": t, "output_shape": s, "params": c} for n, t, s, c in rows],
            "total_params": total, "trainable_params": trainable, **{k: meta.get(k) for k in (
                "model", "tokenizer", "train", "corpus", "progress", "metrics", "seqgen_version", "saved_at")},
        }
        report["tokenizer"] = {"kind": meta["tokenizer"].get("kind"), "vocab_size": model.config.vocab_size}
        return json.dumps(report, indent=2)

    c = model.config
    width = [max(22, *(len(f"{n} ({t})") for n, t, _, _ in rows)) + 2, 22, 14]
    rule = "=" * sum(width)
    lines = [f'Model: "{c.layers}-layer {c.cell.upper()} language model"  ({ckpt.path})', rule,
             f"{'Layer (type)':<{width[0]}}{'Output Shape':<{width[1]}}{'Param #':>{width[2]}}", rule]
    for name, kind, shape, count in rows:
        lines.append(f"{name + ' (' + kind + ')':<{width[0]}}{shape:<{width[1]}}{count:>{width[2]},}")
    weight_bytes = sum(p.numel() * p.element_size() for p in model.parameters())
    lines += [rule, f"Total params: {total:,} ({weight_bytes / 2**20:.2f} MB as float32)",
              f"Trainable params: {trainable:,}", f"Non-trainable params: {total - trainable:,}", ""]
    tok = meta["tokenizer"]
    lines.append(f"Tokenizer: {tok.get('kind')}, vocabulary {c.vocab_size}")
    if corpus:
        lines.append(f"Corpus: {corpus.get('name')} ({corpus.get('characters', 0):,} characters) from {corpus.get('source')}")
    lines.append(
        f"Model config: cell={c.cell} layers={c.layers} hidden={c.hidden} embed={c.embed} "
        f"dropout={c.dropout:g} residual={c.residual}"
    )
    if train_cfg:
        lines.append("Training config: " + " ".join(f"{k}={v}" for k, v in train_cfg.items()))
    if progress:
        lines.append(
            f"Trained: {progress.get('step', 0):,} steps, epoch {progress.get('epoch')}, "
            f"{progress.get('tokens', 0):,} tokens, {progress.get('elapsed', 0):.0f}s"
        )
    if best is not None:
        lines.append(
            f"Best validation: loss {best:.4f} nats/char, {best / math.log(2):.3f} bits/char, "
            f"perplexity {math.exp(best):.2f}, at step {progress.get('best_step')}"
        )
    return "\n".join(lines)


def evaluate(checkpoint_path, text_spec, *, batch_size, seq_len, device, as_json) -> str:
    model, tokenizer, ckpt = checkpoint.load(checkpoint_path)
    model.to(pick_device(device))
    corpus = load_corpus(text_spec)
    ids = as_tensor(_encode_option(tokenizer, corpus.text, text_spec))
    seq_len = seq_len or ckpt.meta.get("train", {}).get("seq_len", 128)
    loss, tokens = evaluate_ids(model, ids, batch_size, seq_len)
    result = {"loss": loss, "bpc": loss / math.log(2), "perplexity": math.exp(loss), "tokens": tokens}
    if as_json:
        return json.dumps(result)
    return (f"loss: {loss:.4f} nats/token\nbpc: {result['bpc']:.4f}\n"
            f"perplexity: {result['perplexity']:.3f}\ntokens: {result['tokens']}")

