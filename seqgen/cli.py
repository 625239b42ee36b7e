"""The `seqgen` command line. Commands parse, call one library function, and print.

Data (generated text, paths written, reports) goes to stdout; progress and messages to stderr.
Torch is imported inside the commands so that `seqgen --help` stays instant.
"""

from __future__ import annotations

import contextlib
import math
import os
import signal
import sys
from pathlib import Path

import click

from . import __version__
from .completion import complete_builtins, complete_checkpoints, complete_corpus, complete_runs
from .config import (
    CACHE_DEFAULTS,
    DEVICES,
    EVAL_EVERY,
    KINDS,
    MAX_CACHE,
    MAX_LAMBDA,
    MAX_SAMPLE_TOKENS,
    MAX_THETA,
    MIDI_TRAIN_DEFAULTS,
    MIN_EVAL_EVERY,
    SAMPLE_DEFAULTS,
    SEED,
    TOKENIZER_NAMES,
    WARMUP_BATCHES,
    MidiConfig,
    ModelConfig,
    TrainConfig,
    bounds,
    choices,
    default,
    field_kind,
)
from .errors import SeqgenError, Terminated
from .threads import note_start

CONTEXT = {"help_option_names": ["-h", "--help"], "show_default": True, "max_content_width": 100}


class CliError(click.ClickException):
    """One `Error: ...` line on stderr and an exit status: how every failure reaches the user."""

    def __init__(self, message: str, exit_code: int = 1):
        super().__init__(message)
        self.exit_code = exit_code  # type: ignore[misc]  # click declares it on the class; each error has its own


class Group(click.Group):
    """Turns the library's user-facing errors into one `Error: ...` line and an exit status."""

    def main(self, args=None, *rest, **kwargs):
        global ARGV  # what --nproc hands on to the processes it starts
        ARGV = list(sys.argv[1:] if args is None else args)
        return super().main(args, *rest, **kwargs)

    def invoke(self, ctx):
        from .distributed import LAUNCHER_NOTES, LOST_CONTACT, launched, note_reported, speaks

        try:
            return super().invoke(ctx)
        except (click.ClickException, click.exceptions.Exit, click.exceptions.Abort):
            raise
        except BrokenPipeError:
            # `seqgen sample ... | head`: the reader left. Exit quietly as other Unix tools do, with
            # 128 + SIGPIPE (click's own handling would exit 1). Output still buffered for the
            # closed pipe goes nowhere, so the interpreter's final flush raises nothing.
            if sys.stdout is not None:  # (a FIFO given as --out may be the pipe, with stdout closed)
                os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
            raise click.exceptions.Exit(141) from None
        except (Exception, KeyboardInterrupt, Terminated) as e:
            if os.environ.get("SEQGEN_DEBUG") and not isinstance(e, (SeqgenError, KeyboardInterrupt, Terminated, OSError)):
                raise
            error = _cli_error(e, launched())
            lost = error.exit_code == LOST_CONTACT and os.environ.get(LAUNCHER_NOTES)
            if not speaks() or lost:  # rank 0 speaks for all; --nproc's launcher names a failed peer
                raise click.exceptions.Exit(error.exit_code) from None
            note_reported()
            raise error from None


def _cli_error(e: BaseException, launched: bool) -> CliError:
    from .distributed import LOST_CONTACT

    if isinstance(e, SeqgenError):
        return CliError(str(e), e.exit_code)
    if isinstance(e, KeyboardInterrupt):
        return CliError("interrupted", 130)
    if isinstance(e, Terminated):
        return CliError("terminated", 143)
    if isinstance(e, MemoryError) or (isinstance(e, RuntimeError) and _out_of_memory(str(e))):
        # Not a bug but a limit of this machine: say so in one line (torch's message says how much).
        first = str(e).strip().splitlines()[0] if str(e).strip() else "MemoryError"
        return CliError(f"out of memory ({first[:300]})")
    if isinstance(e, OSError):
        where = f"{e.filename}: " if e.filename else ""
        return CliError(f"{where}{e.strerror or e}")
    if launched and (type(e).__module__.startswith("torch.distributed") or "Connection" in str(e)):
        # What rank 0 sees when another process died: that one's failure is the story.
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        return CliError(f"lost contact with another training process, which failed or was killed ({first[:200]})",
                        LOST_CONTACT)
    return CliError(f"internal error: {type(e).__name__}: {e} (set SEQGEN_DEBUG=1 for the traceback, "
                    "and please report it)", 70)


ARGV: list[str] = []


def _out_of_memory(message: str) -> bool:
    return any(m in message for m in ("can't allocate memory", "not enough memory", "out of memory"))


@contextlib.contextmanager
def terminate_as_interrupt():
    """SIGTERM (what `kill`, systemd and job schedulers send) stops the command as Ctrl-C does:
    the file being written is removed rather than left half-written. (Training has its own
    handler, which finishes the step and saves.)"""

    def handle(signum, frame):
        raise Terminated

    try:
        previous = signal.signal(signal.SIGTERM, handle)
    except ValueError:  # not the main thread: signals are not ours to handle
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


@click.group(cls=Group, context_settings={**CONTEXT, "auto_envvar_prefix": "SEQGEN"})
@click.version_option(__version__, "-V", "--version", prog_name="seqgen")
def cli():
    """Train recurrent language models on text and generate from them.

    \b
    Quick start:
      seqgen train                            # train on the built-in corpus (python-docs)
      seqgen sample checkpoints/python-docs-lstm --prime "The "

    Every option can also be set from the environment as SEQGEN_<COMMAND>_<OPTION>, for
    example SEQGEN_TRAIN_BATCH_SIZE=32 or SEQGEN_SAMPLE_TEMPERATURE=0.5.
    """


def _model_default(name):
    return default(ModelConfig, name)


def _train_default(name):
    return default(TrainConfig, name)


def _midi_default(name):
    return default(MidiConfig, name)


class FloatRange(click.FloatRange):
    """click.FloatRange that also refuses nan and inf (which compare false with every bound)."""

    def convert(self, value, param, ctx):
        value = super().convert(value, param, ctx)
        if not math.isfinite(value):
            self.fail(f"{value} is not a finite number", param, ctx)
        return value


def _ranged(cls, name):
    """The click type of a numeric option: its range is the config field's (config.py), which a
    checkpoint's settings are also checked against."""
    r = bounds(cls, name)
    kind = click.IntRange if field_kind(cls, name) is int else FloatRange
    return kind(r.lo, r.hi, min_open=r.min_open, max_open=r.max_open)


def _choice(cls, name):
    return click.Choice(choices(cls, name))


KEEP_LINE_ENDINGS = click.option(
    "--keep-line-endings", is_flag=True,
    help="Text: keep CRLF (Windows) and CR (old Mac) line ends as they are  [default: read them as \\n]")
THREADS = click.option("--threads", type=_ranged(TrainConfig, "threads"), default=None,
                       help="CPU threads; fixes the count (as OMP_NUM_THREADS does, which --nproc sets)  "
                            "[default: one per CPU that other processes leave free, re-measured while training]")



def _cache(ctx, size: int, theta: float, lam: float) -> tuple[int, float, float] | None:
    """The --cache options as (size, theta, lambda), or None for --cache 0. Without --cache at all
    the other two are refused on the command line (they would do nothing)."""
    if size:
        return size, theta, lam
    if ctx.get_parameter_source("cache") == click.core.ParameterSource.DEFAULT:
        for name in ("cache_theta", "cache_lambda"):
            if ctx.get_parameter_source(name) == click.core.ParameterSource.COMMANDLINE:
                raise CliError(f"--{name.replace('_', '-')} needs --cache N", 2)
    return None


def cache_options(command):
    """--cache, --cache-theta, --cache-lambda: a continuous cache of the model's recent states
    (seqgen.cache), for eval and sample alike."""
    command = click.option("--cache-lambda", type=FloatRange(0, MAX_LAMBDA), default=CACHE_DEFAULTS["lam"],
                           help="With --cache: its share of each prediction.")(command)
    command = click.option("--cache-theta", type=FloatRange(0, MAX_THETA, min_open=True), default=CACHE_DEFAULTS["theta"],
                           help="With --cache: how sharply it matches the present state with past ones.")(command)
    return click.option("--cache", type=click.IntRange(0, MAX_CACHE), default=0,
                        help="Mix in a continuous cache of the model's last N states (Grave et al. 2017), which lets "
                             "it reuse the names and phrases the text has just used; 0: none "
                             "(docs/commands.md#a-continuous-cache).")(command)


@cli.command(context_settings=CONTEXT)
@click.argument("corpus", required=False, shell_complete=complete_corpus)
@click.option("--cell", type=_choice(ModelConfig, "cell"), default=_model_default("cell"),
              help="Recurrent cell; irnn is a ReLU RNN with identity-initialised recurrent weights.")
@click.option("--layers", type=_ranged(ModelConfig, "layers"), default=_model_default("layers"), help="Stacked recurrent layers.")
@click.option("--hidden", type=_ranged(ModelConfig, "hidden"), default=_model_default("hidden"), help="Hidden units per layer.")
@click.option("--embed", type=_ranged(ModelConfig, "embed"), default=_model_default("embed"), help="Embedding size.")
@click.option("--dropout", type=_ranged(ModelConfig, "dropout"), default=_model_default("dropout"),
              help="Dropout on each layer's output.")
@click.option("--residual/--no-residual", default=_model_default("residual"),
              help="Skip connections around every layer after the first.")
@click.option("--seq-len", type=_ranged(TrainConfig, "seq_len"), default=_train_default("seq_len"),
              show_default=f"{_train_default('seq_len')}; {MIDI_TRAIN_DEFAULTS['seq_len']} for MIDI",
              help="Time steps per window of truncated backpropagation.")
@click.option("--batch-size", type=_ranged(TrainConfig, "batch_size"), default=_train_default("batch_size"),
              help="Parallel contiguous streams per batch.")
@click.option("--batch-ramp", type=_ranged(TrainConfig, "batch_ramp"), default=_train_default("batch_ramp"),
              metavar="N", help="Steps start on 1/2^N of each batch's window, carrying the state from piece "
                                "to piece, and take twice as much at each of N even shares of the run "
                                "(0: every step takes the whole window).")
@click.option("--lr", type=_ranged(TrainConfig, "lr"), default=_train_default("lr"), help="Peak learning rate (AdamW).")
@click.option("--weight-decay", type=_ranged(TrainConfig, "weight_decay"), default=_train_default("weight_decay"),
              help="AdamW weight decay on weight matrices.")
@click.option("--warmup-steps", type=_ranged(TrainConfig, "warmup_steps"), default=_train_default("warmup_steps"),
              show_default=f"{WARMUP_BATCHES} batches in the first steps: {WARMUP_BATCHES * 2 ** _train_default('batch_ramp')} "
                           f"at --batch-ramp {_train_default('batch_ramp')}, {WARMUP_BATCHES} at 0; at most a tenth "
                           "of --max-steps or --epochs",
              help="Linear warmup steps before the cosine decay.")
@click.option("--min-lr-ratio", type=_ranged(TrainConfig, "min_lr_ratio"), default=_train_default("min_lr_ratio"),
              help="The cosine decay ends at this fraction of --lr.")
@click.option("--clip", type=_ranged(TrainConfig, "clip"), default=_train_default("clip"),
              help="Clip the global gradient norm to this (0: no clipping).")
@click.option("--max-steps", type=_ranged(TrainConfig, "max_steps"), default=_train_default("max_steps"),
              help="Stop after this many steps.")
@click.option("--epochs", type=_ranged(TrainConfig, "epochs"), default=_train_default("epochs"),
              help="Stop after this many passes over the corpus.")
@click.option("--time-budget", type=_ranged(TrainConfig, "time_budget"), default=_train_default("time_budget"),
              metavar="SECONDS", help="Stop when this much wall-clock time is spent, then evaluate and save.")
@click.option("--val-fraction", type=_ranged(TrainConfig, "val_fraction"), default=_train_default("val_fraction"),
              help="Share of the corpus held out for validation, as 20 evenly spaced pieces.")
@click.option("--eval-every", type=_ranged(TrainConfig, "eval_every"), default=_train_default("eval_every"),
              show_default=f"{EVAL_EVERY}, or once an epoch when an epoch is shorter, every {MIN_EVAL_EVERY} at least",
              help="Evaluate, log and checkpoint every N steps.")
@click.option("--patience", type=_ranged(TrainConfig, "patience"), default=_train_default("patience"),
              help="Stop early after N evaluations without a better validation loss.")
@click.option("--keep", type=_ranged(TrainConfig, "keep"), default=_train_default("keep"),
              help="Resumable checkpoints to keep: last.safetensors and K-1 earlier ones (step-NNNNNNNN.safetensors).")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), default=None, shell_complete=complete_runs,
              help="Run directory  [default: checkpoints/<corpus>-<cell>-<date>-<time>]")
@click.option("--resume", is_flag=True, help="Continue the run in --out from its last checkpoint.")
@click.option("--init-from", type=click.Path(path_type=Path), default=None, metavar="CHECKPOINT_OR_RUN",
              help="Fine-tune: start from this model's weights (its shape and tokenizer settings; new characters "
                   "join its vocabulary), with a fresh optimizer and schedule, and --lr 1e-3 unless given.")
@click.option("--force", is_flag=True, help="Start over in an --out that already holds a run.")
@click.option("--seed", type=_ranged(TrainConfig, "seed"), default=_train_default("seed"),
              help="Seed for initialisation and data order.")
@click.option("--kind", type=click.Choice(KINDS), default=None,
              help="Read CORPUS as text or MIDI  [default: MIDI for .mid/.midi files and folders holding them]")
@click.option("--strict", is_flag=True, help="MIDI: stop at the first unreadable file instead of skipping it.")
@KEEP_LINE_ENDINGS
@click.option("--transpose", type=_ranged(TrainConfig, "transpose"), default=_train_default("transpose"),
              help="MIDI augmentation: move each piece by up to this many semitones, anew each epoch.")
@click.option("--stretch", type=_ranged(TrainConfig, "stretch"), default=_train_default("stretch"),
              help="MIDI augmentation: play each piece up to this fraction faster or slower.")
@click.option("--resolution", type=_ranged(MidiConfig, "resolution"), default=_midi_default("resolution"), metavar="SECONDS",
              help="MIDI: the TIME_SHIFT step.")
@click.option("--max-shift", type=_ranged(MidiConfig, "max_shift"), default=_midi_default("max_shift"), metavar="SECONDS",
              help="MIDI: the longest TIME_SHIFT event; longer gaps repeat it.")
@click.option("--velocity-bins", type=_ranged(MidiConfig, "velocity_bins"), default=_midi_default("velocity_bins"),
              help="MIDI: loudness levels.")
@click.option("--tokenizer", type=click.Choice(TOKENIZER_NAMES), default=None,
              help="How to read the corpus: char (text); for MIDI, performance (one part: every instrument merged), "
                   "multitrack (its instruments and drums kept) or duration (multitrack, each note with its length "
                   "instead of a NOTE_OFF).  [default: char for text; for MIDI, duration when a file holds several "
                   "instruments or drums, else performance]")
@click.option("--keep-drums/--no-keep-drums", default=None,
              help="MIDI: keep drum tracks.  [default: kept by multitrack and duration; left out by performance, "
                   "which would merge them into the one part]")
@click.option("--families", is_flag=True,
              help="MIDI, multitrack and duration: fold the 128 General MIDI programs into their 16 families "
                   "(a smaller vocabulary).")
@click.option("--max-note", type=_ranged(MidiConfig, "max_note"), default=_midi_default("max_note"), metavar="SECONDS",
              help="MIDI: end notes held longer than this (in the data and in samples).")
@click.option("--control", "control", callback=lambda ctx, param, value: _controls(value), default=_midi_default("control"),
              metavar="NAME,NAME", show_default="none",
              help="MIDI: also read these controls beside each event, computed from the data, so samples can be "
                   "steered by them: density (notes a second in the next 3 s), key (the pitch classes sounding in "
                   "the next 5 s). See `seqgen sample --density/--key`.")
@click.option("--device", type=_choice(TrainConfig, "device"), default=_train_default("device"), help="Where to train.")
@click.option("--precision", type=_choice(TrainConfig, "precision"), default=_train_default("precision"),
              help="Compute precision of training (weights stay fp32); auto: bf16 for LSTMs on CPUs with native "
                   "bf16 (AVX512-BF16, AMX) where a one-step probe of the cell runs in it, else fp32. bf16 where "
                   "it cannot run is refused before training starts.")
@THREADS
@click.option("--nproc", type=click.IntRange(1), default=1,
              help="Train as N processes on this machine (one per GPU, or each with a share of the CPU cores) "
                   "under torchrun and DistributedDataParallel; --batch-size is the global batch.")
@click.option("--tensorboard", is_flag=True,
              help="Also log loss, val_loss and lr at each evaluation for TensorBoard, in RUN/tensorboard/ "
                   "(needs tensorboard).")
@click.option("--progress/--no-progress", default=None, help="Progress bar  [default: when stderr is a terminal]")
@click.option("-q", "--quiet", is_flag=True, help="Print nothing on stderr but errors.")
@click.pass_context
def train(ctx, corpus, out, resume, force, progress, quiet, kind, strict, nproc, **options):
    """Train a model on CORPUS: a text file, a directory of text files, a MIDI file or a directory
    of MIDI files (searched recursively), or a built-in corpus name (see `seqgen corpus list`;
    default python-docs).

    Training stops at the first of --epochs, --max-steps, --time-budget and --patience (the
    built-in python-docs, given none of the first three, trains for two minutes), then the
    run directory holds best.safetensors (lowest validation loss), last.safetensors (resumable;
    with --keep K also K-1 earlier ones), metrics.csv and, where matplotlib is installed, its
    curves in curves.png (see `seqgen plot`). The path of the best checkpoint is printed on stdout.

    \b
    Examples:
      seqgen train                                    # built-in corpus, default model, two minutes
      seqgen train poems.txt --time-budget 600        # your text, ten minutes
      seqgen train shakespeare.txt --cell gru --layers 3 --hidden 256 --out checkpoints/gru
      seqgen train --out checkpoints/gru --resume     # continue an interrupted run
      seqgen train my-letters.txt --init-from checkpoints/python-docs-lstm --time-budget 60   # fine-tune
      seqgen train bach-chorales --time-budget 600    # built-in MIDI corpus: a music model
      seqgen train ~/midi/ --transpose 5 --out checkpoints/piano
      seqgen train big/ --nproc 4 --batch-size 64     # 4 processes (GPUs, or CPU core shares)
      torchrun --nproc-per-node 4 -m seqgen train big/ --batch-size 64   # the same, by hand
    """
    note_start()  # before torch loads: the first measure of how busy the machine is
    from . import commands
    from .curves import need_tensorboard
    from .distributed import launch, launched

    if options["tensorboard"]:
        need_tensorboard()  # before anything starts (and before --nproc starts processes)
    if nproc > 1 and not launched():  # in the processes torchrun starts, --nproc has been done
        batch_given = ctx.get_parameter_source("batch_size") != click.core.ParameterSource.DEFAULT
        if (batch_given or not resume) and options["batch_size"] % nproc:  # a resumed run has its own
            raise CliError(f"--batch-size {options['batch_size']} does not split evenly over {nproc} "
                           f"processes; use a multiple of {nproc}", 2)
        ctx.exit(launch(nproc, ARGV))

    explicit = {k for k, v in options.items()
                if ctx.get_parameter_source(k) not in (click.core.ParameterSource.DEFAULT, None)}
    best = commands.train(
        corpus, out, kind=kind, strict=strict, resume=resume, force=force, options=options, explicit=explicit,
        bar=sys.stderr.isatty() if progress is None else progress, quiet=quiet,
    )
    if best is not None:  # rank 0 of several processes, or the only one
        click.echo(best)
    from .distributed import launched

    if launched():
        # A process of several has left its group and written all it will. Python's shutdown
        # would now destroy what gloo's threads still reference, and now and then that aborts
        # the process ("terminate called without an active exception", SIGABRT) after a
        # successful run: in 3 of about 30 test passes, even with the group torn down first.
        # So it ends here, its output flushed.
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(0)


def _controls(value: str) -> str:
    """--control's names, checked and spelled one way ("Key, density" is "key,density")."""
    from .controls import ControlSet

    try:
        return str(ControlSet(value))
    except SeqgenError as e:
        raise click.BadParameter(str(e)) from None


def _asked(ctx, param, value):
    """A control's sampling option (--density, --key, ...), checked by its control as it will be
    read (an error before any work)."""
    if value is None:
        return None
    from .controls import CONTROLS, OPTIONS

    try:
        CONTROLS[OPTIONS[param.name]]().parse(param.name, value)
    except SeqgenError as e:
        raise click.BadParameter(str(e).split(": ", 1)[-1]) from None
    return value


def _pitches(ctx, param, value):
    if value is None:
        return None
    try:
        pitches = [int(p) for p in value.replace(" ", "").split(",") if p]
    except ValueError:
        raise click.BadParameter("give MIDI pitch numbers separated by commas, e.g. 60,64,67") from None
    if not pitches or any(not 0 <= p <= 127 for p in pitches):
        raise click.BadParameter("give MIDI pitch numbers from 0 to 127, e.g. 60,64,67")
    return pitches


def _shard(ctx, param, value):
    if value is None:
        return None
    index, _, count = value.partition("/")
    if not (index.isdigit() and count.isdigit() and int(index) < int(count)):
        raise click.BadParameter("give the shard as I/N with 0 <= I < N, e.g. 0/4 ... 3/4")
    return int(index), int(count)


@cli.command(context_settings=CONTEXT)
@click.argument("checkpoint", type=click.Path(path_type=Path), shell_complete=complete_checkpoints)
@click.option("-p", "--prime", default=None, help="Text: what the samples start from (included in the output).")
@click.option("--prime-file", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Text: read the prime from this UTF-8 file.")
@click.option("--primer", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="MIDI: continue this .mid file (included in the output): its first minute, up to any "
                   "silence of over a minute.")
@click.option("--primer-seconds", type=FloatRange(0, 10**9, min_open=True), default=None,
              help="MIDI: use the first SECONDS of --primer, more or less than the default  "
                   f"[default: {SAMPLE_DEFAULTS['primer_seconds']:g}]")
@click.option("--primer-pitches", callback=_pitches, default=None, metavar="P,P,...",
              help="MIDI: start from these pitches struck together, e.g. 60,64,67 (C major).")
@click.option("-n", "--length", type=click.IntRange(1, MAX_SAMPLE_TOKENS), default=None,
              help="Tokens to generate: characters, or MIDI events  [default: 500 characters; MIDI: see --seconds]")
@click.option("--seconds", type=FloatRange(0, 86400, min_open=True), default=None,
              help="MIDI: generate this many seconds of music  [default: 30 unless --length is given]")
@click.option("-t", "--temperature", type=FloatRange(0, 1000), default=SAMPLE_DEFAULTS["temperature"],
              help="Sharpen (<1) or flatten (>1) the distribution; 0 is greedy argmax decoding.")
@click.option("--top-k", type=click.IntRange(1), default=None, help="Sample only from the K most likely tokens.")
@click.option("--top-p", type=FloatRange(0, 1, min_open=True), default=None,
              help="Sample only from the smallest set of tokens with this much probability (nucleus).")
@click.option("-k", "--num-samples", type=click.IntRange(1, 100_000), default=1,
              help="Samples to generate, together as one batch.")
@click.option("--stop", default=None, help="Text: end a sample once it ends with this string (kept in the output).")
@click.option("--seed", type=click.IntRange(*SEED), default=None,
              help="Random seed: the same seed gives the same samples.  [default: random]")
@click.option("-o", "--out", default=None,
              help="'-' for stdout; a directory for one file per sample (sample_001.txt or .mid, ...); "
                   "or a file for one sample.  [default: -]")
@click.option("--continuation-only", is_flag=True, help="Leave the prime (or primer) out of the output.")
@click.option("--program", type=click.IntRange(0, 127), default=0,
              help="MIDI, one-part models: the General MIDI instrument of the output (0 = piano, 19 = church organ, "
                   "52 = choir). A multitrack model's notes keep their own.")
@click.option("--instruments", default=None, metavar="NAME,NAME,...",
              help="MIDI, multitrack models: only these may play: General MIDI instrument or family names, "
                   "program numbers, or drums (e.g. piano,bass,drums); 'any' lets the model choose among all.  "
                   "[default: each sample the instruments of one of the corpus's files, as often as files have them]")
# The controls' sampling options (seqgen.controls): each one's name is its option's.
@click.option("--density", callback=_asked, default=None, metavar="NOTES_PER_SECOND",
              help="MIDI, models trained with --control density: play about this many notes a second (0.25 to 128).  "
                   "[default: each sample a density of the training data's]")
@click.option("--key", callback=_asked, default=None, metavar="KEY",
              help="MIDI, models trained with --control key: play in this key, e.g. 'D minor', 'F# major', Bb, C#m.  "
                   "[default: each sample the pitch classes of a moment of the training data]")
@click.option("--pitch-classes", callback=_asked, default=None, metavar="W,W,...",
              help="MIDI, models trained with --control key: play the pitch classes C to B with these 12 weights "
                   "(Magenta's --pitch_class_histogram), e.g. 2,0,1,0,1,1,0,1,0,1,0,1.")
@click.option("--tempo", type=FloatRange(1, 1000), default=120.0,
              help="MIDI: the tempo written in the file (notation only: timing is in seconds).")
@click.option("--valid-only/--any-event", default=True,
              help="MIDI: draw only events that make sense where they come (no NOTE_OFF for a silent pitch, "
                   "no NOTE_ON for a sounding one), or any event, leaving the decoder to ignore the rest.")
@click.option("--plot", is_flag=True, help="MIDI: also write a piano-roll PNG beside each .mid (needs matplotlib).")
@click.option("--wav", is_flag=True,
              help="MIDI: also render a .wav beside each .mid: General MIDI instruments and drums with tinysoundfont "
                   "(or FluidSynth) where installed, else sine waves.")
@click.option("--soundfont", type=click.Path(path_type=Path), default=None, metavar="FILE.sf2",
              help="MIDI, with --wav: the SoundFont to render with  [default: the General MIDI font in pretty_midi, "
                   "TimGM6mb.sf2]")
@click.option("--force", is_flag=True, help="Overwrite existing output files.")
@click.option("--device", type=click.Choice(DEVICES), default="cpu", help="Where to run the model.")
@cache_options
@THREADS
@click.option("--shard", callback=_shard, default=None, metavar="I/N",
              help="Shard I (from 0) of a batch job of N: samples come from a generator seeded by (--seed, I), "
                   "and files are numbered from I x K + 1, so shards never repeat or overwrite each other.")
@click.option("--json", "as_json", is_flag=True,
              help="Print a JSON summary (seed, and per sample its file or text, tokens, ...) instead of the paths.")
@click.pass_context
def sample(ctx, checkpoint, prime, prime_file, **options):
    """Generate from CHECKPOINT (a .safetensors file, or a run directory meaning its best
    checkpoint): text from a text model, .mid files from a MIDI model.

    Text: one sample on stdout streams as it is generated; several on stdout are each preceded by
    a `==> sample N <==` line. MIDI: one sample may go to stdout when it is redirected to a file;
    otherwise give --out. With --out DIR the paths written are printed. --json prints a summary
    instead, with the seed used (drawn at random when --seed is not given).

    \b
    Examples:
      seqgen sample checkpoints/python-docs-lstm
      seqgen sample run/ --prime "ROMEO:" --length 1000 --temperature 0.6 --seed 7
      seqgen sample run/ -k 20 --stop $'\\n\\n' --out samples/
      seqgen sample bach-run/ -k 8 --seconds 30 --out music/ --plot
      seqgen sample bach-run/ --primer chorale.mid --primer-seconds 5 --out continued.mid
      seqgen sample bach-run/ --primer-pitches 60,64,67 --temperature 0.9 > chord.mid
      seqgen sample run/ -k 100 --seed 7 --shard 3/4 --out batch/ --json   # batch/sample_301.txt ...
      seqgen sample run/ --prime-file act1.txt --cache 2000   # reusing the prime's names and phrases
    """
    note_start()  # before torch loads: the first measure of how busy the machine is
    from . import commands

    if prime is not None and prime_file is not None:
        raise CliError("give --prime or --prime-file, not both", 2)
    if options["primer"] is not None and options["primer_pitches"] is not None:
        raise CliError("give --primer or --primer-pitches, not both", 2)
    if options["primer_seconds"] is not None and options["primer"] is None:
        raise CliError("--primer-seconds needs --primer", 2)
    if not options["wav"]:  # SEQGEN_SAMPLE_SOUNDFONT may name a font for every --wav; on the command line it needs one
        if ctx.get_parameter_source("soundfont") == click.core.ParameterSource.COMMANDLINE:
            raise CliError("--soundfont needs --wav", 2)
        options["soundfont"] = None
    with terminate_as_interrupt():
        if prime_file is not None:
            from .corpora import read_text
            from .files import MAX_PRIME

            prime = read_text(prime_file, limit=MAX_PRIME, what="--prime-file")
        cache = _cache(ctx, options.pop("cache"), options.pop("cache_theta"), options.pop("cache_lambda"))
        commands.sample(checkpoint, prime=prime, cache=cache, **options)


@cli.command(context_settings=CONTEXT)
@click.argument("checkpoint", type=click.Path(path_type=Path), shell_complete=complete_checkpoints)
@click.option("--json", "as_json", is_flag=True, help="Print the whole report as JSON.")
def info(checkpoint, as_json):
    """Summarise CHECKPOINT: layers, output shapes and parameter counts, then the tokenizer,
    corpus, training configuration and results.

    \b
    Example:
      seqgen info checkpoints/python-docs-lstm
    """
    from . import commands

    click.echo(commands.info(checkpoint, as_json=as_json))


@cli.command("eval", context_settings=CONTEXT)
@click.argument("checkpoint", type=click.Path(path_type=Path), shell_complete=complete_checkpoints)
@click.argument("text", shell_complete=complete_corpus)
@click.option("--batch-size", type=click.IntRange(1), default=64, help="Parallel streams while scoring.")
@click.option("--seq-len", type=click.IntRange(1), default=None, help="Window length  [default: the training --seq-len]")
@click.option("--device", type=click.Choice(DEVICES), default="auto", help="Where to run the model.")
@cache_options
@THREADS
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
@click.pass_context
def eval_(ctx, checkpoint, text, batch_size, seq_len, device, cache, cache_theta, cache_lambda, threads, as_json):
    """Score CHECKPOINT on TEXT (a file, a directory of files, or a built-in corpus name): loss in
    nats per token, bits per character and perplexity.

    \b
    Examples:
      seqgen eval checkpoints/shakespeare valid.txt
      seqgen eval checkpoints/shakespeare valid.txt --cache 2000   # with a cache of the last 2,000 states
    """
    note_start()  # before torch loads: the first measure of how busy the machine is
    from . import commands

    click.echo(commands.evaluate(checkpoint, text, batch_size=batch_size, seq_len=seq_len, device=device,
                                 threads=threads, as_json=as_json, cache=_cache(ctx, cache, cache_theta, cache_lambda)))


@cli.command("midi-stats", context_settings=CONTEXT)
@click.argument("folder", type=click.Path(path_type=Path))  # a missing one: exit 1, as for every input file
@click.option("--reference", type=click.Path(path_type=Path), default=None,
              help="Compare with the MIDI files in this folder (say, held-out pieces of the corpus).")
@click.option("--cap-seconds", type=FloatRange(0, min_open=True), default=MidiConfig.max_note,
              help="Count the notes held at least this long (the decoder's cap on note length).")
@click.option("--seconds", type=FloatRange(0, min_open=True), default=None, metavar="S",
              help="Count only what each file plays in its first S seconds, in both folders: instruments per "
                   "piece grows with length, so 30 s samples compare with the corpus's 30 s openings (stuck notes "
                   "are still counted over whole files).  "
                   "[default: whole files]")
@click.option("--check", is_flag=True, help="Exit 1 unless every statistic is within 20% of --reference and no note is stuck.")
@click.option("--json", "as_json", is_flag=True, help="Print the statistics as JSON.")
def midi_stats(folder, reference, cap_seconds, seconds, check, as_json):
    """Musical statistics of the MIDI files in FOLDER (searched recursively): pitch-class entropy,
    polyphony, notes per second, pitch range, instruments per piece and drum notes per second
    averaged over files; the share of notes by General MIDI family; stuck notes (a NOTE_ON that
    no NOTE_OFF ends) and notes held to the cap, counted.

    \b
    Example:
      seqgen midi-stats samples/ --reference corpora/bach/valid/
      seqgen midi-stats samples/ --reference my-midi/ --seconds 30
    """
    import json

    from .midistats import folder_stats, report

    stats = folder_stats(folder, cap_seconds, seconds)
    ref = folder_stats(reference, cap_seconds, seconds) if reference is not None else None
    text, ok = report(stats, ref)
    click.echo(json.dumps({"stats": stats, "reference": ref, "ok": ok}, indent=2) if as_json else text)
    if check and not (ok and ref is not None):
        raise CliError("the statistics are not all within 20% of the reference" if ref is not None
                       else "--check needs --reference")


@cli.command(context_settings=CONTEXT)
@click.argument("runs", metavar="RUN...", nargs=-1, required=True, type=click.Path(path_type=Path),
                shell_complete=complete_runs)
@click.option("--x", "x_axis", type=click.Choice(["steps", "time"]), default="steps",
              help="Against training steps, or the wall-clock time each run had trained (elapsed_s).")
@click.option("-o", "--out", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Write a PNG here (needs matplotlib).  [default: draw in the terminal (needs plotext)]")
@click.option("--force", is_flag=True, help="Overwrite an existing --out file.")
def plot(runs, x_axis, out, force):
    """Plot the training curves of RUN (a run directory, or its metrics.csv), or of several runs
    to compare them: the training loss (dashed) and validation loss (solid) at each evaluation,
    a colour per run, and a legend naming each run.

    Training keeps its own picture of them, curves.png, in the run directory where matplotlib
    is installed. `pip install seqgen[plot]` installs matplotlib and plotext.

    \b
    Examples:
      seqgen plot checkpoints/poems                   # in the terminal
      seqgen plot checkpoints/lstm checkpoints/gru --x time --out lstm-vs-gru.png
    """
    from .curves import plot as plot_runs

    text = plot_runs(list(runs), x=x_axis, out=out, force=force,
                     colour=sys.stdout is not None and sys.stdout.isatty() and not os.environ.get("NO_COLOR"))
    if text is not None:
        click.echo(text)


@cli.group(cls=Group, context_settings=CONTEXT)
def corpus():
    """Corpora: list the built-in ones, download those that are not shipped, and encode a large
    text corpus once into token ids that training reads from disk."""


@corpus.command("list", context_settings=CONTEXT)
def corpus_list():
    """Show the built-in corpora with their size, provenance and licence.

    \b
    Example:
      seqgen corpus list
    """
    from .corpora import BUILTINS

    for b in BUILTINS.values():
        click.echo(f"{b.name}\t{b.kind}\t{b.approx_size}\t{b.where}\n  {b.description}\n"
                   f"  source: {b.provenance}\n  licence: {b.licence}")


@corpus.command("download", context_settings=CONTEXT)
@click.argument("name", shell_complete=complete_builtins)
@click.option("--url", default=None, help="Fetch from this mirror instead (the checksum is still verified).")
def corpus_download(name, url):
    """Fetch built-in corpus NAME into the cache (a download verified by SHA-256, or for
    bach-chorales a one-time conversion from music21); prints the path.

    \b
    Examples:
      seqgen corpus download tinyshakespeare
      seqgen corpus download bach-chorales
    """
    from .corpora import BUILTINS

    if name not in BUILTINS:
        raise CliError(f"no built-in corpus {name!r} (built-in: {', '.join(BUILTINS)})")
    click.echo(BUILTINS[name].fetch(url))


@corpus.command("encode", context_settings=CONTEXT)
@click.argument("input_", metavar="INPUT", shell_complete=complete_corpus)
@click.argument("out_dir", type=click.Path(file_okay=False, path_type=Path))
@click.option("--force", is_flag=True,
              help="Replace an earlier encoding in OUT_DIR (only once the new one is complete).")
@KEEP_LINE_ENDINGS
def corpus_encode(input_, out_dir, force, keep_line_endings):
    """Encode the text corpus INPUT (a text file, a directory of text files, or a built-in text
    corpus name) once into OUT_DIR: ids.bin (the token ids, uint8 or uint16), tokenizer.json and
    corpus.json; prints OUT_DIR.

    `seqgen train OUT_DIR` then starts at once and maps the ids from disk, so a corpus of many
    gigabytes needs memory for the model only. INPUT is read twice in chunks (the vocabulary,
    then the ids), never whole; OUT_DIR appears only when complete.

    \b
    Examples:
      seqgen corpus encode books/ books-enc/
      seqgen train books-enc/ --time-budget 3600
      seqgen corpus encode big.txt big-enc/ --force    # encode again over an earlier encoding
    """
    from .corpora import encode_corpus

    with terminate_as_interrupt():
        encode_corpus(input_, out_dir, force=force, keep_line_endings=keep_line_endings)
    click.echo(out_dir)


def main():
    cli.main(prog_name="seqgen")

