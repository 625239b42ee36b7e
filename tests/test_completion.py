"""Shell completion: run directories for the arguments that name a run or checkpoint, built-in
corpus names for those that name a corpus, through click's own completion protocol, without
importing torch."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from seqgen.cli import cli
from seqgen.completion import builtin_corpora, runs

ROOT = Path(__file__).resolve().parents[1]


def complete(line: str, shell: str = "bash") -> list[tuple[str, str]]:
    """(type, value) of each suggestion for the last word of `line`, as the shell's script asks
    for them (`_SEQGEN_COMPLETE=bash_complete` with COMP_WORDS and COMP_CWORD)."""
    words = line.split(" ")
    env = {"_SEQGEN_COMPLETE": f"{shell}_complete", "COMP_WORDS": line, "COMP_CWORD": str(len(words) - 1)}
    result = CliRunner().invoke(cli, [], env=env, prog_name="seqgen")
    assert result.exit_code == 0, result.output
    if shell == "zsh":  # type, value and help, a line each
        lines = result.stdout.splitlines()
        return [(lines[i], lines[i + 1]) for i in range(0, len(lines), 3)]
    return [tuple(line.split(",", 1)) for line in result.stdout.splitlines()]  # type: ignore[misc]


@pytest.fixture
def workspace(tmp_path, monkeypatch):
    """A folder with two runs (one beside, one inside checkpoints/), a checkpoint file and folders
    that hold no run."""
    (tmp_path / "bard").mkdir()
    (tmp_path / "bard" / "metrics.csv").write_text("step\n")
    (tmp_path / "checkpoints" / "bach").mkdir(parents=True)
    (tmp_path / "checkpoints" / "bach" / "best.safetensors").write_bytes(b"")
    (tmp_path / "checkpoints" / "notes").mkdir()
    (tmp_path / "books").mkdir()
    (tmp_path / "books" / "a.txt").write_text("text\n")
    (tmp_path / "backup").mkdir()
    (tmp_path / "model.safetensors").write_bytes(b"")
    monkeypatch.chdir(tmp_path)
    return tmp_path


@pytest.mark.parametrize("command", ["sample", "info", "eval"])
def test_a_checkpoint_argument_offers_runs_and_checkpoints_only(workspace, command):
    offered = complete(f"seqgen {command} ")
    assert ("plain", "bard") in offered and ("plain", "checkpoints/bach") in offered
    assert ("plain", "model.safetensors") in offered
    values = {v for _, v in offered}
    assert not values & {"books", "backup", "checkpoints", "checkpoints/notes"}  # no run in them
    assert complete(f"seqgen {command} b") == [("plain", "bard")]
    assert complete(f"seqgen {command} checkpoints/") == [("plain", "checkpoints/bach")]
    assert complete(f"seqgen {command} checkpoints/bach/") == [("plain", "checkpoints/bach/best.safetensors")]
    # nothing matches: the shell's own path completion takes over, to reach a run elsewhere
    assert complete(f"seqgen {command} books/") == [("file", "books/")]


def test_train_out_offers_runs_and_otherwise_any_directory(workspace):
    assert complete("seqgen train --out ") == [("plain", "bard"), ("plain", "checkpoints/bach")]
    assert complete("seqgen train --resume --out check") == [("plain", "checkpoints/bach")]
    assert complete("seqgen train --out new-run") == [("dir", "new-run")]


def test_a_corpus_argument_offers_the_builtin_names_and_paths(workspace):
    from seqgen.corpora import BUILTINS

    names = list(builtin_corpora())  # read from the manifest as the corpora package reads it, without importing that
    assert names == list(BUILTINS) and {"python-docs", "tinyshakespeare", "bach-chorales"} <= set(names)
    offered = complete("seqgen train ")
    assert offered[0] == ("file", "")  # first: bash shows the names, and paths where no name matches
    assert [v for t, v in offered[1:]] == names and {t for t, _ in offered[1:]} == {"plain"}
    assert complete("seqgen train bach") == [("file", "bach"), ("plain", "bach-chorales"), ("plain", "bach-chorales-sample")]
    assert ("plain", "tinyshakespeare") in complete("seqgen eval bard t")
    assert ("plain", "python-docs") in complete("seqgen corpus encode p")
    assert complete("seqgen corpus download tiny") == [("plain", "tinyshakespeare")]
    zsh = complete("seqgen train bach", shell="zsh")
    assert ("plain", "bach-chorales") in zsh and ("file", "bach") in zsh


def test_fish_gets_the_same_runs(workspace):
    env = {"_SEQGEN_COMPLETE": "fish_complete", "COMP_WORDS": "seqgen sample che", "COMP_CWORD": "che"}
    result = CliRunner().invoke(cli, [], env=env, prog_name="seqgen")
    assert result.stdout.splitlines() == ["plain,checkpoints/bach"]


def test_hidden_folders_only_when_asked_and_a_huge_folder_only_in_part(workspace, monkeypatch):
    (workspace / ".old").mkdir()
    (workspace / ".old" / "metrics.csv").write_text("step\n")
    assert ".old" not in runs("") and runs(".") == [".old"]
    for i in range(30):
        (workspace / "many" / f"run{i:02d}").mkdir(parents=True)
        (workspace / "many" / f"run{i:02d}" / "metrics.csv").write_text("step\n")
    assert len(runs("many/")) == 30
    monkeypatch.setattr("seqgen.completion.LOOK_AT", 20)  # entries one Tab may read: fewer than are there
    assert len(runs("many/")) < 30


def test_the_shell_scripts_and_completion_do_not_import_torch(workspace):
    env = {**os.environ, "PYTHONPATH": str(ROOT), "_SEQGEN_COMPLETE": "bash_complete",
           "COMP_WORDS": "seqgen sample ", "COMP_CWORD": "2"}
    done = subprocess.run([sys.executable, "-X", "importtime", "-m", "seqgen"], env=env, capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 0 and "plain,bard" in done.stdout.splitlines()
    imported = {line.rsplit("|", 1)[-1].strip() for line in done.stderr.splitlines() if line.startswith("import time:")}
    assert "click" in imported and not {"torch", "numpy", "pretty_midi"} & imported
    for shell, marker in (("bash", "complete -o nosort -F"), ("zsh", "#compdef seqgen"), ("fish", "complete --no-files")):
        script = subprocess.run([sys.executable, "-m", "seqgen"], env={**env, "_SEQGEN_COMPLETE": f"{shell}_source"},
                                capture_output=True, text=True, timeout=60)
        assert script.returncode == 0 and marker in script.stdout and "_SEQGEN_COMPLETE" in script.stdout
