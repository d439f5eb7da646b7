"""Peer A puts an adapter into daemon A; peer B gets it from daemon B by CID (bitswap), verifies
it against the CID and the committed digest, and loads it with PEFT."""

from __future__ import annotations

from pathlib import Path

import pytest

from bcfl.storage.adapter_pack import (
    ADAPTER_MODEL,
    fetch_adapter,
    read_adapter_dir,
    store_adapter,
    write_adapter_dir,
)
from bcfl.storage.cid import cid_of_bytes
from bcfl.storage.errors import CidTimeout, IntegrityError, ObjectTooLarge
from bcfl.storage.ipfs_daemons import IpfsDaemon, load_daemons, save_daemons
from bcfl.storage.kubo import KuboStorage
from tests.integration import ipfs_fixtures

pytestmark = pytest.mark.integration
ipfs_pair = ipfs_fixtures.ipfs_pair  # the fixture, used by name below


def tiny_lora_model() -> object:
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    config = LlamaConfig(
        vocab_size=64,
        hidden_size=16,
        intermediate_size=32,
        num_hidden_layers=1,
        num_attention_heads=2,
        num_key_value_heads=2,
    )
    base = LlamaForCausalLM(config)
    model = get_peft_model(base, LoraConfig(r=2, lora_alpha=4, target_modules=["q_proj", "v_proj"]))
    with torch.no_grad():  # lora_B starts at zero; make the adapter non-trivial
        for name, param in model.named_parameters():
            if "lora_B" in name:
                param.normal_()
    return model


def test_adapter_moves_by_bitswap_and_loads(ipfs_pair: list[IpfsDaemon], tmp_path: Path) -> None:
    import torch
    from peft import PeftModel
    from transformers import LlamaForCausalLM

    model = tiny_lora_model()
    model.save_pretrained(tmp_path / "a-out")  # type: ignore[attr-defined]
    files = read_adapter_dir(tmp_path / "a-out")

    peer_a = KuboStorage(ipfs_pair[0].api_url)
    peer_b = KuboStorage(ipfs_pair[1].api_url)
    cid, digest = store_adapter(peer_a, files)  # what peer A would commit on-chain
    assert not peer_b.has(cid)

    got = fetch_adapter(peer_b, cid, digest=digest, timeout=20)
    assert got == files
    folder = write_adapter_dir(got, tmp_path / "b-in")

    base = LlamaForCausalLM(model.base_model.model.config)  # type: ignore[attr-defined]
    loaded = PeftModel.from_pretrained(base, folder)
    sent = {k: v for k, v in model.state_dict().items() if "lora_" in k}  # type: ignore[attr-defined]
    received = {k: v for k, v in loaded.state_dict().items() if "lora_" in k}
    assert sent.keys() == received.keys() and sent
    for key, value in sent.items():
        assert torch.equal(value, received[key]), key

    with pytest.raises(IntegrityError, match=cid):
        fetch_adapter(peer_b, cid, digest=bytes(32))
    with pytest.raises(ObjectTooLarge, match=cid):
        peer_b.get_directory(cid, max_bytes=len(files[ADAPTER_MODEL]) - 1)


def test_unresolvable_cid_times_out_naming_it(ipfs_pair: list[IpfsDaemon]) -> None:
    missing = cid_of_bytes(b"no daemon anywhere holds these bytes")
    with pytest.raises(CidTimeout, match=missing):
        KuboStorage(ipfs_pair[1].api_url).get(missing, timeout=1.5)


def test_daemon_record_round_trip(ipfs_pair: list[IpfsDaemon], tmp_path: Path) -> None:
    save_daemons(tmp_path, ipfs_pair)
    assert load_daemons(tmp_path) == ipfs_pair
    assert load_daemons(tmp_path / "none") == []
