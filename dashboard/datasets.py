"""The dashboard's datasets, cached server-wide: a dataset is read-only once built, so sessions can share it."""

from __future__ import annotations

import hashlib
from collections import Counter

import streamlit as st

from mlp_core import data
from mlp_core.data import DatasetError, NamesDataset
from mlp_core.registry import Run

from .state import DataChoice

MAX_UPLOAD_WORDS = 2_000_000  # keeps one upload from taking the server's memory


@st.cache_resource(show_spinner="Loading the built-in names (first time only)…", max_entries=16)
def _builtin_words(year_from: int, year_to: int, sex: str) -> tuple[str, ...]:
    return tuple(data.builtin_words(year_from, year_to, None if sex == "both" else sex))


@st.cache_resource(show_spinner=False, max_entries=4)
def _lecture_words(mtime: float) -> tuple[str, ...]:
    return tuple(data.lecture_words())  # sha256-checked: the lecture's numbers hold only for that file


@st.cache_resource(show_spinner="Building the dataset…", max_entries=32)
def _dataset(
    key: tuple, block_size: int, split_seed: int, chars: tuple[str, ...] | None, _words: tuple[str, ...]
) -> NamesDataset:
    # `_words` is left out of the cache key (hashing 30k strings on every rerun is slow): `key` identifies them.
    vocab = data.Vocab(chars) if chars is not None else None
    return data.make_dataset(list(_words), block_size=block_size, split_seed=split_seed, vocab=vocab)


def char_counts(dataset: NamesDataset) -> dict[str, int]:
    """How often each character occurs in the dataset's words (cached per dataset: an upload can be large)."""
    return _char_counts(dataset.fingerprint, dataset)


@st.cache_resource(show_spinner=False, max_entries=16)
def _char_counts(fingerprint: str, _dataset: NamesDataset) -> dict[str, int]:
    return dict(Counter("".join(_dataset.words)))


def lecture_available() -> bool:
    """True when the shipped data/names.txt is there and intact (checked once per file version)."""
    try:
        return _lecture_intact(data.LECTURE_PATH.stat().st_mtime)
    except OSError:
        return False


@st.cache_resource(show_spinner=False, max_entries=4)
def _lecture_intact(mtime: float) -> bool:
    return data.verify_sha256(data.LECTURE_PATH)


def words_for(choice: DataChoice, run: Run) -> tuple[tuple, tuple[str, ...]]:
    """(cache key, words) for a data choice; DatasetError says what is missing."""
    if choice.source == "builtin":
        return ("builtin", choice.year_from, choice.year_to, choice.sex), _builtin_words(
            choice.year_from, choice.year_to, choice.sex
        )
    if choice.source == "lecture":
        if not lecture_available():
            raise DatasetError(
                "the lecture's names.txt is missing or damaged on this server: choose 'Upload a file' "
                "and upload your copy, or use the US baby names"
            )
        mtime = data.LECTURE_PATH.stat().st_mtime
        return ("lecture", mtime), _lecture_words(mtime)
    if run.upload is None:
        raise DatasetError("no file uploaded yet: choose a text file with one name per line")
    _name, digest, words = run.upload
    return ("upload", digest), words


def dataset_for(
    choice: DataChoice, block_size: int, split_seed: int, run: Run, vocab: data.Vocab | None = None
) -> NamesDataset:
    """The dataset for the sidebar's choice at this block size and split seed (cached).

    vocab fixes the vocabulary (a checkpoint's); DatasetError if the words use characters outside it.
    """
    key, words = words_for(choice, run)
    return _dataset(key, block_size, split_seed, vocab.chars if vocab is not None else None, words)


def has_capitals(words) -> bool:
    """True when some word has a letter that lower-casing changes ('Anna': 'A' and 'a' are two tokens)."""
    chars = set("".join(words))
    return any(ch.lower() != ch for ch in chars)


def lowercased(upload: tuple[str, str, tuple[str, ...]]) -> tuple[str, str, tuple[str, ...]]:
    """An upload with every word lower-cased (its own cache key: the sha256 with a suffix)."""
    name, digest, words = upload
    return name, f"{digest}+lower", tuple(w.lower() for w in words)


def alphabet(words, limit: int = 80) -> tuple[int, str]:
    """(token count with the '.' marker, the characters as text) of a word list; a long alphabet is cut with '…'."""
    chars = sorted(set("".join(words)))
    shown = " ".join([".", *chars[:limit]]) + (" …" if len(chars) > limit else "")
    return len(chars) + 1, shown


def read_upload(name: str, raw: bytes) -> tuple[str, str, tuple[str, ...]]:
    """Validate an uploaded word list: (file name, sha256, words); DatasetError if it cannot be used."""
    words = data.parse_words(raw, source=name)
    if len(words) > MAX_UPLOAD_WORDS:
        raise DatasetError(f"{name} has {len(words):,} lines; the dashboard takes at most {MAX_UPLOAD_WORDS:,}")
    try:
        ds = data.make_dataset(words, block_size=1)  # surfaces every other problem now, not at Start
    except DatasetError as exc:
        raise DatasetError(f"{name}: {exc}") from None
    if not ds.train_words or not ds.dev_words:
        raise DatasetError(f"{name} has only {len(words)} words; the 80/10/10 split needs at least 10")
    return name, hashlib.sha256(raw).hexdigest(), tuple(words)
