"""Writes docs/cli.md, the reference of every `seqgen` command, from the CLI's own --help.

    python docs/cli_reference.py          # write docs/cli.md
    python docs/cli_reference.py --check  # exit 1 if docs/cli.md is not what the CLI says (a test runs this)
"""

from __future__ import annotations

import sys
from pathlib import Path

import click

from seqgen.cli import cli

OUT = Path(__file__).with_name("cli.md")


def _help(command: click.Command, path: list[str], parent: click.Context | None) -> list[tuple[str, str]]:
    """(the command line, its --help) for `command` and every command under it, in order."""
    # As the CLI makes it (its context settings: -h, the widths), without running anything.
    ctx = command.make_context(path[-1], [], parent=parent, resilient_parsing=True, terminal_width=100,
                               max_content_width=100)
    pages = [(" ".join(path), command.get_help(ctx))]
    if isinstance(command, click.Group):
        for name in command.list_commands(ctx):
            pages += _help(command.commands[name], [*path, name], ctx)
    return pages


def reference() -> str:
    lines = ["# Command-line reference", "",
             "Every command's `--help`, as this version prints it (written by `docs/cli_reference.py`;",
             "a test checks that it is current).", ""]
    for line, text in _help(cli, ["seqgen"], None):
        lines += [f"## `{line}`", "", "```text", text.rstrip(), "```", ""]
    return "\n".join(lines)


if __name__ == "__main__":
    text = reference()
    if "--check" in sys.argv[1:]:
        if not OUT.exists() or OUT.read_text(encoding="utf-8") != text:
            sys.exit(f"{OUT} is out of date: run python docs/cli_reference.py")
    else:
        OUT.write_text(text, encoding="utf-8")
