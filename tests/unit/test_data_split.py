"""The shipped data set, its leak-free split, and clear errors for broken data files."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from bcfl.learning.data import (
    NUM_LABELS,
    DataError,
    Example,
    Row,
    SplitConfig,
    label_names,
    load_examples,
    load_splits,
    pool,
    raw_package_file,
    read_rows,
    split,
)


def test_shipped_files_are_the_originals() -> None:
    digests = {n: hashlib.sha256(raw_package_file(n)).hexdigest() for n in ("train.csv.gz", "test.csv.gz")}
    assert digests == {
        "train.csv.gz": "040add8cc1e9ae761622b398e6a7c552da04ea61b66ffa5aab8ceaa27a6125ce",
        "test.csv.gz": "c7c0acbf37f6aec667662178c5e15db2962cc3fe66449b27ccb452d811247944",
    }


def test_pooled_data_set_has_the_documented_size_and_labels() -> None:
    examples, names = load_examples()
    assert len(examples) == 2652  # 15,000 rows pooled, whitespace-normalised, de-duplicated
    assert len(names) == NUM_LABELS == len(label_names())
    assert names[1] == "Autopsy" and names[38] == "Surgery"
    assert len({e.text for e in examples}) == len(examples)
    assert all(e.label in e.labels for e in examples)
    assert sum(len(e.labels) > 1 for e in examples) == 1516


def test_split_has_no_text_in_two_splits_and_is_seeded() -> None:
    splits = load_splits(SplitConfig(seed=0))
    train = {e.text for e in splits.train}
    val = {e.text for e in splits.validation}
    test = {e.text for e in splits.test}
    assert not (train & val) and not (train & test) and not (val & test)
    assert len(train) + len(val) + len(test) == 2652
    assert (len(train), len(val), len(test)) == (1853, 266, 533)
    again = load_splits(SplitConfig(seed=0))
    assert again.test == splits.test
    other = load_splits(SplitConfig(seed=1))
    assert {e.text for e in other.test} != test


def test_split_is_stratified() -> None:
    splits = load_splits()
    for label in range(NUM_LABELS):
        n_train = sum(e.label == label for e in splits.train)
        n_test = sum(e.label == label for e in splits.test)
        total = n_train + n_test + sum(e.label == label for e in splits.validation)
        assert n_train >= 1
        assert abs(n_test - 0.2 * total) <= 1


def test_majority_label_ties_go_to_the_smallest_id() -> None:
    rows = [
        Row("f:2", "a  text", 5),
        Row("f:3", "a text", 3),
        Row("f:4", " a text ", 5),
        Row("f:5", "b", 7),
        Row("f:6", "b", 2),
        Row("f:7", "   ", 1),
    ]
    assert pool(rows) == [Example("a text", 5, frozenset({3, 5})), Example("b", 2, frozenset({2, 7}))]


def test_split_rejects_duplicates() -> None:
    dup = [Example("x", 0, frozenset({0})), Example("x", 1, frozenset({1}))]
    with pytest.raises(DataError, match="duplicate"):
        split(dup, SplitConfig(), ["n"] * NUM_LABELS)


def test_missing_column_names_the_file_and_column(tmp_path: Path) -> None:
    bad = tmp_path / "bad.csv"
    bad.write_text("id,description\n1,hello\n")
    with pytest.raises(DataError, match=r"bad\.csv:1: missing column 'medical_specialty'"):
        load_examples([bad])


@pytest.mark.parametrize(
    ("label", "message"), [("40", "unknown label 40"), ("x", "label 'x' is not an integer")]
)
def test_unknown_label_names_the_row(label: str, message: str) -> None:
    text = f"description,medical_specialty\nfine,3\nbroken,{label}\n"
    with pytest.raises(DataError, match=f"data.csv:3: {message}"):
        read_rows(text, "data.csv")


def test_gzipped_file_is_read(tmp_path: Path) -> None:
    import gzip

    path = tmp_path / "d.csv.gz"
    path.write_bytes(gzip.compress(b"description,medical_specialty\nsome text,4\n"))
    examples, _ = load_examples([path])
    assert examples == [Example("some text", 4, frozenset({4}))]
