"""The demo models in checkpoints/ load, say what made them, and generate."""

import io
from pathlib import Path

import pretty_midi
from click.testing import CliRunner

from seqgen import checkpoint
from seqgen.cli import cli

CHECKPOINTS = Path(__file__).resolve().parents[1] / "checkpoints"


def test_the_text_demo_writes_text():
    ckpt = checkpoint.read(CHECKPOINTS / "python-docs-lstm")
    assert ckpt.meta["corpus"]["spec"] == "python-docs" and ckpt.meta["tokenizer"]["kind"] == "char"
    result = CliRunner().invoke(cli, ["sample", str(CHECKPOINTS / "python-docs-lstm"), "--prime", "The ",
                                      "--length", "80", "--seed", "1"])
    assert result.exit_code == 0 and result.stdout.startswith("The ") and len(result.stdout) == 4 + 80 + 1


def test_the_music_demo_writes_midi():
    ckpt = checkpoint.read(CHECKPOINTS / "bach-chorales-lstm")
    assert ckpt.meta["corpus"]["spec"] == "bach-chorales" and ckpt.meta["tokenizer"]["kind"] == "midi"
    result = CliRunner().invoke(cli, ["sample", str(CHECKPOINTS / "bach-chorales-lstm"), "--seconds", "5",
                                      "--seed", "1"])
    assert result.exit_code == 0, result.output
    pm = pretty_midi.PrettyMIDI(io.BytesIO(result.stdout_bytes))
    notes = [n for i in pm.instruments for n in i.notes]
    assert len(notes) > 20 and 4.0 < pm.get_end_time() < 7.0
