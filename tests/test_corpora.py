import hashlib
import http.server
import threading
from functools import partial
from pathlib import Path

import pytest
from click.testing import CliRunner

from seqgen import corpora
from seqgen.cli import cli
from seqgen.corpora import BUILTINS, Builtin, download, load_corpus
from seqgen.errors import SeqgenError


def test_file_and_bom(tmp_path):
    path = tmp_path / "a.txt"
    path.write_bytes("\ufeffHello, wörld\n".encode("utf-8"))
    corpus = load_corpus(path)
    assert corpus.text == "Hello, wörld\n"  # the byte-order mark is not part of the text
    assert corpus.name == "a"


def test_directory_is_read_recursively_in_order_skipping_hidden(tmp_path):
    (tmp_path / "sub").mkdir()
    (tmp_path / "b.txt").write_text("second")
    (tmp_path / "a.txt").write_text("first\n")
    (tmp_path / "sub" / "c.md").write_text("third\n")
    (tmp_path / ".hidden").write_text("never")
    assert load_corpus(tmp_path).text == "first\nsecond\nthird\n"


def test_builtin_default_corpus_works_offline():
    corpus = load_corpus(None)
    assert corpus.name == corpora.DEFAULT_CORPUS
    assert len(corpus.text) > 200_000 and "assert" in corpus.text
    assert BUILTINS[corpus.name].licence


@pytest.mark.parametrize(
    "content,message",
    [
        (b"", "empty"),
        (b"  \n\n", "empty"),
        (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR", "binary"),
        ("caf\u00e9 latin-1".encode("latin-1"), "not valid UTF-8 .*offset 3"),
    ],
)
def test_bad_files_give_clear_errors(tmp_path, content, message):
    path = tmp_path / "bad.txt"
    path.write_bytes(content)
    with pytest.raises(SeqgenError, match=message):
        load_corpus(path)


def test_unknown_name_lists_the_builtins():
    with pytest.raises(SeqgenError, match="built-in: python-docs, tinyshakespeare"):
        load_corpus("no-such-thing")


@pytest.fixture
def server(tmp_path):
    """A local HTTP server on 127.0.0.1 serving tmp_path/www."""
    root = tmp_path / "www"
    root.mkdir()
    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args):
            pass

    handler = partial(Quiet, directory=str(root))
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield root, f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


@pytest.fixture
def fake_builtin(server, tmp_path, monkeypatch):
    root, base = server
    data = "To be, or not to be\n".encode()
    (root / "input.txt").write_bytes(data)
    monkeypatch.setenv("SEQGEN_CACHE_DIR", str(tmp_path / "cache"))
    builtin = Builtin("fake", "test", "test", "test", "1 kB", url=f"{base}/input.txt",
                      sha256=hashlib.sha256(data).hexdigest())
    monkeypatch.setitem(BUILTINS, "fake", builtin)
    return builtin


def test_download_verifies_and_caches(fake_builtin):
    assert not fake_builtin.available
    path = download(fake_builtin)
    assert path.read_text() == "To be, or not to be\n"
    assert load_corpus("fake").text == "To be, or not to be\n"
    assert fake_builtin.available


def test_download_on_first_use(fake_builtin):
    assert load_corpus("fake").text.startswith("To be")


def test_checksum_mismatch_saves_nothing(fake_builtin, monkeypatch):
    monkeypatch.setitem(BUILTINS, "fake", Builtin(**{**fake_builtin.__dict__, "sha256": "0" * 64}))
    with pytest.raises(SeqgenError, match="SHA-256"):
        download(BUILTINS["fake"])
    assert not list(fake_builtin.cache_path.parent.glob("*"))


def test_unreachable_server_is_a_clear_error(fake_builtin, server):
    with pytest.raises(SeqgenError, match="could not download fake"):
        download(fake_builtin, url=f"{server[1]}/missing.txt")


def test_cli_download_and_list(fake_builtin):
    runner = CliRunner()
    result = runner.invoke(cli, ["corpus", "download", "fake"])
    assert result.exit_code == 0, result.output
    assert result.stdout.strip() == str(fake_builtin.cache_path)
    listing = runner.invoke(cli, ["corpus", "list"]).output
    assert "python-docs" in listing and "tinyshakespeare" in listing and "licence" in listing


def test_a_builtin_converted_meanwhile_by_another_process_is_used(tmp_path, monkeypatch):
    monkeypatch.setenv("SEQGEN_CACHE_DIR", str(tmp_path))

    def convert(scratch):  # as if another rank of the same run finished the conversion first
        (scratch / "a.mid").write_bytes(b"ours")
        rival.cache_path.mkdir(parents=True)
        (rival.cache_path / "a.mid").write_bytes(b"theirs")

    rival = Builtin("race", "test", "test", "test", "1 kB", kind="midi", convert=convert)
    assert corpora.builtin_directory(rival) == rival.cache_path
    assert (rival.cache_path / "a.mid").read_bytes() == b"theirs"
    assert [p.name for p in tmp_path.joinpath("corpora").iterdir()] == ["race"]  # no scratch left


@pytest.mark.parametrize("raw,read,converted", [
    ("one\r\ntwo\r\n", "one\ntwo\n", 2),  # Windows
    ("one\rtwo\r", "one\ntwo\n", 2),  # classic Mac OS, and War and Peace as distributed
    ("one\r\rtwo\n", "one\n\ntwo\n", 2),  # mixed: each CR is a line end
    ("one\ntwo", "one\ntwo", 0),
])
def test_line_ends_are_read_as_newlines_unless_kept(tmp_path, raw, read, converted):
    path = tmp_path / "old.txt"
    path.write_bytes(raw.encode())
    corpus = load_corpus(path)
    assert (corpus.text, corpus.line_ends_converted) == (read, converted)
    kept = load_corpus(path, keep_line_endings=True)
    assert (kept.text, kept.line_ends_converted, kept.describe()["keep_line_endings"]) == (raw, 0, True)


def test_a_crlf_split_between_pieces_is_one_line_end():
    ends = corpora.LineEnds()
    assert [ends("a\r", final=False), ends("\nb\r", final=False), ends("", final=True)] == ["a", "\nb", "\n"]
    assert ends.converted == 2


def test_the_bundled_samples_read_as_their_kind():
    root = Path(__file__).resolve().parents[1] / "corpora"
    text = load_corpus(root / "shakespeare-sonnets.txt")
    assert text.kind == "text" and text.text.startswith("XVIII\n\nShall I compare thee") and len(text.text) == 2466
    music = load_corpus(root / "bach-chorales-sample")
    assert music.kind == "midi" and len(music.files) == 10
