"""`seqgen corpus encode`: token ids written once to disk, read back through a memory map."""

import hashlib
import json

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from seqgen import checkpoint, corpora
from seqgen.cli import cli
from seqgen.config import ModelConfig, TrainConfig
from seqgen.corpora import EncodedCorpus, TextCorpus, encode_corpus, load_corpus, open_encoded
from seqgen.errors import SeqgenError
from seqgen.tokenizers import CharTokenizer, tokenizer_from_dict
from seqgen.train import Trainer

from .conftest import TINY_MODEL, TINY_TRAIN

# Non-ASCII of every UTF-8 length (é: 2 bytes, 東: 3, 🎵: 4), CRLF line ends, no final newline.
TEXT = "Ça va? Très bien — naïve café, 東京 ✓ 🎵\r\nsecond line\ttab\r\n" * 5 + "end 🎵"
READ = TEXT.replace("\r\n", "\n")  # as it is read unless --keep-line-endings


def quiet(message):
    pass


def encode(spec, out, **kw):
    return encode_corpus(spec, out, log=quiet, **kw)


def expect_same(out, spec, keep=False):
    """`out` holds exactly what the format promises for load_corpus(spec).text."""
    text = load_corpus(spec, keep_line_endings=keep).text
    tokenizer = CharTokenizer.fit(text)
    assert sorted(p.name for p in out.iterdir()) == ["corpus.json", "ids.bin", "tokenizer.json"]
    assert (out / "ids.bin").read_bytes() == tokenizer.encode(text).tobytes()
    saved = json.loads((out / "tokenizer.json").read_text())
    assert saved == tokenizer.to_dict() and tokenizer_from_dict(saved).chars == tokenizer.chars
    meta = json.loads((out / "corpus.json").read_text())
    assert meta["sha256"] == hashlib.sha256(text.encode("utf-8")).hexdigest()
    assert meta["tokens"] == len(text)
    return meta


@pytest.fixture
def bom_file(tmp_path):
    path = tmp_path / "poems.txt"
    path.write_bytes(b"\xef\xbb\xbf" + TEXT.encode("utf-8"))
    return path


@pytest.fixture
def text_dir(tmp_path):
    d = tmp_path / "books"
    (d / "sub").mkdir(parents=True)
    (d / "a.txt").write_bytes(b"\xef\xbb\xbf" + TEXT.encode())  # a BOM, no final newline
    (d / "b.txt").write_text("")  # empty: contributes nothing
    (d / "c.txt").write_text("ends with a newline\n")
    (d / "sub" / "d.md").write_text("no newline: 東")
    (d / ".hidden").write_text("never read")
    return d


def test_file_round_trip(bom_file, tmp_path):
    out = tmp_path / "enc"
    meta = encode(bom_file, out)
    assert meta == {"format": "seqgen-encoded-corpus", "version": 1, "name": "poems", "source": str(bom_file),
                    "tokens": len(READ), "dtype": "uint8", "sha256": hashlib.sha256(READ.encode()).hexdigest(),
                    "keep_line_endings": False}
    assert expect_same(out, bom_file) == meta

    corpus = load_corpus(out)
    assert isinstance(corpus, EncodedCorpus) and (corpus.name, corpus.kind) == ("poems", "text")
    assert corpus.directory == out.resolve() and corpus.spec == str(out.resolve())
    assert corpus.describe() == {"name": "poems", "kind": "text", "spec": str(out.resolve()),
                                 "source": str(bom_file), "characters": len(READ), "encoded": True,
                                 "keep_line_endings": False}
    ids, tokenizer, meta_again = open_encoded(out)
    assert isinstance(ids, np.memmap) and ids.dtype == np.uint8 and not ids.flags.writeable
    assert tokenizer_from_dict(tokenizer).decode(ids) == READ
    assert meta_again == meta


def test_directory_round_trip_joins_files_as_load_corpus_does(text_dir, tmp_path):
    meta = encode(text_dir, tmp_path / "enc")
    expect_same(tmp_path / "enc", text_dir)
    assert meta["name"] == "books"
    assert load_corpus(text_dir).text.endswith("ends with a newline\nno newline: 東\n")


def test_builtin_corpus_by_name(tmp_path):
    meta = encode("python-docs", tmp_path / "enc")
    assert meta["name"] == "python-docs"
    expect_same(tmp_path / "enc", "python-docs")


@pytest.mark.parametrize("keep", [False, True])
@pytest.mark.parametrize("chunk", [1, 2, 3, 7])
def test_characters_split_between_reads(bom_file, text_dir, tmp_path, monkeypatch, chunk, keep):
    monkeypatch.setattr(corpora.encoded, "READ_CHUNK", chunk)
    # The BOM, every é, 東 and 🎵, and every CRLF straddle reads somewhere.
    encode(bom_file, tmp_path / "file", keep_line_endings=keep)
    assert expect_same(tmp_path / "file", bom_file, keep)["tokens"] == len(TEXT if keep else READ)
    encode(text_dir, tmp_path / "dir", keep_line_endings=keep)
    expect_same(tmp_path / "dir", text_dir, keep)


def test_the_input_is_read_in_chunks(bom_file, tmp_path, monkeypatch):
    reads = []
    real = corpora.encoded._decoded

    def counting(f, *args, **kw):
        class Counted:
            def read(self, n=-1):
                reads.append(n)
                return f.read(n)

            def seek(self, offset):
                return f.seek(offset)

        return real(Counted(), *args, **kw)

    monkeypatch.setattr(corpora.encoded, "READ_CHUNK", 64)
    monkeypatch.setattr(corpora.encoded, "_decoded", counting)
    encode(bom_file, tmp_path / "enc")
    size = bom_file.stat().st_size
    chunked = [n for n in reads if n == 64]
    assert -1 not in reads and all(0 < n <= corpora.text.BINARY_SNIFF for n in reads)  # never "read it all"
    assert len(chunked) >= 2 * (size // 64)  # two passes, each in many reads
    expect_same(tmp_path / "enc", bom_file)


def test_large_vocabulary_gives_uint16(tmp_path):
    path = tmp_path / "cjk.txt"
    path.write_text("".join(chr(0x4E00 + i) for i in range(300)) * 3)
    meta = encode(path, tmp_path / "enc")
    assert meta["dtype"] == "uint16"
    assert (tmp_path / "enc" / "ids.bin").stat().st_size == 2 * 900
    expect_same(tmp_path / "enc", path)
    ids, _, _ = open_encoded(tmp_path / "enc")
    assert ids.dtype == np.uint16 and ids[:300].tolist() == list(range(300))


@pytest.mark.parametrize(
    "content,message",
    [
        (b"", "the corpus is empty"),
        (b"\xef\xbb\xbf \n\t\n", "the corpus is empty"),
        (b"text then \x00 binary", "looks like a binary file"),
        ("caf\u00e9 latin-1".encode("latin-1"), r"not valid UTF-8 \(byte 0xe9 at offset 3\)"),
        (b"x" * 50 + b"\xe6\x9d", r"not valid UTF-8 \(byte 0xe6 at offset 50\)"),  # cut short at the end
        (b"MThd\x00\x00\x00\x06", "MIDI"),
    ],
)
def test_bad_inputs_are_the_errors_load_corpus_gives(tmp_path, monkeypatch, content, message):
    monkeypatch.setattr(corpora.encoded, "READ_CHUNK", 7)  # offsets past the first read are still right
    path = tmp_path / "bad.txt"
    path.write_bytes(content)
    with pytest.raises(SeqgenError, match=message):
        encode(path, tmp_path / "enc")
    if message != "MIDI":
        with pytest.raises(SeqgenError, match=message):
            load_corpus(path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.txt"]  # no output, no scratch left


def test_midi_and_encoded_inputs_are_refused(tmp_path, bom_file):
    (tmp_path / "midi").mkdir()
    (tmp_path / "midi" / "a.mid").write_bytes(b"MThd")
    with pytest.raises(SeqgenError, match="MIDI corpus"):
        encode(tmp_path / "midi", tmp_path / "enc")
    with pytest.raises(SeqgenError, match="MIDI corpus"):
        encode("bach-chorales", tmp_path / "enc")  # refused before anything is converted
    encode(bom_file, tmp_path / "enc")
    with pytest.raises(SeqgenError, match="already an encoded corpus"):
        encode(tmp_path / "enc", tmp_path / "again")
    with pytest.raises(SeqgenError, match="not MIDI"):
        load_corpus(tmp_path / "enc", kind="midi")


def test_existing_output_needs_force_and_survives_a_failure(bom_file, text_dir, tmp_path, monkeypatch):
    out = tmp_path / "enc"
    encode(bom_file, out)
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    with pytest.raises(SeqgenError, match="not empty; --force"):
        encode(text_dir, out)
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before

    def broken(self, text):
        raise RuntimeError("disk on fire")

    monkeypatch.setattr(CharTokenizer, "encode", broken)
    with pytest.raises(RuntimeError):
        encode(text_dir, out, force=True)
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before  # the old encoding is intact
    monkeypatch.undo()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["books", "enc", "poems.txt"]

    encode(text_dir, out, force=True)
    expect_same(out, text_dir)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["books", "enc", "poems.txt"]


def test_force_replaces_only_an_earlier_encoding(bom_file, tmp_path):
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "thesis.tex").write_text("precious")
    with pytest.raises(SeqgenError, match="other than an encoded corpus"):
        encode(bom_file, mine, force=True)
    assert (mine / "thesis.tex").read_text() == "precious"
    with pytest.raises(SeqgenError, match="outside the corpus"):
        encode(mine, mine / "enc")
    with pytest.raises(SeqgenError, match="outside the corpus"):
        encode(bom_file, tmp_path, force=True)  # would delete the input
    (tmp_path / "empty").mkdir()
    encode(bom_file, tmp_path / "empty")  # an empty directory is no loss
    expect_same(tmp_path / "empty", bom_file)


def test_a_failure_midway_leaves_nothing(text_dir, tmp_path, monkeypatch):
    calls = []

    def fails_on_second_chunk(self, text):
        calls.append(text)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return np.zeros(len(text), dtype=np.uint8)

    monkeypatch.setattr(corpora.encoded, "READ_CHUNK", 16)
    monkeypatch.setattr(CharTokenizer, "encode", fails_on_second_chunk)
    with pytest.raises(KeyboardInterrupt):
        encode(text_dir, tmp_path / "deep" / "enc")
    assert len(calls) == 2
    assert not (tmp_path / "deep").exists()  # neither the output, a scratch directory, nor the folder made for them


@pytest.fixture
def encoded(bom_file, tmp_path):
    out = tmp_path / "enc"
    encode(bom_file, out)
    return out


@pytest.mark.parametrize(
    "damage,message",
    [
        (lambda d: (d / "ids.bin").write_bytes((d / "ids.bin").read_bytes()[:-1]), "ids.bin has .* bytes"),
        (lambda d: (d / "ids.bin").unlink(), "ids.bin: No such file"),
        (lambda d: (d / "tokenizer.json").write_text("{"), "unreadable tokenizer.json"),
        (lambda d: (d / "tokenizer.json").write_text('{"kind": "midi"}'), "unreadable tokenizer.json"),
        (lambda d: (d / "tokenizer.json").write_text('{"kind": "char", "chars": "aa"}'), "unreadable tokenizer"),
        (lambda d: _edit(d, version=2), "version 2; this seqgen reads"),
        (lambda d: _edit(d, format="seqgen-other"), "format 'seqgen-other'"),
        (lambda d: _edit(d, tokens="many"), "garbles tokens"),
        (lambda d: _edit(d, dtype="uint16"), "dtype uint16 do not fit"),
        (lambda d: (d / "corpus.json").write_text("not json"), "not that of an encoded corpus"),
    ],
)
def test_a_damaged_encoding_is_a_clear_error(encoded, damage, message):
    damage(encoded)
    for read in (load_corpus, open_encoded):
        with pytest.raises(SeqgenError, match=message) as e:
            read(encoded)
        assert str(encoded) in str(e.value) and "\n" not in str(e.value)


def _edit(directory, **changes):
    path = directory / "corpus.json"
    path.write_text(json.dumps({**json.loads(path.read_text()), **changes}))


def test_a_text_directory_with_its_own_corpus_json_is_still_text(tmp_path):
    (tmp_path / "corpus.json").write_text('{"title": "my notes"}\n')
    (tmp_path / "notes.txt").write_text("hello\n")
    corpus = load_corpus(tmp_path)
    assert isinstance(corpus, TextCorpus) and "my notes" in corpus.text


def test_cli_encode(bom_file, tmp_path):
    runner = CliRunner()
    out = tmp_path / "enc"
    result = runner.invoke(cli, ["corpus", "encode", str(bom_file), str(out)])
    assert result.exit_code == 0, result.output
    assert result.stdout == f"{out}\n"
    assert f"Encoded {len(READ):,} characters (vocabulary" in result.stderr
    assert "Read 10 CRLF or CR line ends as \\n (--keep-line-endings keeps them as they are)" in result.stderr
    expect_same(out, bom_file)

    again = runner.invoke(cli, ["corpus", "encode", str(bom_file), str(out)])
    assert again.exit_code == 1 and again.stdout == ""
    assert again.stderr.startswith("Error: ") and again.stderr.count("\n") == 1 and "--force" in again.stderr
    assert runner.invoke(cli, ["corpus", "encode", str(bom_file), str(out), "--force"]).exit_code == 0

    missing = runner.invoke(cli, ["corpus", "encode", str(tmp_path / "nope.txt"), str(tmp_path / "x")])
    assert missing.exit_code == 1 and missing.stderr.startswith("Error: ") and missing.stderr.count("\n") == 1
    assert "encode" in runner.invoke(cli, ["corpus", "--help"]).output


def test_training_on_the_encoding_is_training_on_the_text(corpus_file, tmp_path):
    """The contract with the trainer: same vocabulary, ids and SHA-256, so the same run."""
    encode(corpus_file, tmp_path / "enc")
    runs = {}
    for name, spec in (("text", corpus_file), ("encoded", tmp_path / "enc")):
        corpus = load_corpus(spec)
        Trainer(corpus, ModelConfig(vocab_size=0, **TINY_MODEL), TrainConfig(**{**TINY_TRAIN, "max_steps": 20}),
                tmp_path / name, tokenizer=corpus.new_tokenizer({})).run()
        runs[name] = checkpoint.read(tmp_path / name / checkpoint.LAST)
    text, encoded = runs["text"], runs["encoded"]
    assert encoded.meta["corpus"]["sha256"] == text.meta["corpus"]["sha256"]
    assert encoded.meta["corpus"]["encoded"] is True
    assert encoded.meta["tokenizer"] == text.meta["tokenizer"]
    a, b = text.group("model."), encoded.group("model.")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_leftovers_of_a_killed_encoding_are_removed_and_nothing_else(bom_file, tmp_path):
    out = tmp_path / "enc"
    killed = tmp_path / ".enc-k1ll3d00"  # what SIGKILL mid-encoding leaves: a marked scratch directory
    killed.mkdir()
    (killed / corpora.encoded.SCRATCH_MARK).touch()
    (killed / "ids.bin").write_bytes(b"\0" * 100)
    mine = tmp_path / ".enc-20261122"  # the user's own, named alike but unmarked
    mine.mkdir()
    (mine / "notes.txt").write_text("keep me")
    encode_corpus(bom_file, out, log=lambda m: None)
    assert not killed.exists() and (mine / "notes.txt").read_text() == "keep me"
    assert sorted(p.name for p in out.iterdir()) == ["corpus.json", "ids.bin", "tokenizer.json"]
