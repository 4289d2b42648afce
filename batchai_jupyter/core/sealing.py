"""Secret values sealed in the store: encrypted (Fernet: AES-128-CBC with an HMAC) with a key that only the
service reads, kept in a 0600 file beside the store (`batchai.db.key`), made at the first start.

Why a key beside the store rather than the values in a second file: the sealed values stay in the rows they
belong to, written in the same SQLite transaction (a crash cannot leave a job without its secrets or secrets
without their job), and every copy of the store (its `.bak` files, one downloaded through a bug, sent with a
bug report) reveals no secret without the key. A home copied whole keeps its key and works on.

What is sealed: every table's `secrets` column (job variables and the registry password, a cluster's setup
task secrets, a datastore's keys, a sweep's secrets), and inside the `spec` and `config` columns every value
whose key names a key, password or token (spec.is_secret_field: a mount's accountKey, a backend option's
password), wherever it is. A sealed value is the text `sealed:1:<token>`; an empty `secrets` stays `{}`.
"""

from __future__ import annotations

import json
import os
import sqlite3
from typing import Any

from cryptography.fernet import Fernet, InvalidToken

from ..errors import BatchAIError
from .spec import is_secret_field

PREFIX = "sealed:1:"
SEALED_COLUMNS = ("secrets",)  # sealed whole
FIELD_SEALED_COLUMNS = ("spec", "config")  # their secret fields sealed one by one
# A known text sealed in the store (table `sealing`): opening the store unseals it, so a wrong key is refused
# at the start rather than failing on the first job that has secrets.
CHECK_TEXT = "batchai store key"


class KeyMismatch(BatchAIError):
    status = 503

    def __init__(self, store: str, key_file: str, problem: str):
        super().__init__(
            "StoreKeyMismatch",
            f"the secrets in {store} cannot be read: {problem}. The service did not start, so nothing was "
            f"changed. To recover: put back the {os.path.basename(key_file)} that came with this store at "
            f"{key_file} (it is made beside the store at its first start; copy it with the store)",
        )


def key_file_for(store: str) -> str:
    return store + ".key"


class SecretBox:
    """Seals and unseals values with one key."""

    def __init__(self, key: bytes):
        self._fernet = Fernet(key)

    @classmethod
    def for_store(cls, store: str, store_sealed: bool) -> SecretBox:
        """The store's key, made now when it has none and nothing in the store is sealed yet."""
        key_file = key_file_for(store)
        try:
            with open(key_file, "rb") as handle:
                return cls(handle.read().strip())
        except FileNotFoundError:
            if store_sealed:
                raise KeyMismatch(store, key_file, f"its key file {key_file} is missing") from None
        except ValueError:
            raise KeyMismatch(store, key_file, f"{key_file} is not a key") from None
        return cls(_make_key(key_file))

    def seal(self, value: Any) -> str:
        return PREFIX + self._fernet.encrypt(json.dumps(value).encode()).decode()

    def unseal(self, text: str) -> Any:
        return json.loads(self._fernet.decrypt(text[len(PREFIX) :].encode()))

    # -- columns --------------------------------------------------------------------------

    def encode(self, column: str, value: Any) -> Any:
        """A column's value as stored: JSON, its secrets sealed."""
        if not isinstance(value, (dict, list)):
            return value
        if column in SEALED_COLUMNS and value:
            return self.seal(value)
        if column in FIELD_SEALED_COLUMNS:
            value = self._seal_fields(value)
        return json.dumps(value)

    def decode(self, column: str, text: str) -> Any:
        """The inverse of `encode`; plain JSON (a store not yet sealed) decodes as it is."""
        if text.startswith(PREFIX):
            return self.unseal(text)
        value = json.loads(text)
        if column in FIELD_SEALED_COLUMNS and PREFIX in text:
            value = self._unseal_fields(value)
        return value

    def _seal_fields(self, value: Any) -> Any:
        if isinstance(value, dict):
            return {
                key: self.seal(item) if is_secret_field(key, item) else self._seal_fields(item)
                for key, item in value.items()
            }
        if isinstance(value, list):
            return [self._seal_fields(item) for item in value]
        return value

    def _unseal_fields(self, value: Any) -> Any:
        if isinstance(value, dict):
            return {key: self._unseal_fields(item) for key, item in value.items()}
        if isinstance(value, list):
            return [self._unseal_fields(item) for item in value]
        if isinstance(value, str) and value.startswith(PREFIX):
            return self.unseal(value)
        return value

    # -- the store as a whole ---------------------------------------------------------------

    def check(self, connection: sqlite3.Connection, store: str) -> None:
        """Records the check text sealed with this key, or unseals the one recorded: a wrong key is refused."""
        row = connection.execute("SELECT value FROM sealing").fetchone()
        if row is None:
            connection.execute("INSERT INTO sealing (value) VALUES (?)", (self.seal(CHECK_TEXT),))
            return
        try:
            if self.unseal(row[0]) == CHECK_TEXT:
                return
        except (InvalidToken, ValueError):
            pass
        key_file = key_file_for(store)
        raise KeyMismatch(store, key_file, f"they were sealed with another key than the one in {key_file}")

    def seal_all(self, connection: sqlite3.Connection) -> None:
        """Seals what an older store kept in clear (rows already sealed are left as they are)."""
        tables = [row[0] for row in connection.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
        for table in tables:
            columns = [row[1] for row in connection.execute(f"PRAGMA table_info({table})")]
            for column in set(columns) & {*SEALED_COLUMNS, *FIELD_SEALED_COLUMNS}:
                rows = connection.execute(f"SELECT rowid, {column} FROM {table}").fetchall()
                for rowid, text in rows:
                    if not isinstance(text, str) or PREFIX in text:  # sealed already
                        continue
                    sealed = self.encode(column, self.decode(column, text))
                    if sealed != text:
                        connection.execute(f"UPDATE {table} SET {column} = ? WHERE rowid = ?", (sealed, rowid))


def store_sealed(connection: sqlite3.Connection) -> bool:
    """Whether a store already holds values sealed with some key (its `sealing` check is there)."""
    found = connection.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'sealing'").fetchone()
    return found is not None and connection.execute("SELECT 1 FROM sealing").fetchone() is not None


def _make_key(key_file: str) -> bytes:
    """A new key in a 0600 file, made at once (two services starting together agree on the first one's)."""
    key = Fernet.generate_key()
    temporary = f"{key_file}.{os.getpid()}.tmp"
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.write(descriptor, key + b"\n")
        os.fsync(descriptor)
    finally:
        os.close(descriptor)
    try:
        os.link(temporary, key_file)
    except FileExistsError:
        with open(key_file, "rb") as handle:
            key = handle.read().strip()
    finally:
        os.unlink(temporary)
    return key


def seal_file(path: str, box: SecretBox) -> None:
    """Seals the clear secrets of the store at `path` (a backup copy of an older store) in place."""
    connection = sqlite3.connect(path, isolation_level=None)
    try:
        connection.execute("PRAGMA secure_delete=ON")
        connection.execute("BEGIN IMMEDIATE")
        connection.execute("CREATE TABLE IF NOT EXISTS sealing (value TEXT NOT NULL)")
        box.seal_all(connection)
        box.check(connection, path)
        connection.execute("COMMIT")
        connection.execute("VACUUM")
    finally:
        connection.close()
