"""The small tiny-model federation every end-to-end test starts from (tests override fields)."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from bcfl.orchestrate import FederationSpec


def tiny_spec(tmp_path: Path, **overrides: object) -> FederationSpec:
    """4 peers (peer 3 sign-flipping), K = 3, short windows, 4 local steps of the tiny model."""
    base = FederationSpec(
        workdir=tmp_path / "fed",
        peers=4,
        attackers={3: "sign-flip"},
        model="tiny",
        async_quorum=3,
        round_duration=90,
        vote_duration=40,
        result_duration=90,
        score_threshold=450_000,
        local_steps=4,
        learning_rate=1e-2,
        max_tokens=64,
        eval_examples=8,
    )
    return replace(base, **overrides)  # type: ignore[arg-type]
