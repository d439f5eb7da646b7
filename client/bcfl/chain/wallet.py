"""Wallet keys: encrypted v3 keystore files or a key in an environment variable.

Keys are held as `LocalAccount` objects and never turned back into strings here; messages name
the keystore file or the variable, never the key.
"""

from __future__ import annotations

import getpass
import json
import os
import time
from dataclasses import dataclass
from pathlib import Path

from eth_account import Account
from eth_account.signers.local import LocalAccount

from bcfl.errors import BcflError


class WalletError(BcflError):
    """A key could not be created, found or unlocked."""


@dataclass(frozen=True)
class KeystoreEntry:
    address: str
    path: Path


def new_keystore(directory: Path, password: str, *, kdf_iterations: int | None = None) -> KeystoreEntry:
    """Create a fresh key and write it as a standard v3 keystore file (mode 0600)."""
    if not password:
        raise WalletError("refusing to create a keystore with an empty password")
    account: LocalAccount = Account.create()
    encrypted = Account.encrypt(account.key, password, iterations=kdf_iterations)
    return _write_keystore(directory, account.address, encrypted)


def import_key_to_keystore(directory: Path, key_env: str, password: str) -> KeystoreEntry:
    """Encrypt the key held in environment variable `key_env` into a keystore file."""
    account = account_from_env(key_env)
    return _write_keystore(directory, account.address, Account.encrypt(account.key, password))


def _write_keystore(directory: Path, address: str, encrypted: dict[str, object]) -> KeystoreEntry:
    directory.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y-%m-%dT%H-%M-%S", time.gmtime())
    path = directory / f"UTC--{stamp}--{address[2:].lower()}.json"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        json.dump(encrypted, fh)
    return KeystoreEntry(address=address, path=path)


def list_keystores(directory: Path) -> list[KeystoreEntry]:
    """Keystore files in `directory`, with the address each holds (read without decrypting)."""
    entries = []
    for path in sorted(directory.glob("*.json")) if directory.exists() else []:
        try:
            address = json.loads(path.read_text(encoding="utf-8"))["address"]
        except (ValueError, KeyError, OSError):
            continue
        entries.append(KeystoreEntry(address=_checksum(address), path=path))
    return entries


def _checksum(address: str) -> str:
    from web3 import Web3

    return str(Web3.to_checksum_address(address if address.startswith("0x") else "0x" + address))


def load_keystore(path: Path, password: str) -> LocalAccount:
    """Unlock a keystore file; a wrong password is a clear error naming the file."""
    try:
        encrypted = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise WalletError(f"keystore file {path} does not exist") from exc
    except (OSError, ValueError) as exc:
        raise WalletError(f"keystore file {path} is not a valid keystore: {exc}") from exc
    try:
        key = Account.decrypt(encrypted, password)
    except ValueError as exc:
        raise WalletError(f"wrong password for keystore {path}") from exc
    except Exception as exc:  # malformed crypto parameters surface as assorted errors
        raise WalletError(f"keystore file {path} is not a valid keystore ({type(exc).__name__})") from exc
    account: LocalAccount = Account.from_key(key)
    return account


def account_from_env(variable: str) -> LocalAccount:
    """The key held in environment variable `variable` (hex, with or without 0x)."""
    value = os.environ.get(variable)
    if not value:
        raise WalletError(f"environment variable {variable} holding a private key is not set")
    try:
        account: LocalAccount = Account.from_key(value.strip())
    except Exception as exc:  # never echo the value itself
        raise WalletError(f"environment variable {variable} does not hold a valid private key") from exc
    return account


def resolve_password(password_env: str | None, *, prompt: bool, what: str) -> str:
    """The keystore password from an environment variable, else an interactive prompt."""
    if password_env:
        value = os.environ.get(password_env)
        if value is None:
            raise WalletError(f"environment variable {password_env} (password for {what}) is not set")
        return value
    if not prompt:
        raise WalletError(f"no password for {what}: set --password-env or run interactively")
    return getpass.getpass(f"Password for {what}: ")


def load_account(
    *, keystore: Path | None, password_env: str | None, key_env: str | None, interactive: bool = True
) -> LocalAccount:
    """One account from exactly one source: a keystore file or a key environment variable."""
    if keystore and key_env:
        raise WalletError("give either a keystore file or a key environment variable, not both")
    if keystore:
        password = resolve_password(password_env, prompt=interactive, what=str(keystore))
        return load_keystore(keystore, password)
    if key_env:
        return account_from_env(key_env)
    raise WalletError("no wallet key: give --keystore FILE (with --password-env) or --key-env VAR")
