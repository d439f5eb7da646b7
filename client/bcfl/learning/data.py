"""The medical-transcriptions task data: read, pool, de-duplicate, split without leakage.

The files shipped with the package (see `bcfl/data/medical_transcriptions/README.md`) leak
train into test, so both are pooled, each distinct description (whitespace-normalised) is kept
once with its majority label (ties to the smallest id) and every label it carries, and a seeded
split stratified by that label assigns each description to exactly one of train, validation or
test. The input text of an example is the `description` column.
"""

from __future__ import annotations

import csv
import functools
import gzip
import io
import re
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import numpy as np

from bcfl.errors import BcflError

DATA_PACKAGE = "bcfl.data.medical_transcriptions"
DATA_FILES = ("train.csv.gz", "test.csv.gz")
LABELS_FILE = "labels.txt"
TEXT_COLUMN = "description"
LABEL_COLUMN = "medical_specialty"
NUM_LABELS = 40


class DataError(BcflError):
    """A data file that cannot be used as given."""


@dataclass(frozen=True)
class Row:
    """One row of a data file, as read."""

    source: str  # "file:row" (row 1 is the header), for error messages
    text: str
    label: int


@dataclass(frozen=True)
class Example:
    """One distinct description with its label (majority) and every label it carries."""

    text: str
    label: int
    labels: frozenset[int]


@dataclass(frozen=True)
class Splits:
    train: tuple[Example, ...]
    validation: tuple[Example, ...]
    test: tuple[Example, ...]
    label_names: tuple[str, ...]


@dataclass(frozen=True)
class SplitConfig:
    """Fractions of each class that go to validation and test; the rest is train."""

    validation: float = 0.1
    test: float = 0.2
    seed: int = 0

    def __post_init__(self) -> None:
        if not (0 <= self.validation < 1 and 0 <= self.test < 1 and self.validation + self.test < 1):
            raise ValueError(f"split fractions validation={self.validation} test={self.test} are invalid")


def normalise(text: str) -> str:
    """Whitespace-normalised text: the identity of a description."""
    return re.sub(r"\s+", " ", text).strip()


def read_labels(text: str, source: str = LABELS_FILE) -> tuple[str, ...]:
    names = tuple(line.strip() for line in text.splitlines() if line.strip())
    if len(names) != NUM_LABELS or len(set(names)) != NUM_LABELS:
        raise DataError(f"{source}: expected {NUM_LABELS} distinct label names, found {len(names)}")
    return names


def read_rows(text: str, source: str, num_labels: int = NUM_LABELS) -> list[Row]:
    """Rows of one CSV file; a missing column or an unknown label names the file and row."""
    reader = csv.DictReader(io.StringIO(text))
    columns = reader.fieldnames or []
    for column in (TEXT_COLUMN, LABEL_COLUMN):
        if column not in columns:
            raise DataError(
                f"{source}:1: missing column {column!r} (columns: {', '.join(columns) or 'none'})"
            )
    rows: list[Row] = []
    for number, record in enumerate(reader, start=2):
        where = f"{source}:{number}"
        raw_text, raw_label = record.get(TEXT_COLUMN), record.get(LABEL_COLUMN)
        if raw_text is None or raw_label is None:
            raise DataError(f"{where}: row has fewer fields than the header")
        try:
            label = int(raw_label.strip())
        except ValueError:
            raise DataError(f"{where}: label {raw_label!r} is not an integer") from None
        if not 0 <= label < num_labels:
            raise DataError(f"{where}: unknown label {label} (labels are 0..{num_labels - 1})")
        rows.append(Row(where, raw_text, label))
    return rows


def pool(rows: Iterable[Row]) -> list[Example]:
    """One example per distinct non-empty description, sorted by text (order-independent)."""
    counts: dict[str, Counter[int]] = defaultdict(Counter)
    for row in rows:
        text = normalise(row.text)
        if text:
            counts[text][row.label] += 1
    examples = []
    for text in sorted(counts):
        tally = counts[text]
        top = max(tally.values())
        majority = min(label for label, n in tally.items() if n == top)
        examples.append(Example(text, majority, frozenset(tally)))
    return examples


def split(examples: Sequence[Example], config: SplitConfig, label_names: Sequence[str]) -> Splits:
    """A seeded split stratified by label: each class is shuffled and cut by the fractions.

    Classes too small to spare a validation or test example stay in train, so every class that
    exists can be learnt. Texts are distinct on input, so no text lands in two splits.
    """
    if len({e.text for e in examples}) != len(examples):
        raise DataError("examples to split hold duplicate texts; pool() them first")
    rng = np.random.default_rng(config.seed)
    by_label: dict[int, list[Example]] = defaultdict(list)
    for example in sorted(examples, key=lambda e: e.text):
        by_label[example.label].append(example)
    train: list[Example] = []
    validation: list[Example] = []
    test: list[Example] = []
    for label in sorted(by_label):
        group = by_label[label]
        order = rng.permutation(len(group))
        shuffled = [group[i] for i in order]
        n_test = round(len(group) * config.test)
        n_val = round(len(group) * config.validation)
        test.extend(shuffled[:n_test])
        validation.extend(shuffled[n_test : n_test + n_val])
        train.extend(shuffled[n_test + n_val :])
    # Interleave classes so a prefix of any split is a fair sample of it.
    return Splits(
        train=_shuffled(train, rng),
        validation=_shuffled(validation, rng),
        test=_shuffled(test, rng),
        label_names=tuple(label_names),
    )


def _shuffled(items: list[Example], rng: np.random.Generator) -> tuple[Example, ...]:
    return tuple(items[i] for i in rng.permutation(len(items)))


def _read_package_text(name: str) -> str:
    return raw_package_file(name).decode("utf-8")


def read_file(path: Path) -> str:
    """A data file's text (gzip-compressed if its name ends in .gz)."""
    try:
        blob = path.read_bytes()
        return (gzip.decompress(blob) if path.suffix == ".gz" else blob).decode("utf-8")
    except (OSError, UnicodeDecodeError, gzip.BadGzipFile) as exc:
        raise DataError(f"{path}: cannot read data file ({exc})") from None


def load_examples(
    files: Sequence[Path] | None = None, labels: Path | None = None
) -> tuple[list[Example], tuple[str, ...]]:
    """Pooled, de-duplicated examples and the label names (the package's files by default)."""
    if labels is None:
        names = read_labels(_read_package_text(LABELS_FILE), LABELS_FILE)
    else:
        names = read_labels(read_file(labels), str(labels))
    rows: list[Row] = []
    if files is None:
        for name in DATA_FILES:
            rows.extend(read_rows(_read_package_text(name), name))
    else:
        for path in files:
            rows.extend(read_rows(read_file(path), str(path)))
    return pool(rows), names


def load_splits(config: SplitConfig | None = None, files: Sequence[Path] | None = None) -> Splits:
    """The seeded train/validation/test split of the pooled data set."""
    examples, names = load_examples(files)
    return split(examples, config or SplitConfig(), names)


def raw_package_file(name: str) -> bytes:
    """The decompressed bytes of one shipped file (used to check provenance digests)."""
    blob = resources.files(DATA_PACKAGE).joinpath(name).read_bytes()
    return gzip.decompress(blob) if name.endswith(".gz") else blob


@functools.cache
def label_names() -> tuple[str, ...]:
    """The 40 specialty names shipped with the data set (class N is line N)."""
    return read_labels(_read_package_text(LABELS_FILE), LABELS_FILE)
