"""Node configuration files and the data-folder lock: clear errors, nothing half-done."""

from __future__ import annotations

from pathlib import Path

import pytest

from bcfl.config import ConfigError
from bcfl.node.config import NodeConfig, load_node_config
from bcfl.node.journal import DataDirLock, Journal, NodeLockedError, PendingUpdate, load_journal, save_journal


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "node.toml"
    path.write_text(text, encoding="utf-8")
    return path


def test_toml_values_and_overrides(tmp_path: Path) -> None:
    path = _write(tmp_path, 'model = "tiny"\npeers = 3\npeer_index = 2\nalpha = 1\nkeystore = "k.json"\n')
    conf = load_node_config(path, {"peer_index": 1, "attack": None})
    assert conf.model == "tiny" and conf.peers == 3 and conf.peer_index == 1
    assert conf.alpha == 1.0 and isinstance(conf.alpha, float)
    assert conf.keystore == Path("k.json")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("modle = 'tiny'\n", "unknown key 'modle'"),
        ("peers = 'five'\n", "key 'peers': expected an integer"),
        ("role = 'king'\n", "must be one of"),
        ("peers = [\n", "not valid TOML"),
        ("peer_index = 7\n", "peer_index 7 is outside 0..4"),
        ("local_steps = 0\n", "local_steps must be positive"),
    ],
)
def test_bad_config_files_name_the_problem(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        load_node_config(_write(tmp_path, text), {})


def test_missing_config_file_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        load_node_config(tmp_path / "absent.toml", {})


def test_defaults_are_valid() -> None:
    assert NodeConfig().role == "peer"


def test_second_node_on_the_same_data_folder_is_refused(tmp_path: Path) -> None:
    with DataDirLock(tmp_path), pytest.raises(NodeLockedError, match="in use by pid"), DataDirLock(tmp_path):
        pass
    with DataDirLock(tmp_path):  # released with the first holder
        pass


def test_journal_round_trips_atomically(tmp_path: Path) -> None:
    journal = Journal(pending=PendingUpdate(3, "bafyx", "ab" * 32, 12), submitted_rounds=[1, 2])
    journal.note(3, trained_s=1.5)
    save_journal(tmp_path, journal)
    again = load_journal(tmp_path)
    assert again.pending == journal.pending
    assert again.submitted_rounds == [1, 2] and again.rounds == {"3": {"trained_s": 1.5}}
    assert not list(tmp_path.glob("*.tmp"))
