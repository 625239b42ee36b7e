"""The package's shape: no import cycles (each module can be understood, and imported, before the
ones that use it), and one registry that knows every tokenizer."""

import ast
from pathlib import Path

import seqgen
from seqgen.tokenizers import TOKENIZERS, tokenizer_from_dict

PACKAGE = Path(seqgen.__file__).parent


def imports() -> dict[str, set[str]]:
    """module -> the seqgen modules it imports anywhere in it (a function-local import too: a cycle
    hidden inside a function is still a cycle)."""
    graph = {}
    for path in PACKAGE.rglob("*.py"):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        package = parts[:-1]  # what a relative import starts from
        module = ".".join(package if path.name == "__init__.py" else parts)
        found = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.level:
                base = list(package[: len(package) - node.level + 1])
                target = ".".join([*base, *([node.module] if node.module else [])])
                found |= {f"{target}.{a.name}" for a in node.names} if node.module is None else {target}
            elif isinstance(node, ast.Import):
                found |= {a.name for a in node.names if a.name.startswith("seqgen")}
        graph[module] = found
    return {m: {d for d in deps if d in graph and d != m} for m, deps in graph.items()}


def cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}  # 1: on the current path, 2: done

    def visit(module, path):
        state[module] = 1
        for dep in sorted(graph[module]):
            if state.get(dep) == 1:
                return [*path[path.index(dep):], dep]
            if dep not in state and (found := visit(dep, [*path, dep])):
                return found
        state[module] = 2
        return None

    return next((found for m in sorted(graph) if m not in state and (found := visit(m, [m]))), None)


def test_no_module_imports_one_that_imports_it_back():
    graph = imports()
    assert "seqgen.tokenizers.midi_events" in graph and graph["seqgen.tokenizers"]  # the walk sees the package
    assert cycle(graph) is None, " -> ".join(cycle(graph) or [])


def test_the_cycle_finder_finds_one():
    assert cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert cycle({"a": {"b"}, "b": set()}) is None


def test_every_tokenizer_is_registered_and_rebuilds_from_its_own_settings():
    from seqgen.config import TOKENIZER_NAMES

    assert set(TOKENIZERS) == {"char", "midi", "midi-multitrack", "midi-duration"}
    assert {cls.name for cls in TOKENIZERS.values()} == set(TOKENIZER_NAMES)  # what --tokenizer offers
    for kind, cls in TOKENIZERS.items():
        tokenizer = cls(["a", "b"]) if kind == "char" else cls()
        again = tokenizer_from_dict(tokenizer.to_dict())
        assert type(again) is cls and again.to_dict() == tokenizer.to_dict() and again.vocab_size == tokenizer.vocab_size


def test_every_cell_is_registered_once_and_offered_by_the_command_line():
    from seqgen.cells import CELLS
    from seqgen.config import CELLS as OFFERED

    assert set(CELLS) == set(OFFERED)  # what --cell offers, known without importing torch
    modules = sorted(p.stem for p in (PACKAGE / "cells").glob("*.py") if p.stem != "__init__")
    assert modules == sorted(CELLS)  # one module per cell, named as the cell


def test_every_public_class_says_what_it_is():
    missing = [f"{path.relative_to(PACKAGE.parent)}:{node.lineno} {node.name}"
               for path in sorted(PACKAGE.rglob("*.py")) for node in ast.walk(ast.parse(path.read_text()))
               if isinstance(node, ast.ClassDef) and not node.name.startswith("_") and not ast.get_docstring(node)]
    assert not missing, missing


def test_the_cli_reference_in_docs_is_what_the_cli_says():
    import runpy

    docs = PACKAGE.parent / "docs"
    reference = runpy.run_path(str(docs / "cli_reference.py"))["reference"]
    assert (docs / "cli.md").read_text(encoding="utf-8") == reference(), "run: python docs/cli_reference.py"


def test_every_kind_of_corpus_is_one_class_behind_one_interface():
    from seqgen.corpora import CORPUS_KINDS, LABELS, Corpus

    for cls in CORPUS_KINDS:
        assert issubclass(cls, Corpus) and cls.kind in LABELS
        for member in ("claims", "open", "_size", "new_tokenizer", "dataset", "all_ids"):
            assert getattr(cls, member) is not getattr(Corpus, member), f"{cls.__name__} lacks its own {member}"
    # Outside the corpus and tokenizer packages, nothing asks which kind of data it holds.
    asking = [f"{path.relative_to(PACKAGE.parent)}:{n}" for path in sorted(PACKAGE.glob("*.py"))
              for n, line in enumerate(path.read_text().splitlines(), 1)
              if ".encoded" in line or "kind == " in line and "midi" in line]
    assert not asking, asking


def test_the_manifest_lists_every_builtin_and_the_bundled_samples_match_it():
    import fnmatch
    import json

    import pytest

    tomllib = pytest.importorskip("tomllib")  # Python 3.11 and later
    from seqgen.corpora import BUILTINS, load_corpus, tree_sha256
    from seqgen.corpora.builtins import bundled_root

    root = bundled_root()
    manifest = json.loads((root / "manifest.json").read_text())
    assert [e["name"] for e in manifest["corpora"]] == list(BUILTINS)
    for entry in manifest["corpora"]:
        assert all(entry.get(k) for k in ("kind", "source", "licence", "provenance", "description")), entry["name"]
    bundled = [b for b in BUILTINS.values() if b.bundled is not None]
    assert {b.kind for b in bundled} == {"text", "midi"}  # a sample of each kind, offline
    shipped = tomllib.loads((PACKAGE.parent / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]
    for builtin in bundled:
        assert tree_sha256(builtin.bundled) == builtin.sha256, f"{builtin.name} differs from the manifest"
        files = [builtin.bundled] if builtin.bundled.is_file() else [p for p in builtin.bundled.rglob("*") if p.is_file()]
        for f in files:  # each is in the wheel too
            assert any(fnmatch.fnmatch(f.relative_to(root).as_posix(), g) for g in shipped["seqgen.bundled"]), f
        corpus = load_corpus(builtin.name)
        assert corpus.kind == builtin.kind and corpus.spec == builtin.name and corpus.describe()["source"] == builtin.provenance
    for url in (b for b in BUILTINS.values() if b.url):
        assert len(url.sha256 or "") == 64  # a download is always verified
