"""The peer's learner on the tiny model: attacks touch only the trained factors, and an update
that changed the frozen A factors is voted 0 without being evaluated."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from bcfl.chain.federation import Submission
from bcfl.learning import adapter as adapters
from bcfl.node.config import NodeConfig
from bcfl.node.learner import Learner, genesis_files


@pytest.fixture(scope="module")
def learner(tmp_path_factory: pytest.TempPathFactory) -> Learner:
    data_dir: Path = tmp_path_factory.mktemp("peer")
    conf = NodeConfig(
        model="tiny",
        peers=3,
        peer_index=0,
        storage=f"embedded:{data_dir / 'store'}",
        data_dir=data_dir,
        local_steps=2,
        learning_rate=1e-2,
        max_tokens=32,
        eval_examples=2,
        progress=False,
    )
    return Learner.from_config(conf, address="0x" + "11" * 20)


def _a_factors(files: dict[str, bytes]) -> dict[str, torch.Tensor]:
    from bcfl.storage.adapter_pack import load_tensors

    tensors = load_tensors(files[adapters.ADAPTER_MODEL])
    return {k: v for k, v in tensors.items() if ".lora_A." in k}


@pytest.mark.parametrize("attack", ["gaussian-noise", "sign-flip", "scaling"])
def test_update_attacks_leave_the_frozen_factors_alone(learner: Learner, attack: str) -> None:
    base = genesis_files("tiny")
    files, _ = learner.train(base, round_id=1, attack=attack)
    base_a, got_a = _a_factors(base), _a_factors(files)
    assert base_a.keys() == got_a.keys() and base_a
    assert all(torch.equal(base_a[k], got_a[k]) for k in base_a)


def test_a_candidate_with_forged_frozen_factors_gets_vote_zero(learner: Learner) -> None:
    base = genesis_files("tiny")
    honest, _ = learner.train(base, round_id=1, attack=None)
    state = adapters.from_files(honest, learner.base)
    forged = adapters.to_files(
        state.replace({k: v + 0.01 if ".lora_A." in k else v for k, v in state.tensors.items()})
    )
    peers = ["0x" + "22" * 20, "0x" + "33" * 20]
    subs = [Submission(1, p, f"cid-{i}", b"\0" * 32, 10, 0, 0, 1, "0x", i) for i, p in enumerate(peers)]
    document = learner.vote_file(
        1,
        "0x" + "11" * 20,
        base,
        [(subs[0], honest, ""), (subs[1], forged, "")],
        all_peers=["0x" + "11" * 20, *peers],
        attack=None,
    )
    votes = {v["peer"]: v["value"] for v in json.loads(document)["votes"]}
    assert votes[peers[1]] == 0
    assert votes[peers[0]] > 0


def test_an_update_oversized_against_the_voter_s_own_gets_vote_zero_unevaluated(learner: Learner) -> None:
    base = genesis_files("tiny")
    own, _ = learner.train(base, round_id=1, attack=None)
    honest, _ = learner.train(base, round_id=2, attack=None)  # another seed: a similar-sized change
    scaled, _ = learner.train(base, round_id=2, attack="scaling")  # the same change x10
    peers = ["0x" + "22" * 20, "0x" + "33" * 20]
    subs = [Submission(1, p, f"cid-{i}", b"\0" * 32, 10, 0, 0, 1, "0x", i) for i, p in enumerate(peers)]
    kwargs = {"all_peers": ["0x" + "11" * 20, *peers], "attack": None}
    candidates = [(subs[0], honest, ""), (subs[1], scaled, "")]
    document = json.loads(learner.vote_file(1, "0x" + "11" * 20, base, candidates, own_files=own, **kwargs))
    votes = {v["peer"]: v for v in document["votes"]}
    assert votes[peers[1]]["value"] == 0 and votes[peers[1]]["loss"] is None  # not evaluated
    assert votes[peers[0]]["loss"] is not None
    # Votes carry the loss alone; the base also its accuracy (all 40 labels scored once).
    assert votes[peers[0]]["accuracy"] is None and document["base"]["accuracy"] is not None
    # Without an own update (a server-mode aggregator) the reference is the candidates' median:
    # with two candidates that is their mean, which the x10 one exceeds by less than 2x.
    alone = json.loads(learner.vote_file(1, "0x" + "11" * 20, base, candidates, **kwargs))
    assert {v["peer"]: v["loss"] is not None for v in alone["votes"]} == {peers[0]: True, peers[1]: True}


def test_without_base_accuracy_the_vote_file_differs_only_in_the_base_s_accuracy(learner: Learner) -> None:
    from dataclasses import replace

    base = genesis_files("tiny")
    honest, _ = learner.train(base, round_id=1, attack=None)
    peer = "0x" + "22" * 20
    sub = Submission(1, peer, "cid-0", b"\0" * 32, 10, 0, 0, 1, "0x", 0)
    kwargs = {"all_peers": ["0x" + "11" * 20, peer], "attack": None}
    full = json.loads(learner.vote_file(1, "0x" + "11" * 20, base, [(sub, honest, "")], **kwargs))
    lean = replace(learner, conf=replace(learner.conf, base_accuracy=False))
    short = json.loads(lean.vote_file(1, "0x" + "11" * 20, base, [(sub, honest, "")], **kwargs))
    assert full["base"]["accuracy"] is not None and short["base"]["accuracy"] is None
    assert short["base"]["loss"] == full["base"]["loss"] and short["votes"] == full["votes"]
