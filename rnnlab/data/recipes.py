"""Named dataset recipes: download once, cache, hand back a path for `data.path`.

    >>> from rnnlab.data.recipes import fetch
    >>> fetch("ptb")            # doctest: +SKIP
    PosixPath('/home/me/.cache/rnnlab/ptb')      # train.txt valid.txt test.txt

| name | what | `data.path` it gives |
| --- | --- | --- |
| `ptb` | Penn Treebank, Mikolov's preprocessing (simple-examples.tgz) | directory with train/valid/test.txt |
| `wikitext-2` | WikiText-2 (v1, tokenised, `<unk>` applied) | directory with train/valid/test.txt |
| `tinyshakespeare` | Karpathy's char-rnn Shakespeare (1.1 MB) | the text file itself (split by data.valid_fraction) |
| `brown` | Brown corpus from NLTK's brown.zip, split as in Bengio et al. (2003) | directory with train/valid/test.txt |

Cache: `$RNNLAB_DATA` if set, else `~/.cache/rnnlab`; each recipe lives in
`<cache>/<name>/`. A recipe whose files are all there is never downloaded
again (no network is touched).

Integrity: each download is checked against the SHA-256 recorded in its recipe.
Where no hash could be recorded (the archive was not available when the recipe
was written, and a hash must never be guessed), the `sha256` is `None` and the
download is NOT verified; the hash actually seen is printed so that it can be
recorded. Some recipes also record the SHA-256 of the files they produce
(computed from known-good copies); a mismatch there is a warning.

Writes are atomic: the download goes to a temporary file, the extraction to a
temporary directory, and only a complete directory is renamed into place, so an
interrupted fetch leaves nothing half-written behind.

Offline (or any network error): a `UserError` whose one line says where to put
the files by hand, and that `--data DIR` / `data.path=DIR` uses a local copy.
"""

from __future__ import annotations

import hashlib
import io
import os
import re
import shutil
import tarfile
import tempfile
import urllib.error
import urllib.request
import warnings
import zipfile
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from rnnlab.errors import UserError

UNK = "<unk>"
TIMEOUT_S = 60


@dataclass(frozen=True)
class Recipe:
    name: str
    description: str
    url: str
    sha256: str | None  # of the downloaded file; None = unknown, not verified
    files: tuple[str, ...]  # what the recipe leaves in <cache>/<name>/
    level: str  # the data.level it is meant for
    data_path: str = ""  # relative path handed back; "" = the directory itself
    licence: str = ""
    outputs_sha256: dict = field(default_factory=dict)  # file -> SHA-256 of a known-good result


RECIPES: dict[str, Recipe] = {
    r.name: r
    for r in (
        Recipe(
            name="ptb",
            description="Penn Treebank (Mikolov's simple-examples: 10k words, <unk>, N for numbers)",
            url="https://www.fit.vutbr.cz/~imikolov/rnnlm/simple-examples.tgz",
            sha256=None,
            files=("train.txt", "valid.txt", "test.txt"),
            level="word",
            licence="research use (LDC Penn Treebank derived)",
            # valid/test as distributed in simple-examples (checked against shared copies).
            outputs_sha256={
                "valid.txt": "c9fe6985fe0d4ccb578183407d7668fc6066c20700cb4cf87d8ff1cc34df1bf2",
                "test.txt": "dd65dff31e70846b2a6030a87482edcd5d199130cdcfa1f3dccbb033728deee0",
            },
        ),
        Recipe(
            name="wikitext-2",
            description="WikiText-2 v1 (tokenised Wikipedia articles, 33k-word vocabulary, <unk> applied)",
            url="https://s3.amazonaws.com/research.metamind.io/wikitext/wikitext-2-v1.zip",
            sha256=None,
            files=("train.txt", "valid.txt", "test.txt"),
            level="word",
            licence="CC BY-SA 3.0",
        ),
        Recipe(
            name="tinyshakespeare",
            description="Tiny Shakespeare (Karpathy's char-rnn, 1.1 MB of plays)",
            url="https://raw.githubusercontent.com/karpathy/char-rnn/master/data/tinyshakespeare/input.txt",
            # SHA-256 of the 1,115,394-byte input.txt (computed from a copy of it).
            sha256="86c4e6aa9db7c042ec79f339dcb96d42b0075e16b8fc2e86bf0ca57e2dc565ed",
            files=("input.txt",),
            level="char",
            data_path="input.txt",
            licence="public domain text",
        ),
        Recipe(
            name="brown",
            description="Brown corpus, split of Bengio et al. 2003 (800k/200k/rest words; words seen <= 3 times -> "
                        "<unk>)",
            url="https://raw.githubusercontent.com/nltk/nltk_data/gh-pages/packages/corpora/brown.zip",
            sha256=None,
            files=("train.txt", "valid.txt", "test.txt"),
            level="word",
            licence="distributed with the permission of the copyright holder, redistribution permitted",
            # The split as built by this recipe's rules (checked against a known-good copy).
            outputs_sha256={
                "train.txt": "fb59b2258ef668a147e608a4580be34cbb937077790b076ec40cf745b12c71c1",
                "valid.txt": "8d1395c9223f4f05bcee8b93d00aa34992f294a25b8e538f486dde57ab728ebf",
                "test.txt": "6a696f91b337bc06514e82cbe42a433dd11324d2d5aa15f66b93ca04a4059c73",
            },
        ),
    )
}


def cache_root(cache_dir: str | Path | None = None) -> Path:
    if cache_dir is not None:
        return Path(cache_dir).expanduser()
    env = os.environ.get("RNNLAB_DATA")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "rnnlab"


def recipe(name: str) -> Recipe:
    if name not in RECIPES:
        raise UserError(f"unknown dataset '{name}'; known: {', '.join(RECIPES)}")
    return RECIPES[name]


def is_cached(name: str, cache_dir: str | Path | None = None) -> bool:
    r = recipe(name)
    target = cache_root(cache_dir) / r.name
    return all((target / f).is_file() for f in r.files)


def fetch(name: str, cache_dir: str | Path | None = None, log=None) -> Path:
    """Download (once) and prepare recipe `name`; return the path to use as `data.path`."""
    r = recipe(name)
    root = cache_root(cache_dir)
    target = root / r.name
    if not is_cached(name, cache_dir):
        try:
            root.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise UserError(f"cannot create the data cache {root}: {e.strerror or e} (set RNNLAB_DATA to "
                            "another directory)") from None
        if log:
            log(f"downloading {r.name} from {r.url}")
        payload = _download(r, target)
        _verify(r, payload, log)
        tmp = Path(tempfile.mkdtemp(prefix=f".{r.name}-", dir=root))
        try:
            for fname, data in _PREPARE[r.name](payload).items():
                (tmp / fname).write_bytes(data)
            for fname in r.files:
                with open(tmp / fname, "rb") as f:
                    os.fsync(f.fileno())
            if target.exists():  # a partial directory left by hand: replace it whole
                shutil.rmtree(target)
            os.replace(tmp, target)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        _check_outputs(r, target)
    return target / r.data_path if r.data_path else target


def _manual_hint(r: Recipe, target: Path) -> str:
    return (f"put {', '.join(r.files)} in {target} yourself (from {r.url}), "
            f"or use a local copy with --data DIR / data.path=DIR")


def _download(r: Recipe, target: Path) -> bytes:
    try:
        with urllib.request.urlopen(r.url, timeout=TIMEOUT_S) as resp:
            return resp.read()
    except urllib.error.HTTPError as e:
        reason = f"HTTP {e.code}"
    except urllib.error.URLError as e:
        reason = str(e.reason)
    except (OSError, ValueError) as e:  # timeouts, resets, truncated reads
        reason = str(e) or type(e).__name__
    reason = " ".join(reason.split())
    raise UserError(f"cannot download dataset '{r.name}' ({reason}): {_manual_hint(r, target)}")


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _verify(r: Recipe, payload: bytes, log) -> None:
    digest = _sha256(payload)
    if r.sha256 is None:
        if log:
            log(f"{r.name}: no recorded checksum, download not verified (sha256 {digest})")
        return
    if digest != r.sha256:
        raise UserError(f"download of '{r.name}' is corrupt (sha256 {digest}, expected {r.sha256}); "
                        f"try again, or {_manual_hint(r, cache_root() / r.name)}")


def _check_outputs(r: Recipe, target: Path) -> None:
    for fname, expected in r.outputs_sha256.items():
        got = _sha256((target / fname).read_bytes())
        if got != expected:
            warnings.warn(f"{r.name}: {fname} differs from the known-good copy (sha256 {got})", stacklevel=3)


# -- preparation: bytes of the download -> {file name: bytes} ----------------


def _bad_archive(name: str, why: str) -> UserError:
    return UserError(f"the downloaded archive for '{name}' is unreadable ({why}); delete it and try again")


def _from_tgz(name: str, payload: bytes, members: dict[str, str]) -> dict[str, bytes]:
    """members: output file -> suffix of the archive member to take."""
    out = {}
    try:
        with tarfile.open(fileobj=io.BytesIO(payload), mode="r:*") as tar:
            for m in tar.getmembers():
                for fname, suffix in members.items():
                    if m.isfile() and m.name.endswith(suffix) and fname not in out:
                        out[fname] = tar.extractfile(m).read()
    except (tarfile.TarError, EOFError, OSError) as e:
        raise _bad_archive(name, str(e)) from None
    missing = [s for f, s in members.items() if f not in out]
    if missing:
        raise _bad_archive(name, f"no {', '.join(missing)} in it")
    return out


def _from_zip(name: str, payload: bytes, members: dict[str, str]) -> dict[str, bytes]:
    out = {}
    try:
        with zipfile.ZipFile(io.BytesIO(payload)) as z:
            for info in z.infolist():
                for fname, suffix in members.items():
                    if not info.is_dir() and info.filename.endswith(suffix) and fname not in out:
                        out[fname] = z.read(info)
    except (zipfile.BadZipFile, OSError) as e:
        raise _bad_archive(name, str(e)) from None
    missing = [s for f, s in members.items() if f not in out]
    if missing:
        raise _bad_archive(name, f"no {', '.join(missing)} in it")
    return out


def _prepare_ptb(payload: bytes) -> dict[str, bytes]:
    return _from_tgz("ptb", payload, {f"{s}.txt": f"data/ptb.{s}.txt" for s in ("train", "valid", "test")})


def _prepare_wikitext2(payload: bytes) -> dict[str, bytes]:
    return _from_zip("wikitext-2", payload, {f"{s}.txt": f"wiki.{s}.tokens" for s in ("train", "valid", "test")})


def _prepare_tinyshakespeare(payload: bytes) -> dict[str, bytes]:
    return {"input.txt": payload}


# -- Brown, as in Bengio et al. (2003) ---------------------------------------

BROWN_TRAIN_WORDS = 800_000
BROWN_VALID_WORDS = 200_000
BROWN_MAX_RARE = 3  # words seen at most this many times in the whole corpus become <unk>
_BROWN_FILE = re.compile(r"(?:^|/)c[a-r]\d\d$")


def brown_sentences(zip_bytes: bytes) -> list[list[str]]:
    """Sentences of NLTK's brown.zip, in corpus file order (ca01, ca02, ...,
    cr09), tags stripped: each non-blank line of a file is one sentence of
    `word/tag` tokens; the word is everything before the last '/'."""
    try:
        with zipfile.ZipFile(io.BytesIO(zip_bytes)) as z:
            names = sorted((n for n in z.namelist() if _BROWN_FILE.search(n)), key=lambda n: n.rsplit("/", 1)[-1])
            if not names:
                raise _bad_archive("brown", "no corpus files ca01..cr09 in it")
            sentences = []
            for n in names:
                for line in z.read(n).decode("utf-8", errors="replace").splitlines():
                    words = [tok.rsplit("/", 1)[0] for tok in line.split()]
                    if words:
                        sentences.append(words)
    except (zipfile.BadZipFile, OSError) as e:
        raise _bad_archive("brown", str(e)) from None
    return sentences


def brown_split(sentences: list[list[str]], train_words: int = BROWN_TRAIN_WORDS,
                valid_words: int = BROWN_VALID_WORDS, max_rare: int = BROWN_MAX_RARE) -> dict[str, list[list[str]]]:
    """The split of Bengio et al. (2003): whole sentences in order; a sentence
    goes to train while fewer than `train_words` words precede it, then to
    valid while fewer than `train_words + valid_words` precede it, the rest to
    test. Words seen at most `max_rare` times in the whole corpus become <unk>."""
    counts = Counter(w for s in sentences for w in s)
    split = {"train": [], "valid": [], "test": []}
    seen = 0
    for s in sentences:
        name = "train" if seen < train_words else "valid" if seen < train_words + valid_words else "test"
        split[name].append([w if counts[w] > max_rare else UNK for w in s])
        seen += len(s)
    return split


def _prepare_brown(payload: bytes) -> dict[str, bytes]:
    parts = brown_split(brown_sentences(payload))
    return {f"{name}.txt": "".join(" ".join(s) + "\n" for s in sents).encode("utf-8") for name, sents in parts.items()}


_PREPARE = {
    "ptb": _prepare_ptb,
    "wikitext-2": _prepare_wikitext2,
    "tinyshakespeare": _prepare_tinyshakespeare,
    "brown": _prepare_brown,
}


def describe() -> list[tuple[str, str, str, bool]]:
    """(name, level, description, cached) for `rnnlab data list`."""
    return [(r.name, r.level, r.description, is_cached(r.name)) for r in RECIPES.values()]
