"""What each CLI command does, as plain functions: the CLI parses options and calls one of these."""

from __future__ import annotations

import contextlib
import gc
import io
import json
import math
import sys
import time
from pathlib import Path

import numpy as np

from . import api, checkpoint, distributed, finetune
from .atomic import atomic_write_bytes, atomic_write_text, output_kind, refuse_other, write_all
from .config import (
    FINETUNE_LR,
    ModelConfig,
    TrainConfig,
    derived_seed,
    from_dict,
)
from .controls import OPTIONS as CONTROL_OPTIONS
from .corpora import BUILTINS, CORPUS_KINDS, LABELS, MIDI, check_kind, check_options, load_corpus
from .errors import SeqgenError
from .hardware import pick_device
from .lock import Lock
from .model import layer_table
from .progress import Reporter, duration
from .rundir import check_new_run, clear_run
from .threads import use_threads
from .tokenizers import tokenizer_from_dict
from .train import Trainer

MODEL_FIELDS = tuple(ModelConfig.__dataclass_fields__.keys() - {"vocab_size", "control_inputs"})  # the tokenizer sets those
TRAIN_FIELDS = tuple(TrainConfig.__dataclass_fields__)
# What a tokenizer is built with: the options of a kind of corpus that are not training settings.
TOKENIZER_FIELDS = frozenset().union(*(c.options for c in CORPUS_KINDS)) - {*TRAIN_FIELDS, "keep_line_endings"}
# The data layout a resumed run depends on: changing these would not continue the same run.
FIXED_ON_RESUME = ("seq_len", "batch_size", "val_fraction", "seed")
LIMITS = ("epochs", "max_steps", "time_budget")  # what ends a run (--patience only ends one early)


def _limits(options: dict, explicit: set, default: dict) -> dict:
    """The limits a run gets: those given on the command line (and no others: "train for ten
    minutes" or "--resume --epochs 40" mean just that, however many epochs or seconds), else the
    default ones (10 epochs, a built-in corpus' own time budget, or a resumed run's own)."""
    if explicit & set(LIMITS):
        return {k: options[k] if k in explicit else None for k in LIMITS}
    return default


def train(corpus_spec, out, *, kind, strict, resume, force, options, explicit, bar, quiet) -> Path | None:
    """Start (or with `resume`, continue) a run; returns the best checkpoint's path (None in
    processes other than rank 0 of a run that torchrun started, which write nothing)."""
    if resume and out is None:
        raise SeqgenError("--resume needs --out RUN_DIR: the run directory to continue")
    if resume and options.get("init_from"):
        raise SeqgenError("--init-from starts a new run from a model's weights; --resume continues a run: give one")
    with contextlib.ExitStack() as held:
        # The one process that writes the run directory locks it before reading anything there.
        def lock(directory) -> None:
            if distributed.writes():
                held.callback(Lock(Path(directory)).release)

        if out is not None:
            lock(out)
        ckpt = _last_checkpoint(out) if resume else None
        # The processes join on the device the run will use: a resumed run keeps its own unless told.
        device = options["device"]
        if ckpt is not None and "device" not in explicit:
            device = ckpt.meta["train"].get("device", device)
        world, device = distributed.join(pick_device(device))
        trainer = None
        try:
            trainer = _trainer(corpus_spec, out, kind, strict, ckpt, force, options, explicit,
                               Reporter(bar=bar, quiet=quiet), world, device, lock)
            best = trainer.run()
        finally:
            # The trainer's DDP wrapper holds the process group: it goes first, so the group is
            # torn down whole. (That alone did not stop gloo's threads aborting a process at
            # interpreter shutdown now and then: a launched process also ends early, cli.train.)
            trainer = None
            gc.collect()
            distributed.leave()
    return best if world.is_main else None


def _last_checkpoint(out) -> checkpoint.Checkpoint:
    last = Path(out) / checkpoint.LAST
    if not last.exists():
        raise SeqgenError(f"{out}: no {checkpoint.LAST} to resume from")
    return checkpoint.read_resumable(last)


def _trainer(corpus_spec, out, kind, strict, ckpt, force, options, explicit, reporter, world, device, lock) -> Trainer:
    model_options = {k: options[k] for k in MODEL_FIELDS}
    train_options = {k: options[k] for k in TRAIN_FIELDS}
    if ckpt is not None:
        return _resumed_trainer(ckpt, corpus_spec, out, kind, strict, options, explicit, reporter, world, device)
    corpus = load_corpus(corpus_spec, kind, keep_line_endings=options["keep_line_endings"])
    check_options(corpus, explicit)
    train_options.update({k: v for k, v in corpus.train_defaults.items() if k not in explicit})
    # A built-in corpus may come with a run length of its own: the quick start's is two minutes.
    builtin = BUILTINS.get(corpus.spec)
    default_budget = builtin.time_budget if builtin is not None else None
    default = {"epochs": None, "max_steps": None, "time_budget": default_budget} if default_budget else {}
    train_options.update(_limits(options, explicit, default))
    base_ckpt = checkpoint.read(options["init_from"]) if options.get("init_from") else None
    if out is None:  # named by the cell it trains: a fine-tuned run's is its base's
        cell = base_ckpt.meta["model"]["cell"] if base_ckpt else model_options["cell"]
        out = world.agree(_default_run_dir(corpus.name, cell))
        lock(out)
    out = Path(out)
    _outside_corpus(out, corpus)
    check_new_run(out, force)
    log = reporter.log if world.is_main else None
    base = None
    if base_ckpt is not None:
        base = finetune.base_model(base_ckpt, corpus, options, explicit, log=log)
        model_options, tokenizer = base.model_options, base.tokenizer
        if "lr" not in explicit:
            train_options["lr"] = FINETUNE_LR
        if "batch_ramp" not in explicit:  # measured on runs from scratch; fine-tuning keeps full steps unless told
            train_options["batch_ramp"] = 0
        if log:
            grown = f"; {len(base.added)} new characters join its vocabulary: {base.added!r}" if base.added else ""
            step, name = base.lineage[0]["step"], base.lineage[0]["corpus"]
            log(f"Fine-tuning {base.lineage[0]['checkpoint']} (step {step if step is not None else '?'} on "
                f"{name or '?'}) at lr {train_options['lr']:g}{' (--lr sets another)' if 'lr' not in explicit else ''}"
                f"{grown}")
    else:
        tokenizer = corpus.new_tokenizer({k: options[k] for k in explicit}, log=log)
    trainer = Trainer(corpus, ModelConfig(vocab_size=0, **model_options), TrainConfig(**train_options), out,
                      tokenizer=tokenizer, init_from=base, reporter=reporter, strict=strict, world=world, device=device,
                      tensorboard=options.get("tensorboard", False))
    for notice in corpus.notices():
        trainer.reporter.log(notice)
    if default_budget and not explicit & set(LIMITS):
        trainer.reporter.log(f"{corpus.name} trains for {duration(default_budget)} unless given "
                             "--time-budget, --epochs or --max-steps")
    if force and world.is_main:  # start over: nothing of the old run may be mistaken for the new one's
        clear_run(out)
    return trainer


def _resumed_trainer(ckpt, corpus_spec, out, kind, strict, options, explicit, reporter, world, device) -> Trainer:
    tokenizer = tokenizer_from_dict(ckpt.meta["tokenizer"])
    saved = {**ckpt.meta["tokenizer"], **ckpt.meta["train"], **ckpt.meta["model"], "tokenizer": tokenizer.name}
    train_options = {k: options[k] for k in TRAIN_FIELDS}
    for name in sorted(explicit & (set(MODEL_FIELDS) | set(TOKENIZER_FIELDS) | set(FIXED_ON_RESUME) | {"tokenizer"})):
        if saved.get(name) != options[name]:
            raise SeqgenError(
                f"--{name.replace('_', '-')} cannot change when resuming (this run uses {saved.get(name)})"
            )
    # The run keeps its own settings; options given now (say a larger --max-steps) override them.
    given = {k: train_options[k] for k in explicit & set(train_options)}
    # A run from before --batch-ramp had none: it goes on as it began.
    config = from_dict(TrainConfig, {"batch_ramp": 0, **ckpt.meta["train"], **given, **_limits(options, explicit, {})})
    saved_corpus = ckpt.meta.get("corpus", {})
    if corpus_spec is None and saved_corpus.get("spec") is None:
        raise SeqgenError(f"{ckpt.path}: the checkpoint does not say which corpus the run trained on; give CORPUS")
    # Runs from before line ends were read as \n kept them: a resumed run reads its text as it began.
    keep = saved_corpus.get("keep_line_endings", True)
    if "keep_line_endings" in explicit and options["keep_line_endings"] != keep:
        raise SeqgenError(f"--keep-line-endings cannot change when resuming (this run {'keeps' if keep else 'converts'} them)")
    run_kind = saved_corpus.get("kind", tokenizer.reads)
    if corpus_spec and not kind:
        check_kind(corpus_spec, run_kind, f"this run trains a {LABELS.get(run_kind, run_kind)} model")
    corpus = load_corpus(corpus_spec or saved_corpus["spec"], kind or run_kind, keep_line_endings=keep)
    _outside_corpus(Path(out), corpus)
    try:
        trainer = Trainer(corpus, from_dict(ModelConfig, ckpt.meta["model"]), config, Path(out),
                          tokenizer=tokenizer, resume_from=ckpt, reporter=reporter, strict=strict,
                          world=world, device=device, tensorboard=options.get("tensorboard", False))
    except SeqgenError as e:
        if "precision" in explicit or not str(e).startswith("--precision"):
            raise
        # The run's own setting, not an option typed now: say so, and how to go on here.
        raise SeqgenError(f"this run was started with {e} (given to --resume, it applies from here on)",
                          exit_code=e.exit_code) from None
    if trainer.corpus_meta["sha256"] != saved_corpus.get("sha256"):
        trainer.reporter.log("Warning: this corpus differs from the one the run started on")  # rank 0's
    return trainer


def _outside_corpus(out: Path, corpus) -> None:
    """A run directory inside a folder of text would be read as part of the corpus next time."""
    if corpus.reads(out):
        raise SeqgenError(f"--out {out} is inside the text corpus {corpus.spec}, whose every file is read as text "
                          "(checkpoints too); put the run directory outside it")


def _default_run_dir(corpus_name: str, cell: str) -> Path:
    base = Path("checkpoints") / f"{corpus_name}-{cell}-{time.strftime('%Y%m%d-%H%M%S')}"
    path, n = base, 1
    while path.exists():  # a second run started within the same second gets its own directory
        n += 1
        path = base.with_name(f"{base.name}-{n}")
    return path


def _output_files(out: str | None, indices: range, total: int, force: bool, suffix: str) -> list[Path] | None:
    """None for stdout; otherwise the files to write, numbered by `indices` out of `total` (the
    whole job's, so every shard's names have the same width and sort together), checked before
    any work is done."""
    if out in (None, "-"):
        return None
    path = Path(out)
    count = len(indices)
    if path.is_dir() or out.endswith(("/", "\\")) or total > 1:  # shards of a job too: each writes its own files
        if path.exists() and not path.is_dir():
            raise SeqgenError(f"{out}: exists and is not a directory (needed for {count} samples)")
        if path.suffix and not path.exists() and not out.endswith(("/", "\\")):
            raise SeqgenError(f"{out} names a file, and {'-k ' + str(count) if count > 1 else '--shard'} writes "
                              f"{'files' if count > 1 else 'a file per shard'}: give --out a directory "
                              f"(end it with / for a directory whose name has a dot)")
        width = max(3, len(str(total)))
        files = [path / f"sample_{i:0{width}d}{suffix}" for i in indices]
    else:
        files = [path]
    # Writing to a device or pipe (/dev/null, a FIFO) replaces nothing: no --force needed.
    existing = [f for f in files if refuse_other(f) == "file"]
    if existing and not force:
        more = f" and {len(existing) - 1} more" if len(existing) > 1 else ""
        raise SeqgenError(f"{existing[0]}{more} already exist{'s' if not more else ''}; use --force to overwrite")
    return files


SHARED = ("length", "temperature", "top_k", "top_p", "seed", "continuation_only", "cache")
TEXT_ONLY = ("prime", "stop")
# the MIDI options a text model can refuse
MIDI_ONLY = ("primer", "primer_pitches", "seconds", "plot", "wav", "soundfont", "instruments", *CONTROL_OPTIONS)


def sample(checkpoint_path, *, out, num_samples, force, device, threads, shard, as_json, cache=None, **options) -> None:
    """Generate from a checkpoint: text to stdout or files, or MIDI files. With `as_json`, a
    summary of what was generated goes to stdout instead of the paths (or the text itself).
    `cache`: (size, theta, lambda) of a continuous cache to draw with, or None."""
    from .cache import Cache

    options["cache"] = cache and Cache(*cache)
    use_threads(threads)
    model = api.load(checkpoint_path, device)
    tokenizer = model.tokenizer
    midi = tokenizer.reads == MIDI
    wrong = [k for k in (TEXT_ONLY if midi else MIDI_ONLY) if options.get(k)]
    if wrong:
        flag = "--" + wrong[0].replace("_", "-")
        hint = "; use --primer FILE.mid or --primer-pitches" if midi and wrong[0] == "prime" else ""
        raise SeqgenError(f"{flag} does not apply to {'a MIDI' if midi else 'a text'} model{hint}")
    index, shards = shard or (0, 1)
    indices = range(index * num_samples + 1, (index + 1) * num_samples + 1)  # shard I of N: samples I*K+1 .. I*K+K
    files = _output_files(out, indices, shards * num_samples, force, ".mid" if midi else ".txt")
    if as_json and midi and files is None:
        raise SeqgenError("--json prints a summary on stdout, so MIDI samples need --out DIR or FILE.mid")
    if (files is None or as_json) and sys.stdout is None:  # started with stdout closed (`>&-`)
        raise SeqgenError("stdout is closed; give --out FILE or DIR for the samples")
    # A seed is always chosen, and reported by --json, so any batch can be made again.
    seed = options["seed"] if options["seed"] is not None else int(np.random.SeedSequence().generate_state(1)[0])
    options["seed"] = seed if shard is None else derived_seed(seed, index)
    if midi:
        controls = {k: options.pop(k) for k in CONTROL_OPTIONS}
        reports = _sample_midi(model, files, num_samples, as_json=as_json, controls=controls,
                               **{k: v for k, v in options.items() if k not in TEXT_ONLY})
    else:
        reports = _sample_text(model, files, num_samples, as_json=as_json, **{k: options[k] for k in SHARED + TEXT_ONLY})
    if as_json:
        summary = {"checkpoint": str(checkpoint_path), "kind": tokenizer.kind, "seed": seed,
                   "shard": None if shard is None else f"{index}/{shards}",
                   "temperature": options["temperature"], "top_k": options["top_k"], "top_p": options["top_p"],
                   **({"cache": {"size": cache[0], "theta": cache[1], "lambda": cache[2]}} if cache else {}),
                   "samples": [{"index": i, **r} for i, r in zip(indices, reports)]}
        write_stdout(json.dumps(summary, indent=2, ensure_ascii=False) + "\n")


def write_stdout(data: str | bytes) -> None:
    """Write data to stdout whole, or fail: a reader that leaves midway is a BrokenPipeError (exit
    141), never a silently short output. (Python's buffered stdout can drop the rest of a write
    that a closing pipe cut short, and exit 0.)"""
    sys.stdout.flush()
    data = data.encode("utf-8") if isinstance(data, str) else data
    try:
        fd = sys.stdout.fileno()
    except (AttributeError, io.UnsupportedOperation):  # not a file (an in-memory stream, as in tests)
        sys.stdout.buffer.write(data)
        sys.stdout.flush()
        return
    write_all(fd, data)


def _sample_text(model: api.Model, files, num_samples, *, prime, length, temperature, top_k, top_p, stop, seed,
                 continuation_only, cache, as_json) -> list[dict]:
    """Writes the samples (to files, or to stdout unless `as_json`); returns one report each."""
    stream = files is None and num_samples == 1 and sys.stdout.isatty() and not as_json
    on_step = None
    if stream:
        tokenizer = model.tokenizer

        def on_step(token):  # token (1,)
            sys.stdout.write(tokenizer.decode(token))
            sys.stdout.flush()

        if stop:
            model.ids_of(stop, "--stop")  # a bad --stop is an error before any output
        if prime and not continuation_only:  # the prime first, as the model read it
            sys.stdout.write(tokenizer.decode(model.ids_of(prime, "--prime")))
            sys.stdout.flush()
    shown, continuations, reports = model.text_samples(prime, length, num_samples=num_samples, temperature=temperature,
                                                       top_k=top_k, top_p=top_p, seed=seed, stop=stop, on_step=on_step,
                                                       cache=cache)
    texts = [("" if continuation_only else shown) + text for text in continuations]

    if files is not None:
        for file, text, report in zip(files, texts, reports):
            file.parent.mkdir(parents=True, exist_ok=True)
            atomic_write_text(file, text)
            report["path"] = str(file)
            if not as_json and output_kind(file) != "stream":  # /dev/null or a pipe: no file to list
                print(file)
        return reports
    if as_json:
        return [{**report, "text": text} for report, text in zip(reports, texts)]
    if stream:
        if not texts[0].endswith("\n"):
            sys.stdout.write("\n")
        return reports
    lines = [text if text.endswith("\n") else text + "\n" for text in texts]
    if num_samples > 1:
        lines = [f"{'' if i == 1 else chr(10)}==> sample {i} <==\n{text}" for i, text in enumerate(lines, 1)]
    write_stdout("".join(lines))
    return reports


def _sample_midi(model: api.Model, files, num_samples, *, primer, primer_seconds, primer_pitches, length, seconds,
                 temperature, top_k, top_p, seed, continuation_only, program, tempo, plot, wav, soundfont, valid_only,
                 instruments, controls, cache, as_json) -> list[dict]:
    """Writes the pieces (to files, or one to stdout); returns one report each."""
    from .midi_io import audio, audio_renderer, matplotlib_pyplot, midi_bytes, piano_roll_png, wav_bytes

    if files is None and (num_samples > 1 or sys.stdout.isatty() or plot or wav):
        raise SeqgenError("MIDI is binary: give --out DIR (or --out FILE.mid for one sample), "
                          "or redirect stdout to a file for one sample")
    if (plot or wav) and any(output_kind(f) == "stream" for f in files):
        raise SeqgenError("--plot and --wav write files beside the .mid: give --out a file or directory, not a device")
    if plot:
        matplotlib_pyplot()  # missing matplotlib is an error before any work, not after the first file
    renderer = audio_renderer(soundfont) if wav else None  # so is a bad --soundfont; the font is read once
    pieces = model.performances(primer=primer, primer_seconds=primer_seconds, primer_pitches=primer_pitches,
                                length=length, seconds=seconds, num_samples=num_samples, temperature=temperature,
                                top_k=top_k, top_p=top_p, seed=seed, continuation_only=continuation_only,
                                instruments=instruments, valid_only=valid_only, controls=controls, cache=cache)
    reports = []
    for i, (notes, report) in enumerate(pieces):
        data = midi_bytes(notes, program=program, tempo=tempo)
        played = report.get("instruments")
        told = "".join(f"; {name} {value}" for name, value in report.get("controls", {}).items())
        summary = (f"{report['notes']} notes, {report['seconds']:.1f}s{'; ' + ', '.join(played) if played else ''}{told}; "
                   f"decoder ignored {report['ignored_events']} of {report['events']} generated events")
        reports.append(report)
        if files is None:
            write_stdout(data)
            print(f"stdout: {summary}", file=sys.stderr)
            continue
        file = files[i]
        file.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_bytes(file, data)
        reports[-1]["path"] = str(file)
        if not as_json and output_kind(file) != "stream":  # /dev/null or a pipe: no file to list
            print(file)
        print(f"{file}: {summary}", file=sys.stderr)
        if plot:
            atomic_write_bytes(file.with_suffix(".png"), piano_roll_png(notes, title=file.name))
        if wav:
            samples, how = audio(notes, program=program, tempo=tempo, renderer=renderer)
            atomic_write_bytes(file.with_suffix(".wav"), wav_bytes(samples))
            print(f"{file.with_suffix('.wav')}: rendered with {how}", file=sys.stderr)
    return reports


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
                "model", "tokenizer", "train", "precision", "corpus", "progress", "metrics", "lineage", "seqgen_version",
                "saved_at")},
        }
        # The tokenizer settings (MIDI); a character vocabulary is summarised by its size.
        settings = {k: v for k, v in meta["tokenizer"].items() if k != "chars"}
        report["tokenizer"] = {**settings, "vocab_size": model.config.vocab_size}
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
    tokenizer = tokenizer_from_dict(tok)
    lines.append(f"Tokenizer: {tokenizer.describe()}")
    if corpus:
        size = (f"{corpus['files']:,} MIDI files" if "files" in corpus else f"{corpus.get('characters', 0):,} characters")
        lines.append(f"Corpus: {corpus.get('name')} ({size}) from {corpus.get('source')}")
    for base in meta.get("lineage", []):  # each base model, newest first (checked by checkpoint.read)
        lines.append(f"Fine-tuned from: {base['checkpoint']} (SHA-256 {base['sha256'][:16]}..., "
                     f"step {base['step'] if base['step'] is not None else '?'} on {base['corpus'] or '?'})")
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
            + (f", computing in {meta['precision']}" if meta.get("precision") else "")
        )
    if best is not None:
        lines.append(
            f"Best validation: loss {best:.4f} nats/{tokenizer.unit}, {best / math.log(2):.3f} bits/{tokenizer.unit}, "
            f"perplexity {api.perplexity(best):.2f}, at step {progress.get('best_step')}"
        )
    return "\n".join(lines)


def evaluate(checkpoint_path, text_spec, *, batch_size, seq_len, device, threads, as_json, cache=None) -> str:
    """`seqgen eval`; `cache`: (size, theta, lambda) of a continuous cache to mix in, or None."""
    from .cache import Cache

    use_threads(threads)
    model = api.load(checkpoint_path, device)
    tokenizer = model.tokenizer
    check_kind(text_spec, tokenizer.reads, f"this is a {LABELS[tokenizer.reads]} model")
    # The corpus as the model's training read it (a text model that knows CRs kept them).
    corpus = load_corpus(text_spec, tokenizer.reads, **tokenizer.reading())
    result = model.score_ids(corpus.all_ids(tokenizer), batch_size, seq_len, cache and Cache(*cache))
    loss, bits = result["loss"], api.bits_name(tokenizer)
    if as_json:
        return json.dumps(result)
    with_cache = f"\ncache: {cache[0]} states, theta {cache[1]:g}, lambda {cache[2]:g}" if cache else ""
    return (f"loss: {loss:.4f} nats/{tokenizer.unit}\n{bits}: {result[bits]:.4f}\n"
            f"perplexity: {result['perplexity']:.3f}\ntokens: {result['tokens']}{with_cache}")

