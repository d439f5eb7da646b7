"""Vote files: canonical bytes, strict parsing with typed reasons, the vote value mapping."""

from __future__ import annotations

import json
import math

import pytest

from bcfl.trust.assignment import assign_evaluations
from bcfl.trust.votes import (
    Metrics,
    Vote,
    VoteFile,
    VoteFileError,
    check_vote_files,
    encode_votes,
    oversized,
    parse_votes,
    vote_value,
    vote_values,
)

V = "0xAaAa000000000000000000000000000000000001"
P1 = "0xbBbB000000000000000000000000000000000002"
P2 = "0xCcCc000000000000000000000000000000000003"
PEERS = [V, P1, P2]
CIDS = {V: "bafyv", P1: "bafy1", P2: "bafy2"}


def _file(**over: object) -> VoteFile:
    votes = (
        Vote(P2, "bafy2", 0.25, Metrics(2.5, 0.1)),
        Vote(P1, "bafy1", 0.75, Metrics(1.9, None)),
    )
    fields: dict[str, object] = {
        "round": 3,
        "voter": V,
        "base": Metrics(2.0, 0.3),
        "votes": votes,
        "examples": 8,
    }
    fields.update(over)
    return VoteFile(**fields)  # type: ignore[arg-type]


def _doc(vf: VoteFile | None = None) -> dict[str, object]:
    doc: dict[str, object] = json.loads(encode_votes(vf or _file()))
    return doc


def test_canonical_bytes() -> None:
    a = encode_votes(_file())
    b = encode_votes(_file(votes=tuple(reversed(_file().votes))))
    assert a == b
    assert b" " not in a
    assert a.index(b"bafy1") < a.index(b"bafy2")  # votes sorted by peer


def test_round_trip() -> None:
    vf = parse_votes(encode_votes(_file()), round=3, voter=V, known_peers=PEERS, cids=CIDS)
    assert vf.value_of(P1) == 0.75
    assert vf.base == Metrics(2.0, 0.3)
    assert encode_votes(vf) == encode_votes(_file())


def test_infinite_loss_round_trips_as_null() -> None:
    vf = _file(votes=(Vote(P1, "bafy1", 0.0, Metrics(math.inf, None)),))
    data = encode_votes(vf)
    assert b'"loss":null' in data
    assert parse_votes(data, round=3, voter=V, known_peers=PEERS).votes[0].metrics.loss == math.inf


def _reason(data: bytes, **kw: object) -> str:
    args: dict[str, object] = {"round": 3, "voter": V, "known_peers": PEERS, "cids": CIDS}
    args.update(kw)
    with pytest.raises(VoteFileError) as info:
        parse_votes(data, **args)  # type: ignore[arg-type]
    assert V in str(info.value)  # every message names the voter
    return info.value.reason


def _mutate(path: tuple[object, ...], value: object) -> bytes:
    doc = _doc()
    target: object = doc
    for key in path[:-1]:
        target = target[key]  # type: ignore[index]
    target[path[-1]] = value  # type: ignore[index]
    return json.dumps(doc).encode()


def test_rejections_carry_reasons() -> None:
    assert _reason(b"not json{") == "not_json"
    assert _reason(b"\xff\xfe") == "not_json"
    assert _reason(b"[]") == "schema"
    assert _reason(b'{"round": NaN}') == "not_json"
    assert _reason(_mutate(("extra",), 1)) == "schema"
    assert _reason(_mutate(("version",), 2)) == "schema"
    assert _reason(_mutate(("round",), 4)) == "wrong_round"
    assert _reason(_mutate(("round",), "3")) == "schema"
    assert _reason(_mutate(("voter",), P1)) == "wrong_voter"
    assert _reason(_mutate(("votes", 0, "peer"), "0x" + "9" * 40)) == "unknown_peer"
    assert _reason(_mutate(("votes", 0, "peer"), V.lower())) == "self_vote"
    assert _reason(_mutate(("votes", 0, "value"), 1.5)) == "out_of_range"
    assert _reason(_mutate(("votes", 0, "value"), -0.1)) == "out_of_range"
    assert _reason(_mutate(("votes", 0, "value"), True)) == "schema"
    assert _reason(_mutate(("votes", 0, "accuracy"), 2.0)) == "out_of_range"
    assert _reason(_mutate(("votes", 0, "cid"), "bafyother")) == "wrong_cid"
    doc = _doc()
    doc["votes"] = [doc["votes"][0], doc["votes"][0]]  # type: ignore[index]
    assert _reason(json.dumps(doc).encode()) == "duplicate"
    assert _reason(_mutate(("votes",), {})) == "schema"
    assert _reason(encode_votes(_file()), assigned=[P1]) == "not_assigned"
    assert _reason(encode_votes(_file()), max_bytes=10) == "too_large"


def test_check_vote_files_splits_valid_and_rejected() -> None:
    seed, k = b"r3", 2
    good = encode_votes(_file())
    bad_voter = P1
    files = {V: good, bad_voter: b"garbage"}
    valid, rejected = check_vote_files(files, round=3, submissions=CIDS, seed=seed, k=k)
    assert sorted(assign_evaluations(seed, V, PEERS, k)) == sorted([P1, P2])  # k = N - 1 here
    assert [vf.voter for vf in valid] == [V]
    assert [(r.voter, r.reason) for r in rejected] == [(bad_voter, "not_json")]


def test_vote_value_mapping() -> None:
    assert vote_value(2.0, 2.0) == 0.5
    assert vote_value(2.0, 2.0 * (1 - 0.02)) == pytest.approx(1 / (1 + math.exp(-1)))
    assert vote_value(2.0, 1.0) > 0.99
    assert vote_value(2.0, 3.0) < 0.01
    assert vote_value(2.0, 1.9) + vote_value(2.0, 2.1) == pytest.approx(1.0)
    assert vote_value(2.0, math.nan) == 0.0
    assert vote_value(2.0, math.inf) == 0.0
    assert vote_value(math.inf, 1.0) == 0.5
    assert vote_value(2.0, 1e308) < 1e-300
    with pytest.raises(ValueError, match="scale"):
        vote_value(1.0, 1.0, scale=0)


def _logistic(z: float) -> float:
    return 1.0 / (1.0 + math.exp(-z))


def test_vote_rule_asks_for_half_the_typical_improvement_when_updates_help() -> None:
    # median 1.8 < base 2.0: the reference is 2.0 - 0.5 x 0.2 = 1.9
    got = vote_values(2.0, [1.6, 1.8, 1.9], scale=0.005, tolerance=0.015)
    assert got[2] == pytest.approx(_logistic(3.0))  # at the reference: tolerance / scale
    assert got[0] == pytest.approx(_logistic((0.15 + 0.015) / 0.005))
    # An update that helps, but a quarter as much as the typical one, falls below 0.5; the
    # full median as the reference (share 1) would also fail the one at 1.9.
    assert vote_values(2.0, [1.6, 1.8, 1.95])[2] < 0.5
    assert vote_values(2.0, [1.6, 1.8, 1.9], median_share=1.0)[2] < 0.5
    with pytest.raises(ValueError, match="median share"):
        vote_values(2.0, [1.9], median_share=1.5)


def test_vote_rule_tolerates_the_non_iid_harm_of_honest_updates() -> None:
    # every update raises this voter's loss a little (other shards): all stay above 0.5
    got = vote_values(2.0, [2.02, 2.03, 2.025], scale=0.005, tolerance=0.015, spread=0)
    assert got[0] == pytest.approx(_logistic(1.0))
    assert all(v > 0.5 for v in got)
    # the plain curve against the base would have voted every one of them below 0.5
    assert all(vote_value(2.0, x) < 0.5 for x in (2.02, 2.03, 2.025))


def test_attackers_holding_the_median_cannot_raise_the_bar() -> None:
    # k = 3 with two attackers: the median is an attacker's loss, the base still caps the bar
    honest, a1, a2 = vote_values(2.0, [1.98, 2.3, 2.4], scale=0.005, tolerance=0.015, spread=0)
    assert honest == pytest.approx(_logistic(5.0))
    assert a1 < 1e-10 and a2 < 1e-10
    # their spread widens the bar only to the cap above the base (4.5%): still far below 0.5
    honest, a1, a2 = vote_values(2.0, [1.98, 2.3, 2.4], scale=0.005, tolerance=0.015, spread=2.0)
    assert honest == pytest.approx(_logistic((0.045 + 0.01) / 0.005))
    assert a1 == pytest.approx(_logistic((0.045 - 0.15) / 0.005)) and a1 < 1e-9


def test_vote_bar_widens_with_the_honest_spread_once_updates_stop_helping() -> None:
    # A converged federation: honest non-IID updates move this voter's loss from -3% to +3%.
    # The fixed tolerance (1.5%) fails the two that raise it most; two robust standard
    # deviations above the median (1.4826 x MAD 0.02 = 2.97%, x 2 capped at 4.5%) keep them.
    losses = [1.94, 1.98, 2.0 + 1e-9, 2.04, 2.06]
    fixed = vote_values(2.0, losses, scale=0.005, tolerance=0.015, spread=0)
    assert [v > 0.5 for v in fixed] == [True, True, True, False, False]
    wide = vote_values(2.0, losses, scale=0.005, tolerance=0.015, spread=2.0)
    assert all(v > 0.5 for v in wide)
    assert wide[4] == pytest.approx(_logistic((0.045 - 0.03) / 0.005), rel=1e-6)
    # An update more than 4.5% past the median is out however wide the spread.
    assert vote_values(2.0, [1.8, 1.9, 2.0 + 1e-9, 2.1, 2.2], spread=2.0)[4] < 0.5
    # Off by default: the fixed tolerance alone.
    assert vote_values(2.0, losses) == fixed


def test_a_wide_spread_does_not_pass_updates_that_do_not_help_where_the_typical_one_does() -> None:
    # Three updates help 5-11%; two attackers' updates change nothing useful (+0.1%) and widen
    # the spread (MAD about 5% of the base). The bar stays 4.5% past the median (-5%): they fail.
    losses = [1.78, 1.84, 1.90, 2.002, 2.002]
    got = vote_values(2.0, losses, scale=0.005, tolerance=0.015, spread=2.0)
    assert all(v > 0.5 for v in got[:3])
    assert all(v < 0.5 for v in got[3:])
    with pytest.raises(ValueError, match="spread"):
        vote_values(2.0, losses, spread=-1.0)


def test_vote_rule_edge_cases() -> None:
    # a resubmitted base changes nothing: exactly the base loss gets 0
    assert vote_values(2.0, [2.0, 1.9, 1.95])[0] == 0.0
    # non-finite losses get 0 and stay out of the median (median of 1.9, 2.1 is 2.0 = base)
    got = vote_values(2.0, [math.nan, 1.9, 2.1, math.inf], scale=0.005, tolerance=0.015)
    assert got[0] == 0.0 and got[3] == 0.0
    assert got[1] == pytest.approx(_logistic((0.05 + 0.015) / 0.005))
    # one finite loss: the base is the reference
    assert vote_values(2.0, [1.97], scale=0.005, tolerance=0.015) == [pytest.approx(_logistic(6.0))]
    assert vote_values(math.inf, [1.0, 1.2]) == [0.5, 0.5]
    assert vote_values(2.0, []) == []
    assert vote_values(2.0, [1e308, 1.0])[0] < 1e-300  # no overflow
    with pytest.raises(ValueError, match="scale"):
        vote_values(1.0, [1.0], scale=0)
    with pytest.raises(ValueError, match="tolerance"):
        vote_values(1.0, [1.0], tolerance=-0.1)


def test_vote_rule_is_order_free_and_deterministic() -> None:
    losses = [2.013, 1.987, 2.2, 1.999]
    got = vote_values(2.0, losses)
    again = vote_values(2.0, list(reversed(losses)))
    assert got == list(reversed(again))


def test_a_voter_that_judges_every_update_can_vote_against_the_base_alone() -> None:
    # Five updates that all help this voter: against half the median improvement (reference
    # 1.9) the weakest one helps too little, against the base (a server-mode aggregator's
    # reference) all pass; a resubmitted base still gets 0.
    losses = [1.70, 1.75, 1.80, 1.85, 1.96]
    by_median = vote_values(2.0, losses, scale=0.005, tolerance=0.015)
    assert sum(v > 0.5 for v in by_median) == 4
    by_base = vote_values(2.0, losses, scale=0.005, tolerance=0.015, against_median=False)
    assert all(v > 0.95 for v in by_base)
    assert vote_values(2.0, [2.0, 1.9], against_median=False)[0] == 0.0


def test_oversized_updates_are_judged_against_the_voter_s_own_or_the_median() -> None:
    assert oversized([1.0, 1.9, 2.1, 30.0], 1.0) == [False, False, True, True]
    assert oversized([1.0, 1.2, 10.0], None) == [False, False, True]  # median 1.2
    assert oversized([1.0, 3.0], 1.0, ratio=3.0) == [False, False]
    assert oversized([math.inf, math.nan, 1.0], 1.0) == [True, True, False]
    # No usable reference (a free-rider's own zero change, or nothing finite): only non-finite.
    assert oversized([5.0, math.inf], 0.0) == [False, True]
    assert oversized([math.inf], None) == [True]
    assert oversized([], 1.0) == []
    with pytest.raises(ValueError, match="ratio"):
        oversized([1.0], 1.0, ratio=0.0)
