"""Training curves: `seqgen plot` (a PNG, or text in the terminal) from runs' metrics.csv, its
errors, the curves.png training draws, and `--tensorboard`."""

import os
import sys
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from seqgen import curves
from seqgen.cli import cli
from seqgen.curves import CURVES, METRIC_FIELDS, PNG_MAGIC, TENSORBOARD, curves_figure, drawn_by_seqgen, read_metrics
from seqgen.rundir import check_new_run, clear_run, is_own

from .conftest import TINY, invoke

HEADER = ",".join(METRIC_FIELDS)


def metrics(run, rows, header=HEADER):
    """A run directory holding a metrics.csv of `rows`, each (step, elapsed_s, loss, val_loss)."""
    run.mkdir(parents=True, exist_ok=True)
    lines = [header] + [f"{step},1,{step * 100},{elapsed},0.01,{loss},{val},{val / 0.6931}" for step, elapsed, loss, val in rows]
    (run / "metrics.csv").write_text("\r\n".join(lines) + "\r\n")
    return run


@pytest.fixture
def two(tmp_path, monkeypatch):
    """Two runs, named as a user in their folder would: lstm and gru."""
    monkeypatch.chdir(tmp_path)
    a = metrics(Path("lstm"), [(10, 5.0, 3.0, 3.1), (20, 9.5, 2.5, 2.7), (30, 14.0, 2.2, 2.4)])
    b = metrics(Path("gru"), [(10, 2.0, 3.2, 3.3), (20, 4.0, 2.9, 3.0)])
    return a, b


def one_error(result, code=1) -> str:
    assert result.exit_code == code, result.output
    assert "Traceback" not in result.output and result.stderr.count("\n") == 1, result.stderr
    assert result.stderr.startswith("Error: ")
    return result.stderr.strip()


def test_metrics_are_read_into_columns_and_a_row_being_written_is_left_out(two):
    a, _ = two
    run = read_metrics(a)
    assert run.name == "lstm"
    np.testing.assert_array_equal(run.step, [10, 20, 30])
    np.testing.assert_array_equal(run.elapsed, [5.0, 9.5, 14.0])
    np.testing.assert_array_equal(run.loss, [3.0, 2.5, 2.2])
    np.testing.assert_array_equal(run.val_loss, [3.1, 2.7, 2.4])
    with (a / "metrics.csv").open("a") as f:
        f.write("40,1,4000,18.5,0.01,2.1")  # training is appending this row as we read
    assert len(read_metrics(a).step) == 3
    assert read_metrics(a / "metrics.csv").name == "lstm"  # the file itself names its run
    os.chdir("lstm")  # (the fixture's monkeypatch restores the directory)
    assert read_metrics(Path(".")).name == read_metrics(Path("metrics.csv")).name == "lstm"


def test_two_runs_make_one_png_with_a_colour_per_run_and_both_in_the_legend(two, tmp_path):
    out = tmp_path / "plots" / "compare.png"
    result = invoke("plot", *two, "--out", out)
    assert result.exit_code == 0, result.output
    assert result.stdout == f"{out}\n"
    data = out.read_bytes()
    assert data.startswith(PNG_MAGIC) and drawn_by_seqgen(data[:4096])

    ax = curves_figure([read_metrics(r) for r in two]).axes[0]
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["lstm loss", "lstm val_loss", "gru loss", "gru val_loss"]
    assert [line.get_linestyle() for line in ax.lines] == ["--", "-", "--", "-"]  # training dashed, validation solid
    colours = [line.get_color() for line in ax.lines]
    assert colours[0] == colours[1] != colours[2] == colours[3]
    assert ax.get_xlabel() == "step"
    np.testing.assert_array_equal(ax.lines[0].get_xdata(), [10, 20, 30])


def test_time_puts_the_elapsed_seconds_on_the_x_axis(two, tmp_path):
    ax = curves_figure([read_metrics(r) for r in two], x="time").axes[0]
    assert ax.get_xlabel() == "training time (seconds)"
    np.testing.assert_array_equal(ax.lines[0].get_xdata(), [5.0, 9.5, 14.0])
    np.testing.assert_array_equal(ax.lines[2].get_xdata(), [2.0, 4.0])
    long = metrics(tmp_path / "long", [(10, 600.0, 3.0, 3.1), (20, 1200.0, 2.5, 2.7)])
    ax = curves_figure([read_metrics(long)], x="time").axes[0]
    assert ax.get_xlabel() == "training time (minutes)"
    np.testing.assert_array_equal(ax.lines[1].get_xdata(), [10.0, 20.0])
    assert invoke("plot", long, "--x", "time", "--out", tmp_path / "t.png").exit_code == 0


def test_an_existing_file_is_replaced_only_with_force(two, tmp_path):
    out = tmp_path / "mine.png"
    out.write_bytes(b"my picture")
    assert one_error(invoke("plot", *two, "--out", out)) == f"Error: {out} already exists; use --force to overwrite"
    assert out.read_bytes() == b"my picture"
    assert invoke("plot", *two, "--out", out, "--force").exit_code == 0
    assert out.read_bytes().startswith(PNG_MAGIC)


@pytest.mark.parametrize("name,content,message", [
    ("no metrics.csv", None, "{run}: no metrics.csv here; give a run directory"),
    ("empty", "", "{csv}: empty"),
    ("only the header", HEADER + "\r\n", "{csv}: no evaluations yet"),
    ("not seqgen's", "date,weight\n2026-01-01,70\n", "{csv}: not a metrics.csv that seqgen wrote"),
    ("not text", "\xff\xfe\x00step", "{csv}: not a metrics.csv that seqgen wrote"),
    ("a short row", HEADER + "\n10,1,100,5.0,0.01\n20,1,200,9.0,0.01,2.5,2.7,3.9\n",
     "{csv}, line 2: 5 values where the header names 8"),
    ("not a number", HEADER + "\n10,1,100,5.0,0.01,abc,3.1,4.5\n", "{csv}, line 2: loss is 'abc', not a number"),
    ("nan", HEADER + "\n10,1,100,5.0,0.01,3.0,3.1,4.5\n20,1,200,9.0,0.01,2.5,nan,nan\n",
     "{csv}, line 3: val_loss is nan; a curve needs finite numbers"),
    ("inf", HEADER + "\n10,1,100,inf,0.01,3.0,3.1,4.5\n", "{csv}, line 2: elapsed_s is inf; a curve needs finite numbers"),
])
def test_bad_input_is_one_line_and_exit_1(tmp_path, name, content, message):
    run = tmp_path / "run"
    run.mkdir()
    if content is not None:
        (run / "metrics.csv").write_bytes(content.encode("latin-1") if name == "not text" else content.encode())
    out = tmp_path / "out.png"
    error = one_error(invoke("plot", run, "--out", out))
    assert error.startswith("Error: " + message.format(run=run, csv=run / "metrics.csv")), error
    assert not out.exists()


def test_a_missing_run_and_a_missing_argument(tmp_path):
    assert one_error(invoke("plot", tmp_path / "nowhere", "--out", tmp_path / "o.png")) == \
        f"Error: {tmp_path / 'nowhere'}: no such run directory"
    assert invoke("plot").exit_code == 2  # RUN is required


def test_in_the_terminal(two):
    pytest.importorskip("plotext")
    result = invoke("plot", *two)
    assert result.exit_code == 0, result.output
    text = result.stdout
    assert "\x1b[" not in text  # not a terminal: no colour codes
    for name in ("lstm", "gru"):
        assert f"{name} loss" in text and f"{name} val_loss" in text
    assert "step" in text and len(text.splitlines()) >= 10
    assert "training time (seconds)" in invoke("plot", *two, "--x", "time").stdout
    runs = [read_metrics(r) for r in two]
    assert "\x1b[" in curves.curves_text(runs, colour=True, size=(80, 20))
    plain = curves.curves_text(runs, colour=False, size=(80, 20))
    assert "\x1b[" not in plain and all(line == line.rstrip() for line in plain.splitlines())
    assert "●" in plain and "■" in plain  # without colours, a symbol per run


@pytest.mark.parametrize("hidden,args,message", [
    ("plotext", [], "Error: plotting in the terminal needs plotext: pip install plotext (or seqgen[plot]); "
                    "or give --out FILE.png"),
    ("matplotlib", ["--out", "x.png"], "Error: --out needs matplotlib: pip install matplotlib (or seqgen[plot])"),
])
def test_a_missing_library_is_named_with_its_pip_command(two, monkeypatch, tmp_path, hidden, args, message):
    monkeypatch.chdir(tmp_path)
    for module in [m for m in sys.modules if m == hidden or m.startswith(hidden + ".")] + [hidden]:
        monkeypatch.setitem(sys.modules, module, None)  # import fails, as when it is not installed
    assert one_error(invoke("plot", *two, *args)) == message
    assert not (tmp_path / "x.png").exists()


def test_plot_has_help_with_examples_and_completes_run_directories(two):
    result = invoke("plot", "--help")
    assert result.exit_code == 0 and "Example" in result.stdout and "--x [steps|time]" in result.stdout
    env = {"_SEQGEN_COMPLETE": "bash_complete", "COMP_WORDS": "seqgen plot lstm ", "COMP_CWORD": "3"}
    completed = CliRunner().invoke(cli, [], env=env, prog_name="seqgen").stdout.splitlines()
    assert sorted(completed) == ["plain,gru", "plain,lstm"]  # the runs here (a second one to compare)


# -- training --------------------------------------------------------------------------------------

def test_training_draws_curves_png_at_each_evaluation(tmp_path, corpus_file):
    out = tmp_path / "run"
    result = invoke("train", corpus_file, "--out", out, *TINY, "--max-steps", "20")
    assert result.exit_code == 0, result.output
    data = (out / CURVES).read_bytes()
    assert data.startswith(PNG_MAGIC) and is_own(out / CURVES)
    assert "Warning" not in result.stderr


@pytest.mark.parametrize("share,drawn", [(1e9, [1, 2, 3]), (1e-9, [3])])
def test_drawing_takes_a_share_of_the_time_and_the_last_evaluation_is_drawn(tmp_path, corpus_file, monkeypatch,
                                                                           share, drawn):
    from seqgen import train

    evaluations = []  # how many evaluations each drawing shows
    real = curves.curves_png

    def drawing(runs, *args):
        assert [run.name for run in runs] == ["run"]  # the run directory's name, not the path training was given
        evaluations.append(len(runs[0].step))
        return real(runs, *args)

    monkeypatch.setattr(curves, "curves_png", drawing)
    monkeypatch.setattr(train, "CURVES_SHARE", share)  # drawing may take all the time, or next to none
    assert invoke("train", corpus_file, "--out", tmp_path / "run", *TINY).exit_code == 0  # 3 evaluations
    assert evaluations == drawn


def test_training_without_matplotlib_draws_nothing_and_says_nothing(tmp_path, corpus_file, monkeypatch):
    for module in [m for m in sys.modules if m.startswith("matplotlib")] + ["matplotlib"]:
        monkeypatch.setitem(sys.modules, module, None)
    result = invoke("train", corpus_file, "--out", tmp_path / "run", *TINY, "--max-steps", "20")
    assert result.exit_code == 0, result.output
    assert not (tmp_path / "run" / CURVES).exists() and "curves" not in result.stderr


def test_a_drawing_that_fails_is_said_once_and_training_goes_on(tmp_path, corpus_file, monkeypatch):
    def broken(*args, **kwargs):
        raise RuntimeError("the font cache is broken")

    monkeypatch.setattr(curves, "curves_png", broken)
    result = invoke("train", corpus_file, "--out", tmp_path / "run", *TINY)  # 3 evaluations
    assert result.exit_code == 0, result.output
    assert result.stderr.count("Warning: no curves.png for this run (the font cache is broken)") == 1
    assert (tmp_path / "run" / "best.safetensors").exists()


def test_a_users_curves_png_is_never_replaced(tmp_path, corpus_file):
    run = tmp_path / "run"
    assert invoke("train", corpus_file, "--out", run, *TINY, "--max-steps", "10").exit_code == 0
    (run / CURVES).write_bytes(PNG_MAGIC + b"a picture of my own")
    assert not is_own(run / CURVES)
    result = invoke("train", corpus_file, "--out", run, "--resume", "--max-steps", "20")
    assert result.exit_code == 0 and "is not a picture seqgen drew; leaving it as it is" in result.stderr
    assert (run / CURVES).read_bytes() == PNG_MAGIC + b"a picture of my own"
    with pytest.raises(Exception, match="curves.png is not a file seqgen wrote"):
        check_new_run(run, force=True)


def test_tensorboard_without_the_package_is_refused_before_training(tmp_path, corpus_file, monkeypatch):
    monkeypatch.setitem(sys.modules, "tensorboard", None)
    result = invoke("train", corpus_file, "--out", tmp_path / "run", *TINY, "--tensorboard")
    assert one_error(result) == "Error: --tensorboard needs tensorboard: pip install tensorboard"
    assert not (tmp_path / "run").exists()


class FakeWriter:
    """Records what training gives torch's SummaryWriter."""

    made: list = []

    def __init__(self, log_dir, purge_step=None):
        self.log_dir, self.purge_step, self.scalars, self.flushes, self.closed = log_dir, purge_step, [], 0, False
        FakeWriter.made.append(self)

    def add_scalar(self, tag, value, step):
        assert isinstance(value, float) and isinstance(step, int)
        self.scalars.append((step, tag))

    def flush(self):
        self.flushes += 1

    def close(self):
        self.closed = True


def test_tensorboard_logs_each_evaluation_and_a_resume_hides_what_it_repeats(tmp_path, corpus_file, monkeypatch):
    monkeypatch.setattr(curves, "need_tensorboard", lambda: None)
    monkeypatch.setattr(curves, "summary_writer", lambda: FakeWriter)
    monkeypatch.setattr(FakeWriter, "made", [])
    run = tmp_path / "run"
    assert invoke("train", corpus_file, "--out", run, *TINY, "--max-steps", "20", "--tensorboard").exit_code == 0
    assert invoke("train", corpus_file, "--out", run, "--resume", "--max-steps", "30", "--tensorboard").exit_code == 0
    first, resumed = FakeWriter.made
    assert first.log_dir == str(run / TENSORBOARD) and first.purge_step is None and first.closed
    assert first.scalars == [(step, tag) for step in (10, 20) for tag in ("loss", "val_loss", "lr")]
    assert first.flushes == 2  # at each evaluation: TensorBoard shows the run as it goes
    assert resumed.purge_step == 21 and resumed.closed  # what a killed run logged after step 20 is hidden
    assert resumed.scalars == [(30, "loss"), (30, "val_loss"), (30, "lr")]
    assert invoke("train", corpus_file, "--out", tmp_path / "plain", *TINY, "--max-steps", "10").exit_code == 0
    assert len(FakeWriter.made) == 2  # only when asked


def test_tensorboard_events_are_the_runs_own_and_go_when_it_starts_over(tmp_path):
    run = tmp_path / "run"
    board = run / TENSORBOARD
    board.mkdir(parents=True)
    (board / "events.out.tfevents.1764600000.host.123.0").write_bytes(b"events")
    assert is_own(board)
    clear_run(run)
    assert not board.exists()
    board.mkdir()
    (board / "notes.txt").write_text("mine")
    assert not is_own(board)
    clear_run(run)
    assert (board / "notes.txt").read_text() == "mine"
