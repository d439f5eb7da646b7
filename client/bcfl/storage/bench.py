"""Storage throughput: CID computation against sha256 and a raw read, and put/get per backend.

Each measurement is repeated on fresh random bytes (seeded), so a daemon never serves a get
from an earlier repeat's cache; figures are MiB/s of content, with median, min and max.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import random
import shutil
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from bcfl.storage.base import Storage
from bcfl.storage.cid import CHUNK_SIZE, cid_of_bytes, cid_of_file, read_chunks
from bcfl.storage.embedded import EmbeddedStorage
from bcfl.storage.errors import IntegrityError
from bcfl.storage.kubo import KuboStorage

MIB = 1024 * 1024
T = TypeVar("T")


@dataclass(frozen=True)
class Measurement:
    op: str  # what was timed
    backend: str  # memory, disk, embedded, daemon-local, daemon-bitswap
    size_bytes: int
    repeat: int
    seconds: float

    @property
    def mib_per_s(self) -> float:
        return self.size_bytes / MIB / self.seconds if self.seconds > 0 else float("inf")


def _timed(fn: Callable[..., T], *args: Any, **kwargs: Any) -> tuple[float, T]:
    start = time.perf_counter()
    result = fn(*args, **kwargs)
    return time.perf_counter() - start, result


def _drop_cache(path: Path) -> None:
    """Ask the kernel to forget the file's cached pages so the next read comes from disk."""
    with contextlib.suppress(OSError, AttributeError), open(path, "rb") as fh:
        os.fsync(fh.fileno())
        os.posix_fadvise(fh.fileno(), 0, 0, os.POSIX_FADV_DONTNEED)


def _read_all(path: Path) -> int:
    total = 0
    for chunk in read_chunks(path, 4 * CHUNK_SIZE):
        total += len(chunk)
    return total


def hashing(sizes: list[int], repeats: int, work_dir: Path, seed: int) -> Iterator[Measurement]:
    """sha256, CID in memory, raw file read (cold), CID of a file (cold)."""
    rng = random.Random(seed)
    for size in sizes:
        for repeat in range(repeats):
            data = rng.randbytes(size)
            path = work_dir / f"hash-{size}.bin"
            path.write_bytes(data)
            yield Measurement("sha256", "memory", size, repeat, _timed(hashlib.sha256, data)[0])
            yield Measurement("cid", "memory", size, repeat, _timed(cid_of_bytes, data)[0])
            _drop_cache(path)
            yield Measurement("read", "disk", size, repeat, _timed(_read_all, path)[0])
            _drop_cache(path)
            yield Measurement("cid_file", "disk", size, repeat, _timed(cid_of_file, path)[0])
            path.unlink()


def put_get(
    sizes: list[int], repeats: int, store: Storage, name: str, seed: int, reader: Storage | None = None
) -> Iterator[Measurement]:
    """put into `store`, then get (verified) from `store` and, when given, from `reader`."""
    rng = random.Random(seed)
    for size in sizes:
        for repeat in range(repeats):
            data = rng.randbytes(size)
            seconds, cid = _timed(store.put, data)
            yield Measurement("put", name, size, repeat, seconds)
            if reader is not None:  # first the remote read, before anything warms the reader's cache
                seconds, got = _timed(reader.get, cid, max_bytes=size)
                if got != data:
                    raise IntegrityError(
                        f"benchmark read back different bytes for {cid} from {reader.location}"
                    )
                yield Measurement("get", f"{name}-bitswap", size, repeat, seconds)
            seconds, got = _timed(store.get, cid, max_bytes=size)
            if got != data:
                raise IntegrityError(f"benchmark read back different bytes for {cid} from {store.location}")
            yield Measurement("get", name, size, repeat, seconds)


def run(
    work_dir: Path,
    *,
    sizes: list[int],
    repeats: int,
    daemons: bool,
    seed: int = 0,
    progress: Callable[[Measurement], None] | None = None,
) -> list[Measurement]:
    """Every measurement; daemons (two js-ipfs on loopback) are started and stopped here."""
    work_dir.mkdir(parents=True, exist_ok=True)
    out: list[Measurement] = []

    def keep(items: Iterator[Measurement]) -> None:
        for item in items:
            out.append(item)
            if progress:
                progress(item)

    keep(hashing(sizes, repeats, work_dir, seed))
    embedded_dir = work_dir / "embedded"
    shutil.rmtree(embedded_dir, ignore_errors=True)
    keep(put_get(sizes, repeats, EmbeddedStorage(embedded_dir), "embedded", seed + 1))
    shutil.rmtree(embedded_dir, ignore_errors=True)
    if daemons:
        from bcfl.storage.ipfs_daemons import start_daemons, stop_daemons

        state = work_dir / "daemons"
        shutil.rmtree(state, ignore_errors=True)
        running = start_daemons(2, state)
        try:
            a = KuboStorage(running[0].api_url, timeout=120)
            b = KuboStorage(running[1].api_url, timeout=120)
            keep(put_get(sizes, repeats, a, "daemon", seed + 2, reader=b))
        finally:
            stop_daemons(running)
            shutil.rmtree(state, ignore_errors=True)
    return out
