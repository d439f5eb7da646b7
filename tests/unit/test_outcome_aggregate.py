"""The round's aggregate from storage: an included update that changed the frozen A factors
is left out (votes give it 0; this is the backstop against a quorum that includes it)."""

from __future__ import annotations

from pathlib import Path

import torch

from bcfl.chain.federation import ModelRef, Submission
from bcfl.learning.adapter import ADAPTER_MODEL, AdapterState, LoraSpec, key_a, key_b, to_files
from bcfl.learning.aggregate import WeightedUpdate, aggregate
from bcfl.outcome import RoundDecision, aggregate_files
from bcfl.storage.adapter_pack import load_tensors, store_adapter
from bcfl.storage.embedded import EmbeddedStorage
from bcfl.trust.pagerank import RoundScores

SPEC = LoraSpec(rank=4, alpha=8, target_modules=("q_proj",))
MODULE = "model.layers.0.self_attn.q_proj"


def _state(b_seed: int, a_seed: int = 7) -> AdapterState:
    a = torch.randn((4, 16), generator=torch.Generator().manual_seed(a_seed))
    b = torch.randn((16, 4), generator=torch.Generator().manual_seed(b_seed))
    return AdapterState(SPEC, {key_a(MODULE): a, key_b(MODULE): b})


def _submission(peer: int, cid: str, digest: bytes) -> Submission:
    return Submission(1, f"0x{peer:040x}", cid, digest, 100, 1, 0, 1, "0x", peer)


def _no_base(round_id: int) -> ModelRef:
    raise AssertionError(f"round {round_id}: no update here is late")


def _decision(included: list[Submission]) -> RoundDecision:
    return RoundDecision(1, RoundScores(1, {}, {}, {}), [], b"", included, b"", {})


def test_an_included_update_with_a_forged_frozen_factor_is_left_out(tmp_path: Path) -> None:
    store = EmbeddedStorage(tmp_path)
    base_cid, base_digest = store_adapter(store, to_files(_state(0)))
    honest = [_state(1), _state(2)]
    forged = _state(3, a_seed=99)
    subs = [
        _submission(i, *store_adapter(store, to_files(state))) for i, state in enumerate([*honest, forged])
    ]
    files = aggregate_files(
        store, ModelRef(base_cid, base_digest), 1, _decision(subs), base_of=_no_base, server_lr=1.0
    )
    got = load_tensors(files[ADAPTER_MODEL])
    expected = aggregate(
        [WeightedUpdate(s.cid, state, 100.0) for s, state in zip(subs, honest, strict=False)], "ffa"
    )
    assert torch.equal(got[key_a(MODULE)], _state(0).tensors[key_a(MODULE)])
    assert torch.equal(got[key_b(MODULE)], expected.tensors[key_b(MODULE)])


def test_when_every_included_update_is_invalid_the_base_carries_over(tmp_path: Path) -> None:
    store = EmbeddedStorage(tmp_path)
    base_files = to_files(_state(0))
    base = ModelRef(*store_adapter(store, base_files))
    forged = _submission(0, *store_adapter(store, to_files(_state(3, a_seed=99))))
    assert aggregate_files(store, base, 1, _decision([forged]), base_of=_no_base, server_lr=1.0) == base_files


def test_a_late_update_adds_its_change_to_this_rounds_base(tmp_path: Path) -> None:
    store = EmbeddedStorage(tmp_path)
    old_base, base = _state(0), _state(5)
    old_ref = ModelRef(*store_adapter(store, to_files(old_base)))
    base_ref = ModelRef(*store_adapter(store, to_files(base)))
    late = _state(3)  # trained from round 1's base, submitted to round 3
    cid, digest = store_adapter(store, to_files(late))
    sub = Submission(3, "0x" + "01" * 20, cid, digest, 100, 1, 0, 1, "0x", 0)
    files = aggregate_files(
        store, base_ref, 3, _decision([sub]), base_of={1: old_ref}.__getitem__, server_lr=1.0
    )
    got = load_tensors(files[ADAPTER_MODEL])[key_b(MODULE)]
    change = late.tensors[key_b(MODULE)].double() - old_base.tensors[key_b(MODULE)].double()
    assert torch.equal(got, (base.tensors[key_b(MODULE)].double() + change).float())


def test_the_federations_server_learning_rate_steps_from_the_base(tmp_path: Path) -> None:
    store = EmbeddedStorage(tmp_path)
    base = _state(0)
    base_ref = ModelRef(*store_adapter(store, to_files(base)))
    updates = [_state(1), _state(2)]
    subs = [_submission(i, *store_adapter(store, to_files(state))) for i, state in enumerate(updates)]
    files = aggregate_files(store, base_ref, 1, _decision(subs), base_of=_no_base, server_lr=4.0)
    got = load_tensors(files[ADAPTER_MODEL])
    mean = aggregate([WeightedUpdate(s.cid, u, 100.0) for s, u in zip(subs, updates, strict=True)], "ffa")
    start = base.tensors[key_b(MODULE)].double()
    assert torch.equal(
        got[key_b(MODULE)], (start + (mean.tensors[key_b(MODULE)].double() - start) * 4.0).float()
    )
    assert torch.equal(got[key_a(MODULE)], base.tensors[key_a(MODULE)])
