"""The CID builder: known CIDs (taken from a real IPFS daemon), tree shape, streaming, parsing."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bcfl.storage import dag, unixfs
from bcfl.storage.cid import (
    CHUNK_SIZE,
    MAX_LINKS,
    Cid,
    DagRoot,
    FileDagBuilder,
    cid_of_bytes,
    cid_of_directory,
    cid_of_file,
    cid_of_path,
    cid_string,
    parse_cid,
)
from bcfl.storage.errors import CidParseError, UnsupportedObject


def content(n: int) -> bytes:
    return hashlib.shake_128(b"bcfl-cid-vector").digest(n)


# `ipfs add --cid-version=1 --raw-leaves` of content(n), as answered by js-ipfs 0.66.1.
KNOWN = {
    0: "bafkreihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvyku",
    1: "bafkreiaehjyyo5gfok6yujnnx2y37tk4ajlk4eooz6pzyp4sluhffpvpre",
    CHUNK_SIZE - 1: "bafkreicxi5fxr5u46hpvz65xxslnsxj4pgbti5chvoidmp3ce6vscdvxia",
    CHUNK_SIZE: "bafkreig4vjhjvy5ta7wtuhhub2b4dsoyva2azdm6trxjxnl5p4lar6z2pu",
    CHUNK_SIZE + 1: "bafybeih2gxnbkue2n4u7xoazrsd3rjuackvksggyxciqtm6dkhdg72uega",
    1 << 20: "bafybeibsmxtl2lvuhggnzgztxr4jmzyn4brgxe6my3xvttzrl6dgtismmy",
}
KNOWN_DIRECTORY = "bafybeidf4oe3wgvrdvsgsgk7ahjnr2pyvacit4r6kl6q6xfr6jlvw3kqca"


def known_directory_files() -> dict[str, bytes]:
    return {"adapter_config.json": b'{"r": 8}\n', "adapter_model.safetensors": content(300000), "empty": b""}


@pytest.mark.parametrize("size", sorted(KNOWN))
def test_known_cids(size: int) -> None:
    assert cid_of_bytes(content(size)) == KNOWN[size]


def test_known_text_cids() -> None:
    assert cid_of_bytes(b"hello world") == "bafkreifzjut3te2nhyekklss27nh3k72ysco7y32koao5eei66wof36n5e"


def test_known_directory_cid() -> None:
    assert cid_of_directory(known_directory_files()) == KNOWN_DIRECTORY


def test_directory_cid_ignores_mapping_order() -> None:
    files = known_directory_files()
    assert cid_of_directory(dict(reversed(list(files.items())))) == KNOWN_DIRECTORY


def test_path_cid_of_folder_and_file(tmp_path: Path) -> None:
    for name, data in known_directory_files().items():
        (tmp_path / name).write_bytes(data)
    (tmp_path / ".hidden").write_bytes(b"skipped like ipfs add -r")
    assert cid_of_path(tmp_path) == KNOWN_DIRECTORY
    assert cid_of_file(tmp_path / "adapter_model.safetensors") == cid_of_bytes(content(300000))


@pytest.mark.parametrize("name", ["", ".", "..", "a/b", "nul\x00"])
def test_directory_rejects_bad_names(name: str) -> None:
    with pytest.raises(UnsupportedObject):
        cid_of_directory({name: b"x"})


def test_file_cid_streams_in_constant_memory(tmp_path: Path) -> None:
    # Not a memory measurement: the file is read through one reused chunk buffer.
    path = tmp_path / "f.bin"
    data = content(3 * CHUNK_SIZE + 17)
    path.write_bytes(data)
    assert cid_of_file(path) == cid_of_bytes(data)


def collect(data: bytes, **kw: int) -> tuple[DagRoot, dict[bytes, bytes]]:
    blocks: dict[bytes, bytes] = {}
    builder = FileDagBuilder(lambda cid, block: blocks.__setitem__(cid, bytes(block)), **kw)
    builder.update(data)
    return builder.finish(), blocks


def test_root_of_max_links_plus_one_leaves_has_two_children() -> None:
    root, blocks = collect(b"abcdefghijklmnopq", chunk_size=1, max_links=16)  # 17 leaves
    node = unixfs.decode_node(blocks[root.cid])
    assert len(node.links) == 2
    first, second = (unixfs.decode_node(blocks[link.hash]) for link in node.links)
    assert len(first.links) == 16
    assert len(second.links) == 1  # a one-leaf node, as Kubo's balanced builder makes it
    assert root.tsize == sum(len(b) for b in blocks.values())


def test_default_fanout_is_kubos() -> None:
    assert MAX_LINKS == 174 and CHUNK_SIZE == 262144


def kubo_balanced_reference(data: bytes, chunk: int, max_links: int) -> bytes:
    """An independent port of Kubo's balanced.Layout (grow the root, fill depth-first)."""
    leaves = [data[i : i + chunk] for i in range(0, len(data), chunk)] or [b""]
    pos = 0

    def leaf() -> tuple[bytes, int, int]:
        nonlocal pos
        piece = leaves[pos]
        pos += 1
        return b"\x01\x55\x12\x20" + hashlib.sha256(piece).digest(), len(piece), len(piece)

    def node(children: list[tuple[bytes, int, int]]) -> tuple[bytes, int, int]:
        links = b"".join(unixfs.encode_link(c, t) for c, t, _ in children)
        sizes = [s for _, _, s in children]
        block = unixfs.encode_node(links, unixfs.encode_file_data(sum(sizes), sizes))
        return (
            b"\x01\x70\x12\x20" + hashlib.sha256(block).digest(),
            len(block) + sum(t for _, t, _ in children),
            sum(sizes),
        )

    def fill(children: list[tuple[bytes, int, int]], depth: int) -> tuple[bytes, int, int]:
        while len(children) < max_links and pos < len(leaves):
            children.append(leaf() if depth == 1 else fill([], depth - 1))
        return node(children)

    root = leaf()
    depth = 1
    while pos < len(leaves):
        root = fill([root], depth)
        depth += 1
    return root[0]


@settings(max_examples=150, deadline=None)
@given(
    data=st.binary(max_size=400),
    chunk=st.integers(1, 8),
    max_links=st.integers(2, 5),
    cuts=st.lists(st.integers(0, 400), max_size=6),
)
def test_builder_matches_kubo_layout_and_streams(
    data: bytes, chunk: int, max_links: int, cuts: list[int]
) -> None:
    whole, blocks = collect(data, chunk_size=chunk, max_links=max_links)
    assert whole.cid == kubo_balanced_reference(data, chunk, max_links)
    # Any split of the input into update() calls gives the same root.
    builder = FileDagBuilder(chunk_size=chunk, max_links=max_links)
    last = 0
    for cut in sorted(min(c, len(data)) for c in cuts):
        builder.update(data[last:cut])
        last = cut
    builder.update(data[last:])
    assert builder.finish() == whole
    # And the blocks read back, verified, to the same bytes.
    fetch = lambda cid: blocks[cid.binary]  # noqa: E731
    assert dag.read_file(parse_cid(whole.cid), fetch, max_bytes=len(data)) == data
    assert whole.size == len(data)


@settings(max_examples=50, deadline=None)
@given(st.binary(max_size=2000))
def test_cid_round_trips_through_text(data: bytes) -> None:
    text = cid_of_bytes(data)
    parsed = parse_cid(text)
    assert str(parsed) == text and cid_string(parsed.binary) == text
    assert parsed.matches(data)


def test_builder_refuses_use_after_finish() -> None:
    builder = FileDagBuilder()
    builder.finish()
    with pytest.raises(RuntimeError):
        builder.update(b"x")


def test_parse_cid_v0_and_other_bases() -> None:
    v0 = parse_cid("QmbFMke1KXqnYyBBWxB74N4c5SBnJMVAiMNRcGu6x1AwQH")
    assert v0.version == 0 and str(v0) == "QmbFMke1KXqnYyBBWxB74N4c5SBnJMVAiMNRcGu6x1AwQH"
    base58 = parse_cid("zb2rhmy65F3REf8SZp7De11gxtECBGgUKaLdiDj7MCGCHxbDW")
    assert str(base58) == KNOWN[0]


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("", "empty"),
        ("hello", ""),
        (KNOWN[1][:-5], ""),
        ("bafyreibnoelefnzgwbcacyt4vh52ymxvzbjq7mmqhtcnwarfq4lzegsiqe", "codec"),  # dag-cbor
        (
            "bafkrgqfevpkejdcjkywyfaiv2e5b7thksj7vfngviwjjp6fuhzbnvcjdrpatmjxehxftrxnqqjeisj7msbh3iicxiq4yh2efqulz2ucvdl7ge",
            "hash function",
        ),  # sha2-512 raw
    ],
)
def test_parse_cid_refuses_what_it_cannot_verify(text: str, reason: str) -> None:
    with pytest.raises(CidParseError) as err:
        parse_cid(text)
    assert repr(text) in str(err.value)
    assert reason in str(err.value)


def test_identity_cid_verifies_inline_bytes() -> None:
    cid = Cid(b"\x01\x55\x00\x03abc", 1, 0x55, 0x00, b"abc")
    assert cid.matches(b"abc") and not cid.matches(b"abd")
