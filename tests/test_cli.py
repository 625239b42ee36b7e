"""The CLI end to end: in-process through CliRunner, and as a real subprocess."""

import json
import os
import platform
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from seqgen import __version__, checkpoint, hardware, progress
from seqgen import train as train_module
from seqgen.train import Trainer

from .conftest import TINY, invoke, needs_bf16


@pytest.fixture(scope="module")
def run(tmp_path_factory, corpus_file):
    out = tmp_path_factory.mktemp("cli") / "run"
    result = invoke("train", corpus_file, "--out", out, *TINY)
    assert result.exit_code == 0, result.output
    assert result.stdout.strip() == str(out / "best.safetensors")  # data on stdout: the checkpoint
    return out


def test_train_writes_the_run_directory(run):
    assert (run / "best.safetensors").exists() and (run / "last.safetensors").exists()
    rows = (run / "metrics.csv").read_text().splitlines()
    assert rows[0] == "step,epoch,tokens,elapsed_s,lr,loss,val_loss,val_bpc"
    assert [r.split(",")[0] for r in rows[1:]] == ["10", "20", "30"]
    losses = [float(r.split(",")[6]) for r in rows[1:]]
    assert losses[-1] < losses[0]  # it learns


def test_train_logs_keras_style_lines_on_stderr(tmp_path, corpus_file):
    result = invoke("train", corpus_file, "--out", tmp_path / "r", *TINY, "--no-progress")
    lines = [line for line in result.stderr.splitlines() if line.startswith("Epoch")]
    assert len(lines) == 3
    assert " - loss: " in lines[0] and " - val_loss: " in lines[0] and " - val_bpc: " in lines[0]
    assert "ms/step" in lines[0]
    assert "%|" not in result.stderr  # no bar when asked
    quiet = invoke("train", corpus_file, "--out", tmp_path / "q", *TINY, "--quiet")
    assert quiet.stderr == "" and quiet.exit_code == 0
    bar = invoke("train", corpus_file, "--out", tmp_path / "b", *TINY, "--progress")
    assert "%|" in bar.stderr and "| epoch 1, step " in bar.stderr and "left" in bar.stderr  # forced on


def test_without_a_terminal_training_says_how_long_it_runs_and_logs_its_progress(tmp_path, corpus_file, monkeypatch):
    monkeypatch.setattr(progress, "FIRST_HEARTBEAT_S", 0.0)  # a line at every step, to see them all
    monkeypatch.setattr(progress, "HEARTBEAT_S", 0.0)
    result = invoke("train", corpus_file, "--out", tmp_path / "r", *TINY, "--time-budget", "600")
    # 3 warmup steps: a tenth of the 30
    assert "Runs until 30 steps or 10m00s, whichever comes first; AdamW, lr 0.01 after 3 warmup steps" in result.stderr
    assert "batches/epoch, steps on 4-token pieces at first -> " in result.stderr  # --batch-ramp 3 of 32-token windows
    lines = [line for line in result.stderr.splitlines() if line.startswith("Step ")]
    assert [line.split(" (")[0] for line in lines] == [f"Step {n}" for n in range(1, 31)]
    assert lines[14].startswith("Step 15 (50%), epoch ") and " left" in lines[14]  # the run's 50%, not the epoch's


def test_sample_is_reproducible_and_includes_the_prime(run):
    a = invoke("sample", run, "--prime", "It was", "--length", "50", "--seed", "3")
    b = invoke("sample", run, "--prime", "It was", "--length", "50", "--seed", "3")
    assert a.exit_code == 0, a.output
    assert a.stdout == b.stdout
    assert a.stdout.startswith("It was")
    assert len(a.stdout.rstrip("\n")) >= 50 + len("It was") - 1
    cont = invoke("sample", run, "--prime", "It was", "--length", "50", "--seed", "3", "--continuation-only")
    assert a.stdout.startswith("It was" + cont.stdout.rstrip("\n"))


def test_several_samples_on_stdout_are_separated(run):
    result = invoke("sample", run, "-k", "3", "-n", "20", "--seed", "1")
    headers = [line for line in result.stdout.splitlines() if line.startswith("==> sample")]
    assert headers == ["==> sample 1 <==", "==> sample 2 <==", "==> sample 3 <=="]
    samples = [part.split("<==\n", 1)[1].rstrip("\n") for part in result.stdout.split("==> sample ")[1:]]
    assert all(len(sample) == 20 for sample in samples) and len(set(samples)) == 3


def test_sample_to_a_directory_and_refusing_to_overwrite(run, tmp_path):
    out = tmp_path / "samples"
    result = invoke("sample", run, "-k", "3", "-n", "20", "--seed", "1", "--out", out)
    assert result.exit_code == 0, result.output
    files = sorted(out.iterdir())
    assert [f.name for f in files] == ["sample_001.txt", "sample_002.txt", "sample_003.txt"]
    assert result.stdout.split() == [str(f) for f in files]
    before = files[0].read_text()
    again = invoke("sample", run, "-k", "3", "-n", "20", "--seed", "2", "--out", out)
    assert again.exit_code == 1 and "already exist" in again.stderr
    assert files[0].read_text() == before  # nothing overwritten
    forced = invoke("sample", run, "-k", "3", "-n", "20", "--seed", "2", "--out", out, "--force")
    assert forced.exit_code == 0 and files[0].read_text() != before
    single = invoke("sample", run, "-n", "20", "--seed", "2", "--out", tmp_path / "one.txt")
    assert (tmp_path / "one.txt").read_text() and single.stdout.strip() == str(tmp_path / "one.txt")


def test_shards_are_distinct_reproducible_and_numbered_apart(run, tmp_path):
    def shard(index, out):
        result = invoke("sample", run, "-k", "2", "-n", "40", "--seed", "5", "--shard", f"{index}/5", "--out", out,
                        "--json")
        assert result.exit_code == 0, result.output
        return json.loads(result.stdout)

    first, second = shard(0, tmp_path / "a"), shard(1, tmp_path / "a")
    assert [e["index"] for e in first["samples"] + second["samples"]] == [1, 2, 3, 4]
    files = sorted((tmp_path / "a").iterdir())
    assert [f.name for f in files] == [f"sample_00{i}.txt" for i in (1, 2, 3, 4)]
    texts = [f.read_text() for f in files]
    assert len(set(texts)) == 4  # no shard repeats another
    again = shard(1, tmp_path / "b")
    assert [(tmp_path / "b" / f"sample_00{i}.txt").read_text() for i in (3, 4)] == texts[2:]
    assert second["samples"][0] == {"index": 3, "path": str(tmp_path / "a" / "sample_003.txt"), "tokens": 40,
                                    "stopped": False}
    assert again["seed"] == 5 and again["shard"] == "1/5"
    last = shard(4, tmp_path / "c")  # the job's 10 samples: every shard names its files 3 digits wide
    assert [e["path"][-14:] for e in last["samples"]] == ["sample_009.txt", "sample_010.txt"]
    for bad in ("5/5", "1", "a/b", "-1/2"):
        refused = invoke("sample", run, "--shard", bad)
        assert refused.exit_code == 2 and "I/N" in refused.stderr


def test_json_reports_the_seed_it_drew_so_a_batch_can_be_made_again(run):
    drawn = json.loads(invoke("sample", run, "-k", "2", "-n", "30", "--json").stdout)
    assert [e["tokens"] for e in drawn["samples"]] == [30, 30]
    again = json.loads(invoke("sample", run, "-k", "2", "-n", "30", "--json", "--seed", drawn["seed"]).stdout)
    assert [e["text"] for e in again["samples"]] == [e["text"] for e in drawn["samples"]]


def test_stop_string(run):
    full = invoke("sample", run, "-n", "300", "--seed", "4", "--prime", "I").stdout
    stop = full[20:22]
    cut = invoke("sample", run, "-n", "300", "--seed", "4", "--prime", "I", "--stop", stop).stdout.rstrip("\n")
    assert cut.endswith(stop) and full.startswith(cut) and len(cut) < len(full)
    assert cut.find(stop) == len(cut) - len(stop)  # it stopped at the first occurrence


def test_info_counts_what_torch_counts(run):
    result = invoke("info", run)
    assert result.exit_code == 0, result.output
    model, _, _ = checkpoint.load(run)
    total = sum(p.numel() for p in model.parameters())
    assert f"Total params: {total:,}" in result.stdout
    for name, module in [("embed", model.embed), ("rnns.0", model.rnns[0]), ("head", model.head)]:
        line = next(line for line in result.stdout.splitlines() if line.startswith(name + " "))
        assert line.split()[-1] == f"{sum(p.numel() for p in module.parameters()):,}"
    assert "Best validation: loss" in result.stdout and "bits/char" in result.stdout
    assert "vocabulary" in result.stdout and "dickens" in result.stdout
    report = json.loads(invoke("info", run, "--json").stdout)
    assert report["total_params"] == total and report["progress"]["step"] == 30
    assert report["precision"] in ("fp32", "bf16") and f"computing in {report['precision']}" in result.stdout


@pytest.mark.parametrize("precision", ["fp32", pytest.param("bf16", marks=needs_bf16)])
def test_precision_is_chosen_on_the_command_line_and_recorded(tmp_path, corpus_file, precision):
    result = invoke("train", corpus_file, "--out", tmp_path / "run", *TINY, "--max-steps", "5", "--precision", precision)
    assert result.exit_code == 0, result.output
    assert f"8 x 32, {precision}," in result.stderr  # the start-up line says how it computes
    assert json.loads(invoke("info", tmp_path / "run", "--json").stdout)["precision"] == precision


def test_bf16_that_this_cpu_cannot_run_is_one_error_before_any_run_directory(tmp_path, corpus_file, monkeypatch):
    monkeypatch.setattr(hardware, "bf16_failure", lambda cell, device: "RuntimeError: could not create a primitive")
    result = invoke("train", corpus_file, "--out", tmp_path / "run", *TINY, "--precision", "bf16")
    assert result.exit_code == 2
    assert result.stderr.splitlines() == [(
        "Error: --precision bf16: this CPU cannot train LSTM cells in bfloat16 (RuntimeError: could not create a "
        "primitive); use --precision fp32 (or auto, which picks bf16 only where it runs)")]
    assert not (tmp_path / "run").exists()


def test_resuming_a_bf16_run_where_bf16_cannot_run_says_the_run_asked_for_it(tmp_path, corpus_file, monkeypatch):
    out = tmp_path / "run"
    assert invoke("train", corpus_file, "--out", out, *TINY, "--max-steps", "2", "--precision", "fp32").exit_code == 0
    last = checkpoint.read(out / checkpoint.LAST)  # as if it had been started with --precision bf16
    checkpoint.save(out / checkpoint.LAST, {**last.meta, "train": {**last.meta["train"], "precision": "bf16"}},
                    last.tensors)
    monkeypatch.setattr(hardware, "bf16_failure", lambda cell, device: "RuntimeError: no kernel")
    refused = invoke("train", "--out", out, "--resume", "--max-steps", "4")
    assert refused.exit_code == 2 and refused.stderr.startswith("Error: this run was started with --precision bf16: ")
    resumed = invoke("train", "--out", out, "--resume", "--max-steps", "4", "--precision", "fp32", "--quiet")
    assert resumed.exit_code == 0 and checkpoint.read(out / checkpoint.LAST).meta["progress"]["step"] == 4


# x86 CPUs without native bf16: AVX2 only (oneDNN and ATen both capped), and a CPU whose flags
# say bf16 while oneDNN may not use it (the probe alone must catch that).
AVX2_ONLY = {"ONEDNN_MAX_CPU_ISA": "AVX2", "ATEN_CPU_CAPABILITY": "avx2"}
ONEDNN_CAPPED = {"ONEDNN_MAX_CPU_ISA": "AVX2"}


@pytest.mark.skipif(platform.machine().lower() not in ("x86_64", "amd64"), reason="emulates an x86 CPU")
@pytest.mark.parametrize("cap", [AVX2_ONLY, ONEDNN_CAPPED], ids=["avx2-only", "onednn-capped"])
def test_on_a_cpu_without_native_bf16_auto_trains_in_fp32_and_bf16_is_refused(tmp_path, corpus_file, cap):
    env = {**os.environ, **cap}
    verdict = subprocess.run(
        [sys.executable, "-c", ("import torch; from seqgen.hardware import bf16_failure, native_bf16_cpu; "
                                "print(native_bf16_cpu(), bf16_failure('lstm', torch.device('cpu')) is None)")],
        capture_output=True, text=True, env=env, check=True).stdout.split()
    native, runs = (word == "True" for word in verdict)

    def train(out, *more):
        return subprocess.run([sys.executable, "-m", "seqgen", "train", str(corpus_file), "--out", str(out), *TINY,
                               "--max-steps", "3", *more], capture_output=True, text=True, timeout=300, check=False,
                              env=env)

    auto = train(tmp_path / "auto")
    assert auto.returncode == 0, auto.stderr
    assert f"8 x 32, {'bf16' if native and runs else 'fp32'}," in auto.stderr
    if cap is AVX2_ONLY:
        assert not native  # ATen's kernels are capped below AVX-512, whatever the flags say
    explicit = train(tmp_path / "bf16", "--precision", "bf16")
    if runs:
        assert explicit.returncode == 0 and "8 x 32, bf16," in explicit.stderr
    else:  # an x86 CPU without AVX-512: oneDNN has no bf16 LSTM there
        assert explicit.returncode == 2
        assert explicit.stderr.splitlines()[0].startswith(
            "Error: --precision bf16: this CPU cannot train LSTM cells in bfloat16 (RuntimeError: ")
        assert len(explicit.stderr.splitlines()) == 1
        assert not (tmp_path / "bf16").exists()


def test_eval_reports_loss_bpc_and_perplexity(run, corpus_file):
    result = invoke("eval", run, corpus_file, "--json")
    assert result.exit_code == 0, result.output
    scores = json.loads(result.stdout)
    assert scores["bpc"] == pytest.approx(scores["loss"] / 0.6931471805599453)
    assert scores["perplexity"] == pytest.approx(torch.tensor(scores["loss"]).exp().item(), rel=1e-5)
    text = invoke("eval", run, corpus_file).stdout
    assert text.startswith("loss: ") and "bpc: " in text and "perplexity: " in text


def test_resume_continues_the_run(tmp_path, corpus_file):
    out = tmp_path / "r"
    invoke("train", corpus_file, "--out", out, *TINY, "--max-steps", "10")
    result = invoke("train", corpus_file, "--out", out, "--resume", "--max-steps", "20", "--quiet")
    assert result.exit_code == 0, result.output
    assert checkpoint.read(out / "last.safetensors").meta["progress"]["step"] == 20
    again = invoke("train", corpus_file, "--out", out, "--resume", "--quiet")  # already at its limit
    assert again.exit_code == 0 and checkpoint.read(out / "last.safetensors").meta["progress"]["step"] == 20
    # A limit given now replaces the run's own: here the 20 steps, by 3 epochs
    longer = invoke("train", corpus_file, "--out", out, "--resume", "--epochs", "3", "--quiet")
    last = checkpoint.read(out / "last.safetensors").meta
    assert longer.exit_code == 0 and last["progress"]["step"] > 30 and last["progress"]["epoch"] == 3
    assert (last["train"]["epochs"], last["train"]["max_steps"], last["train"]["time_budget"]) == (3, None, None)
    refused = invoke("train", corpus_file, "--out", out, *TINY)
    assert refused.exit_code == 1 and "--resume" in refused.stderr
    changed = invoke("train", corpus_file, "--out", out, "--resume", "--hidden", "64")
    assert changed.exit_code == 1 and "--hidden cannot change" in changed.stderr


def test_a_run_from_before_the_batch_ramp_resumes_without_one(tmp_path, corpus_file):
    """A checkpoint whose settings have no batch_ramp (and whose progress no group) was written by
    a seqgen that stepped on whole batches: it goes on that way, to the weights of a run without
    the ramp, not with the default ramp."""
    old, plain = tmp_path / "old", tmp_path / "plain"
    WARMUP = ("--warmup-steps", "50")  # all 20 steps warm up: the schedule is the same however long the run is told it is
    assert invoke("train", corpus_file, "--out", plain, *TINY, "--max-steps", "20", "--batch-ramp", "0", *WARMUP).exit_code == 0
    assert invoke("train", corpus_file, "--out", old, *TINY, "--max-steps", "10", "--batch-ramp", "0", *WARMUP).exit_code == 0
    last = checkpoint.read(old / "last.safetensors")
    del last.meta["train"]["batch_ramp"], last.meta["progress"]["group"], last.meta["progress"]["groups"]
    checkpoint.save(old / "last.safetensors", last.meta, last.tensors)
    assert invoke("train", corpus_file, "--out", old, "--resume", "--max-steps", "20").exit_code == 0
    a, b = checkpoint.read(old / "last.safetensors"), checkpoint.read(plain / "last.safetensors")
    assert a.meta["train"]["batch_ramp"] == 0
    assert all(torch.equal(a.tensors[k], b.tensors[k]) for k in b.tensors if k.startswith("model."))


def test_a_limit_given_replaces_the_default_epoch_limit(tmp_path, corpus_file):
    def limits(*args):
        out = tmp_path / str(len(list(tmp_path.iterdir())))
        cut = TINY.index("--max-steps")
        assert invoke("train", corpus_file, "--out", out, *TINY[:cut], *TINY[cut + 2 :], *args).exit_code == 0
        train = checkpoint.read(out / "best.safetensors").meta["train"]
        return train["epochs"], train["max_steps"], train["time_budget"]

    assert limits("--epochs", "1") == (1, None, None)
    assert limits("--max-steps", "3") == (None, 3, None)  # "1,500 steps" means 1,500 steps
    assert limits("--max-steps", "3", "--time-budget", "600") == (None, 3, 600.0)
    assert limits("--time-budget", "600", "--epochs", "4", "--max-steps", "3") == (4, 3, 600.0)
    assert limits("--patience", "50") == (10, None, None)  # no limit given: the default 10 epochs


@pytest.mark.skipif(hardware.bf16_failure("gru", torch.device("cpu")) is not None, reason="no bf16 GRU here")
def test_bf16_without_native_support_warns_that_it_is_emulated(tmp_path, corpus_file, monkeypatch):
    monkeypatch.setattr(train_module, "native_bf16_cpu", lambda: False)  # it runs, converting to fp32 and back
    result = invoke("train", corpus_file, "--out", tmp_path / "run", *TINY, "--max-steps", "2", "--cell", "gru",
                    "--precision", "bf16")
    assert result.exit_code == 0 and "Warning: this CPU has no native bf16" in result.stderr


def test_the_built_in_corpus_trains_for_two_minutes_unless_given_a_limit(tmp_path, monkeypatch):
    limits = {}

    def run(self, stop_at_step=None):  # no training: only what it was asked to do
        limits[self.run_dir.name] = (self.cfg.time_budget, self.cfg.epochs, self.cfg.max_steps)
        return self.run_dir / "best.safetensors"

    monkeypatch.setattr(Trainer, "run", run)
    small = ["--hidden", "8", "--embed", "4", "--threads", "1"]
    quick = invoke("train", "--out", tmp_path / "default", *small)
    assert quick.exit_code == 0
    assert quick.stderr == "python-docs trains for 2m00s unless given --time-budget, --epochs or --max-steps\n"
    for name, limit in [("steps", "--max-steps=5"), ("epochs", "--epochs=2"), ("budget", "--time-budget=30")]:
        assert invoke("train", "python-docs", "--out", tmp_path / name, limit, *small).exit_code == 0
    assert limits == {"default": (120.0, None, None), "steps": (None, None, 5), "epochs": (None, 2, None),
                      "budget": (30.0, None, None)}


def test_threads_reach_sample_and_eval(run, corpus_file, monkeypatch):
    counts = []
    monkeypatch.setattr(torch, "set_num_threads", counts.append)
    assert invoke("sample", run, "-n", "5", "--seed", "1", "--threads", "3").exit_code == 0
    assert invoke("eval", run, corpus_file, "--threads", "2").exit_code == 0
    assert counts == [3, 2]


def test_samples_and_scores_do_not_depend_on_the_thread_count(tmp_path):
    # The default count follows the machine's load, so the same seed must give the same samples on
    # 1 thread as on 2 (the demo model: large enough for PyTorch to split its work over threads).
    demo = Path(__file__).resolve().parents[1] / "checkpoints" / "python-docs-lstm"
    text = tmp_path / "code.txt"
    text.write_text("def f(x):\n    return [x * 2 for x in range(10)]\n" * 300, encoding="utf-8")

    def outputs(threads):
        sample = invoke("sample", demo, "-k", "4", "-n", "200", "--seed", "3", "--threads", threads)
        score = invoke("eval", demo, text, "--threads", threads, "--json")
        assert sample.exit_code == 0 and score.exit_code == 0
        return sample.stdout, score.stdout

    try:
        assert outputs(1) == outputs(2)
    finally:
        torch.set_num_threads(1)


def test_options_from_environment_variables(run):
    result = invoke("sample", run, "--seed", "1", "--continuation-only", env={"SEQGEN_SAMPLE_LENGTH": "7"})
    assert result.exit_code == 0 and len(result.stdout) == 7 + 1  # seven characters and a newline


def test_version_and_help_with_examples():
    assert invoke("--version").stdout.strip() == f"seqgen, version {__version__}"
    for command in (["train"], ["sample"], ["info"], ["eval"], ["corpus", "list"], ["corpus", "download"]):
        result = invoke(*command, "--help")
        assert result.exit_code == 0 and "Example" in result.stdout, command


def test_real_subprocess_train_sample_info_eval(tmp_path, corpus_file):
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
    seqgen = [sys.executable, "-m", "seqgen"]

    def run_cli(*args):
        return subprocess.run([*seqgen, *map(str, args)], capture_output=True, text=True, env=env, timeout=300)

    trained = run_cli("train", corpus_file, "--out", tmp_path / "run", *TINY)
    assert trained.returncode == 0, trained.stderr
    assert trained.stdout.strip() == str(tmp_path / "run" / "best.safetensors")
    sampled = run_cli("sample", tmp_path / "run", "--prime", "It", "-n", "40", "--seed", "1")
    assert sampled.returncode == 0 and sampled.stdout.startswith("It")
    assert run_cli("info", tmp_path / "run").stdout.startswith("Model:")
    assert run_cli("eval", tmp_path / "run", corpus_file).stdout.startswith("loss:")
    bad = run_cli("sample", tmp_path / "run", "--temperature", "-1")
    assert bad.returncode == 2 and "Traceback" not in bad.stderr
    shim = subprocess.run([sys.executable, "cli.py", "--version"], capture_output=True, text=True, env=env,
                          cwd=Path(__file__).resolve().parent.parent)
    assert shim.returncode == 0 and shim.stdout.startswith("seqgen, version")


@pytest.mark.parametrize("args", [["--help"], ["corpus", "list"], ["train", "--help"]])
def test_commands_without_a_model_do_not_import_torch(args):
    # Importing torch costs 1.5 s; the CLI and its error handling must leave it to the commands that run models.
    probe = ("import sys; from click.testing import CliRunner; from seqgen.cli import cli; "
             f"r = CliRunner().invoke(cli, {args!r}); assert r.exit_code == 0, r.output; print('torch' in sys.modules)")
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "False"


def test_cr_line_ends_are_read_as_newlines_and_kept_on_request(tmp_path, corpus_text):
    mac = tmp_path / "mac.txt"
    mac.write_bytes(corpus_text.replace("\n", "\r").encode())  # CR-only, as classic Mac OS wrote text
    lines = corpus_text.count("\n")
    result = invoke("train", mac, "--out", tmp_path / "run", *TINY, "--max-steps", "10")
    assert f"Read {lines:,} CRLF or CR line ends as \\n (--keep-line-endings keeps them as they are)" in result.stderr
    model = tmp_path / "run"
    assert "\r" not in checkpoint.read(model / checkpoint.BEST).meta["tokenizer"]["chars"]
    sample = invoke("sample", model, "--prime", "It was\nthe", "--stop", "\n", "-n", "200", "--seed", "1")
    assert sample.exit_code == 0 and "\r" not in sample.stdout and sample.stdout.startswith("It was\nthe")
    assert invoke("eval", model, mac).exit_code == 0  # its own corpus, read as it was trained

    kept = invoke("train", mac, "--out", tmp_path / "kept", *TINY, "--max-steps", "10", "--keep-line-endings")
    assert kept.exit_code == 0 and "line ends" not in kept.stderr
    assert "\r" in checkpoint.read(tmp_path / "kept" / checkpoint.BEST).meta["tokenizer"]["chars"]
    hint = invoke("sample", tmp_path / "kept", "--prime", "It was\nthe")
    assert hint.exit_code == 1 and "trained on text with CR line ends" in hint.stderr and "$'\\r'" in hint.stderr
    again = invoke("train", mac, "--out", tmp_path / "run", "--resume", "--keep-line-endings")
    assert again.exit_code == 1 and "--keep-line-endings cannot change when resuming" in again.stderr
