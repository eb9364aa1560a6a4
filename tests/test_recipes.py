"""Dataset recipes with the network mocked: archives are built in memory."""

import hashlib
import io
import os
import shutil
import tarfile
import urllib.error
import urllib.request
import zipfile

import pytest
from conftest import shared_data

from rnnlab.config import DataConfig
from rnnlab.data import recipes
from rnnlab.data.corpus import load_corpus
from rnnlab.errors import UserError


class FakeResponse(io.BytesIO):
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def serve(monkeypatch, payloads: dict[str, bytes], calls: list | None = None):
    """Make urllib.request.urlopen answer each URL with the given bytes."""

    def fake_urlopen(url, timeout=None):
        if calls is not None:
            calls.append(url)
        if url not in payloads:
            raise urllib.error.URLError("unexpected URL in test")
        return FakeResponse(payloads[url])

    monkeypatch.setattr(urllib.request, "urlopen", fake_urlopen)


def offline(monkeypatch):
    def fake_urlopen(url, timeout=None):
        raise urllib.error.URLError("[Errno -3] Temporary failure in name resolution")

    monkeypatch.setattr(urllib.request, "urlopen", fake_urlopen)


def make_tgz(files: dict[str, str]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for name, text in files.items():
            data = text.encode()
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def make_zip(files: dict[str, str]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        for name, text in files.items():
            z.writestr(name, text)
    return buf.getvalue()


PTB = {"train": " the cat sat \n the dog sat \n", "valid": " the cat ran \n", "test": " a dog sat \n"}


def test_recipes_are_listed():
    assert {"ptb", "wikitext-2", "tinyshakespeare", "brown"} <= set(recipes.RECIPES)
    for r in recipes.RECIPES.values():
        assert r.url.startswith("https://")
        assert r.sha256 is None or len(r.sha256) == 64


def test_fetch_ptb_from_tgz_then_cached(tmp_path, monkeypatch):
    tgz = make_tgz({f"./simple-examples/data/ptb.{s}.txt": t for s, t in PTB.items()}
                   | {"./simple-examples/data/ptb.char.train.txt": "c a t"})
    calls = []
    serve(monkeypatch, {recipes.RECIPES["ptb"].url: tgz}, calls)
    with pytest.warns(UserWarning, match="differs from the known-good copy"):  # not the real PTB
        path = recipes.fetch("ptb", cache_dir=tmp_path)
    assert path == tmp_path / "ptb"
    for s, t in PTB.items():
        assert (path / f"{s}.txt").read_text() == t
    corpus = load_corpus(DataConfig(path=str(path), level="word"))
    assert corpus.vocab.decode(corpus.valid) == "the cat <unk>\n"  # ran: not in train
    # Second call: no network at all.
    offline(monkeypatch)
    assert recipes.fetch("ptb", cache_dir=tmp_path) == path
    assert len(calls) == 1
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temporary leftovers


def test_fetch_wikitext2_from_zip_uses_env_cache(tmp_path, monkeypatch):
    z = make_zip({f"wikitext-2/wiki.{s}.tokens": t for s, t in PTB.items()})
    serve(monkeypatch, {recipes.RECIPES["wikitext-2"].url: z})
    monkeypatch.setenv("RNNLAB_DATA", str(tmp_path / "cache"))
    path = recipes.fetch("wikitext-2")
    assert path == tmp_path / "cache" / "wikitext-2"
    assert (path / "test.txt").read_text() == PTB["test"]


def test_fetch_tinyshakespeare_checks_sha256(tmp_path, monkeypatch):
    url = recipes.RECIPES["tinyshakespeare"].url
    serve(monkeypatch, {url: b"First Citizen:\nBefore we proceed any further, hear me speak.\n"})
    with pytest.raises(UserError, match="corrupt"):
        recipes.fetch("tinyshakespeare", cache_dir=tmp_path)
    assert not (tmp_path / "tinyshakespeare").exists()
    text = b"First Citizen:\nSpeak, speak.\n"
    monkeypatch.setitem(recipes.RECIPES, "tinyshakespeare",
                        recipes.Recipe(**{**recipes.RECIPES["tinyshakespeare"].__dict__,
                                          "sha256": hashlib.sha256(text).hexdigest()}))
    serve(monkeypatch, {url: text})
    path = recipes.fetch("tinyshakespeare", cache_dir=tmp_path)
    assert path == tmp_path / "tinyshakespeare" / "input.txt" and path.read_bytes() == text


def test_real_tinyshakespeare_hash_matches_shared_copy():
    data = shared_data("tinyshakespeare.txt").read_bytes()
    assert hashlib.sha256(data).hexdigest() == recipes.RECIPES["tinyshakespeare"].sha256


@pytest.mark.parametrize("error", [urllib.error.URLError("[Errno -3] Temporary failure in name resolution"),
                                   urllib.error.HTTPError("u", 404, "Not Found", {}, None),
                                   TimeoutError("timed out")])
def test_network_errors_are_one_line_user_errors(tmp_path, monkeypatch, error):
    def fake_urlopen(url, timeout=None):
        raise error

    monkeypatch.setattr(urllib.request, "urlopen", fake_urlopen)
    for name in recipes.RECIPES:
        with pytest.raises(UserError) as e:
            recipes.fetch(name, cache_dir=tmp_path)
        msg = str(e.value)
        assert "\n" not in msg
        assert str(tmp_path / name) in msg and "--data DIR" in msg and "data.path=DIR" in msg
        assert not (tmp_path / name).exists()


def test_unknown_recipe_and_bad_archive(tmp_path, monkeypatch):
    with pytest.raises(UserError, match="unknown dataset"):
        recipes.fetch("imagenet", cache_dir=tmp_path)
    serve(monkeypatch, {recipes.RECIPES["ptb"].url: b"not a tarball"})
    with pytest.raises(UserError, match="unreadable"):
        recipes.fetch("ptb", cache_dir=tmp_path)
    serve(monkeypatch, {recipes.RECIPES["ptb"].url: make_tgz({"README": "x"})})
    with pytest.raises(UserError, match="no data/ptb.train.txt"):
        recipes.fetch("ptb", cache_dir=tmp_path)


def brown_file(sentences):
    """NLTK's format: a tab-indented line of word/tag tokens per sentence, blank lines between."""
    return "".join("\n\n\t" + " ".join(sentences_tok) + "\n" for sentences_tok in sentences)


def test_brown_rebuild_split_and_unk(tmp_path, monkeypatch):
    # 'dog' and 'ran' 4 times (kept), 'cat' 3 times and 'sat' twice (-> <unk>); case is kept, so
    # 'The' and 'Dog' (once each) become <unk> too.
    ca01 = [["The/at", "dog/nn", "ran/vbd", "./."], ["the/at", "cat/nn", "sat/vbd", "./."]]
    ca02 = [["the/at", "dog/nn", "and/cc", "the/at", "cat/nn", "./."], ["Dog/nn", "ran/vbd", "./."]]
    cb01 = [["the/at", "dog/nn", "sat/vbd", "./."], ["a/at", "cat/nn", "ran/vbd", "./."],
            ["the/at", "dog/nn", "ran/vbd", "1/2/cd", "./."]]
    z = make_zip({"brown/cb01": brown_file(cb01), "brown/ca02": brown_file(ca02), "brown/ca01": brown_file(ca01),
                  "brown/README": "Brown corpus", "brown/cats.txt": "ca01 news\n", "brown/CONTENTS": "..."})
    sentences = recipes.brown_sentences(z)
    assert sentences[0] == ["The", "dog", "ran", "."]  # ca01 first although stored after ca02
    assert sentences[-1] == ["the", "dog", "ran", "1/2", "."]  # the tag is after the last '/'
    # 8 train words, 6 valid words: train takes sentences while < 8 words precede them.
    split = recipes.brown_split(sentences, train_words=8, valid_words=6)
    assert split["train"] == [["<unk>", "dog", "ran", "."], ["the", "<unk>", "<unk>", "."]]
    assert split["valid"] == [["the", "dog", "<unk>", "the", "<unk>", "."]]
    assert split["test"][0] == ["<unk>", "ran", "."] and len(split["test"]) == 4
    assert split["test"][-1] == ["the", "dog", "ran", "<unk>", "."]
    # The whole recipe through fetch, with the real word counts.
    serve(monkeypatch, {recipes.RECIPES["brown"].url: z})
    with pytest.warns(UserWarning, match="differs from the known-good copy"):
        path = recipes.fetch("brown", cache_dir=tmp_path)
    lines = (path / "train.txt").read_text().splitlines()
    assert lines[:2] == ["<unk> dog ran .", "the <unk> <unk> ."] and len(lines) == 7  # < 800k words: all train
    assert (path / "valid.txt").read_text() == "" and (path / "test.txt").read_text() == ""


def test_brown_split_rule_reproduces_shared_split():
    d = shared_data("brown")
    parts = {
        s: [line.split() for line in (d / f"{s}.txt").read_text().splitlines()] for s in ("train", "valid", "test")
    }
    split = recipes.brown_split(parts["train"] + parts["valid"] + parts["test"])
    for s in parts:
        data = "".join(" ".join(x) + "\n" for x in split[s]).encode()
        assert hashlib.sha256(data).hexdigest() == recipes.RECIPES["brown"].outputs_sha256[f"{s}.txt"]


def test_ptb_sample_loads_through_load_corpus(tmp_path):
    src = shared_data("ptb-sample")
    for name, source in (("train.txt", "ptb.valid.txt"), ("valid.txt", "ptb.valid.txt"), ("test.txt", "ptb.test.txt")):
        os.symlink(src / source, tmp_path / name)
    corpus = load_corpus(DataConfig(path=str(tmp_path), level="word"))
    v = corpus.vocab
    assert v.itos[:2] == ["<unk>", "<eos>"]
    assert len(v) < 10_001 and "N" in v.stoi and "the" in v.stoi
    lines = (src / "ptb.valid.txt").read_text().splitlines()
    assert len(corpus.train) == sum(len(line.split()) + 1 for line in lines if line.split())
    assert (corpus.train == v.eos).sum() == len(lines)
    assert corpus.train[-1] == v.eos and v.itos[corpus.train[0]] == lines[0].split()[0]
    # The original ptb.*.txt names are recognised as well.
    other = tmp_path / "named"
    other.mkdir()
    for name, source in (("ptb.train.txt", "ptb.valid.txt"), ("ptb.valid.txt", "ptb.valid.txt"),
                         ("ptb.test.txt", "ptb.test.txt")):
        shutil.copy(src / source, other / name)
    again = load_corpus(DataConfig(path=str(other), level="word"))
    assert again.vocab.itos == v.itos and (again.test == corpus.test).all()
