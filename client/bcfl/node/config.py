"""A peer node's configuration: every option of `bcfl node`, also readable from TOML."""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Literal

from bcfl import config as cfg

Role = Literal["peer", "aggregator"]
Partition = Literal["iid", "dirichlet", "label"]


@dataclass(frozen=True)
class NodeConfig:
    """One peer process. Paths are relative to the working directory."""

    rpc: str = "http://127.0.0.1:8545"
    deployment: Path = Path("deploy/deployments/31337.json")
    # Wallet: a keystore file (password from `password_env` or a prompt) or a key variable.
    keystore: Path | None = None
    password_env: str | None = None
    key_env: str | None = None
    data_dir: Path = Path(".bcfl/node")
    # "embedded" (a blockstore in data_dir), "embedded:/shared/path", a Kubo RPC URL, or "p2p":
    # a blockstore in data_dir, served to the peers named in `peers_file`, and what this peer
    # lacks fetched from them along planned paths (bcfl.node.p2p).
    storage: str = "embedded"
    peers_file: Path | None = None  # TOML: chain address -> server host:port, link figures
    listen: str | None = None  # host:port to serve on; default: this peer's entry in peers_file
    model: str = "smollm2"  # "smollm2", "tiny", or a local Hugging Face causal-LM folder
    role: Role = "peer"
    # This peer's shard of the training data: index among `peers` under a seeded partition.
    peer_index: int = 0
    peers: int = 5
    partition: Partition = "dirichlet"
    alpha: float = 0.5
    data_seed: int = 0
    # Training per round.
    local_steps: int = 4
    batch_size: int = 4
    max_tokens: int = 128
    learning_rate: float = 5e-4
    lora_rank: int = 8
    threads: int = 1
    checkpointing: bool = False  # recompute activations in backward: less memory, slower steps
    # Trust: validation examples per evaluation (how many updates each peer evaluates, and the
    # training scheme, are protocol constants in bcfl.outcome: every peer must agree on them).
    eval_examples: int = 8
    # Also score all 40 labels on the base for its accuracy in the vote file (a longer pass than
    # the loss the vote rule reads; the explorer charts it). docs/results.md 3b measures its cost.
    base_accuracy: bool = True
    # Behaviour switches for experiments and the demo.
    attack: str | None = None
    slowdown: float = 0.0  # extra seconds per round, to model a straggler
    bond_wei: int | None = None  # default: the federation's minimum bond
    max_rounds: int = 0  # stop after this round (0: run until stopped)
    poll_interval: float = 0.5
    log_format: Literal["text", "json"] = "text"
    progress: bool = True

    def __post_init__(self) -> None:
        if not 0 <= self.peer_index < self.peers:
            raise ValueError(f"peer_index {self.peer_index} is outside 0..{self.peers - 1}")
        if self.keystore and self.key_env:
            raise ValueError("give either keystore or key_env, not both")
        for name in ("local_steps", "batch_size", "max_tokens", "threads", "eval_examples", "lora_rank"):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} must be positive, got {getattr(self, name)}")
        if self.storage == "p2p" and self.peers_file is None:
            raise ValueError("storage 'p2p' needs peers_file (the TOML file naming every peer's server)")
        if self.storage != "p2p" and (self.peers_file is not None or self.listen is not None):
            raise ValueError(f"peers_file and listen apply to storage 'p2p' only, not {self.storage!r}")


def load_node_config(path: Path | None, overrides: dict[str, Any]) -> NodeConfig:
    """The config file (if any) with command-line overrides applied on top, validated."""
    base = cfg.load(NodeConfig, path) if path else NodeConfig()
    given = {k: v for k, v in overrides.items() if v is not None}
    if not given:
        return base
    merged = cfg.from_mapping(NodeConfig, {**_as_mapping(base), **given}, source="command line")
    return replace(merged)


def _as_mapping(conf: NodeConfig) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in conf.__dict__.items():
        out[key] = str(value) if isinstance(value, Path) else value
    return out
