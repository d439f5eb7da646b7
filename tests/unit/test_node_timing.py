"""The node's phase recorder: exclusive nesting, idle steps as waiting, the file and the summaries."""

from __future__ import annotations

from pathlib import Path

import pytest

from bcfl.node.timing import (
    PHASES,
    PhaseRecorder,
    RoundTimes,
    TimedStorage,
    read_timings,
    split_of,
    summarise,
)
from bcfl.storage.embedded import EmbeddedStorage


class FakeClock:
    def __init__(self) -> None:
        self.t = 100.0

    def __call__(self) -> float:
        return self.t

    def tick(self, seconds: float) -> None:
        self.t += seconds


def test_nested_phases_count_exclusively_and_the_rest_is_other(tmp_path: Path) -> None:
    clock = FakeClock()
    rec = PhaseRecorder(tmp_path / "timings.json", clock=clock)
    clock.tick(7)  # start-up
    with rec.step() as step:
        step.serves(1)
        clock.tick(0.5)  # outside any phase: other
        with rec.phase("scoring"):
            clock.tick(2)
            with rec.phase("storage"):
                clock.tick(3)
                with rec.phase("chain"):
                    clock.tick(1)
            clock.tick(4)
        with rec.phase("chain"):
            clock.tick(0.25)
        rec.transaction(40_000)
    seconds = rec.rounds[1].seconds
    assert seconds["scoring"] == pytest.approx(6)
    assert seconds["storage"] == pytest.approx(3)
    assert seconds["chain"] == pytest.approx(1.25)
    assert seconds["other"] == pytest.approx(0.5)
    assert sum(seconds.values()) == pytest.approx(10.75)  # the step's wall time, nothing lost
    assert rec.startup_s == pytest.approx(7)
    assert (rec.rounds[1].transactions, rec.rounds[1].gas) == (1, 40_000)


def test_idle_steps_and_pauses_count_as_waiting_of_their_round(tmp_path: Path) -> None:
    clock = FakeClock()
    rec = PhaseRecorder(tmp_path / "timings.json", clock=clock)
    with rec.step() as step:
        step.serves(1)
        with rec.phase("training"):
            clock.tick(10)
    clock.tick(0.5)  # the loop's sleep after a step: still round 1
    with rec.step() as step:
        step.serves(1)
        with rec.phase("chain"):  # a poll that found nothing to do
            clock.tick(0.1)
        step.idle = True
    clock.tick(0.4)
    with rec.step() as step:
        step.serves(2)
        with rec.phase("training"):
            clock.tick(3)
    one = rec.rounds[1].seconds
    assert one["training"] == pytest.approx(10)
    assert one["chain"] == 0
    assert one["waiting"] == pytest.approx(1.0)
    assert rec.rounds[2].seconds["training"] == pytest.approx(3)


def test_a_failed_step_keeps_its_phases_and_the_round_it_served(tmp_path: Path) -> None:
    clock = FakeClock()
    rec = PhaseRecorder(None, clock=clock)
    with pytest.raises(RuntimeError), rec.step() as step:
        step.serves(3)
        with rec.phase("storage"):
            clock.tick(2)
            raise RuntimeError("daemon down")
    assert rec.rounds[3].seconds["storage"] == pytest.approx(2)
    with rec.step():  # failed before the round was read: counted to the last one
        clock.tick(1)
    assert rec.rounds[3].seconds["other"] == pytest.approx(1)


def test_unknown_phase_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown phase 'sleeping'"), PhaseRecorder().phase("sleeping"):
        pass


def test_file_round_trip_and_summary(tmp_path: Path) -> None:
    clock = FakeClock()
    rec = PhaseRecorder(tmp_path / "timings.json", clock=clock)
    for r, train in ((1, 8.0), (2, 6.0)):
        with rec.step() as step:
            step.round = r
            with rec.phase("training"):
                clock.tick(train)
            with rec.phase("chain"):
                clock.tick(1)
            rec.transaction(50_000)
    back = read_timings(tmp_path)
    assert set(back) == {1, 2}
    assert back[1].seconds["training"] == pytest.approx(8) and back[1].gas == 50_000
    splits = [split_of(back[r]) for r in (1, 2)]
    assert splits[0].total == pytest.approx(9)
    assert splits[0].overhead_share == pytest.approx(1 / 9)
    summary = summarise(splits)
    assert summary["training"].median == pytest.approx(7)
    assert (summary["training"].low, summary["training"].high) == (6.0, 8.0)
    assert summary["transactions"].median == 1
    assert read_timings(tmp_path / "missing") == {}


def test_split_of_an_empty_round_has_no_share() -> None:
    split = split_of(RoundTimes())
    assert split.total == 0 and split.overhead_share == 0
    assert set(split.seconds) == set(PHASES)


def test_timed_storage_counts_calls_as_storage(tmp_path: Path) -> None:
    clock = FakeClock()
    rec = PhaseRecorder(None, clock=clock)

    class SlowStore(EmbeddedStorage):
        def put(self, data: bytes) -> str:
            clock.tick(2)
            return super().put(data)

    store = TimedStorage(SlowStore(tmp_path), rec)
    with rec.step() as step:
        step.serves(1)
        with rec.phase("scoring"):
            cid = store.put(b"votes")
            clock.tick(1)
    assert store.get(cid) == b"votes" and store.has(cid)
    assert rec.rounds[1].seconds["storage"] == pytest.approx(2)
    assert rec.rounds[1].seconds["scoring"] == pytest.approx(1)


def test_entering_a_new_round_saves_the_finished_one_before_the_step_ends(tmp_path: Path) -> None:
    clock = FakeClock()
    rec = PhaseRecorder(tmp_path / "timings.json", clock=clock)
    with rec.step() as step:
        step.serves(1)
        with rec.phase("training"):
            clock.tick(5)
    clock.tick(2)
    with rec.step() as step:
        step.serves(2)
        # A node stopped here (mid-training for round 2) has round 1 on disk, its last pause included.
        saved = read_timings(tmp_path)
        assert saved[1].seconds["waiting"] == pytest.approx(2)
        assert saved[1].seconds["training"] == pytest.approx(5)


def test_bench_report_has_medians_overhead_and_every_peer_round() -> None:
    from bcfl.node.round_bench import PeerRound, RoundBenchResult, as_records, markdown, peer_table

    def times(training: float, chain: float, waiting: float, gas: int) -> RoundTimes:
        t = RoundTimes(transactions=2, gas=gas)
        t.seconds.update(training=training, chain=chain, waiting=waiting)
        return t

    samples = [
        PeerRound(1, 0, "honest", split_of(times(8, 1, 1, 90_000))),
        PeerRound(1, 1, "sign-flip", split_of(times(6, 2, 2, 80_000))),
    ]
    result = RoundBenchResult(
        command="bcfl bench round --model tiny --peers 2 --rounds 1",
        model="tiny",
        peers=2,
        rounds=1,
        quorum=2,
        storage="embedded",
        chain_seconds={1: 11.0},
        samples=samples,
        missing={},
        startup_s=[3.0, 5.0],
    )
    records = as_records(result)
    assert [r["kind"] for r in records] == ["peer_round", "peer_round", "summary"]
    assert records[0]["overhead_share"] == pytest.approx(0.1)
    assert records[-1]["summary"]["overhead_share"]["median"] == pytest.approx(0.15)
    text = markdown(result)
    assert "| training | 7.00 | 6.00-8.00 | 70.0% |" in text
    assert "15.0% (10.0%-20.0%)" in text
    assert "median 85,000 (80,000-90,000)" in text and "median 4.0 s (3.0-5.0)" in text
    assert "| 1 | peer1 | sign-flip | 10.0 |" in peer_table(result)


def test_demo_line_uses_only_peers_that_finished_the_round() -> None:
    from types import SimpleNamespace

    from bcfl.demo import _time_split

    def times(training: float, gas: int) -> RoundTimes:
        t = RoundTimes(transactions=3, gas=gas)
        t.seconds.update(training=training, chain=1.0, waiting=1.0)
        return t

    recorded = {
        0: {1: times(8, 120_000), 2: times(1, 0)},
        1: {1: times(6, 100_000), 2: times(1, 0)},
        2: {1: times(50, 0)},  # still in round 1 (a straggler): its record is incomplete
    }
    fed = SimpleNamespace(
        processes=[SimpleNamespace(index=i) for i in recorded],
        peer_timings=lambda i: recorded[i],
        wait_for_timings=lambda r, timeout: [0, 1],
    )
    line = _time_split(fed, 1)  # type: ignore[arg-type]
    assert line.startswith("median per peer (2 of 3), seconds: training 7.0, evaluation 0.0")
    assert "protocol overhead 11.2% of 9.0 s (3 transactions, 110,000 gas)" in line
