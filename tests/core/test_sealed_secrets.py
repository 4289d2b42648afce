"""Secret values sealed in the store (core/sealing.py): the store's bytes, its backups and a copy of it
without its key hold no secret; the service reads them back with the key made beside the store at its first
start; a store upgraded from a release that kept them in clear is sealed in place, its backup too."""

import os
import shutil
import sqlite3
import stat

import pytest

from batchai_jupyter.core.models import ClusterSpec, JobSpec, ToolkitSettings
from batchai_jupyter.core.sealing import KeyMismatch, key_file_for
from batchai_jupyter.core.spec_codec import encode_cluster_spec, encode_job_spec
from batchai_jupyter.core.store import Store

V0_DUMP = os.path.join(os.path.dirname(__file__), "..", "data", "store-v0.sql")
V0_SECRET = b'{"API_KEY": "s3cr3t-v0"}'  # the secrets column (the job's command line names the value too)
MOUNT_KEY = "mount-account-key-value"
SETUP_SECRET = "setup-secret-value"
JOB_SECRET = "job-secret-value"
REGISTRY_PASSWORD = "registry-password-value"
DATASTORE_KEY = "datastore-account-key"


def _bytes(path: str) -> bytes:
    """Everything SQLite keeps of the store on disk: the file and its write-ahead log."""
    found = b""
    for part in (path, path + "-wal"):
        if os.path.exists(part):
            with open(part, "rb") as handle:
                found += handle.read()
    return found


def _fill(store: Store) -> None:
    mounts = {"azureFileShares": [{"accountName": "acct", "accountKey": MOUNT_KEY, "relativeMountPath": "afs"}]}
    cluster = ClusterSpec(name="c", mount_volumes=mounts, backend_options={"password": MOUNT_KEY})
    store.insert(
        "clusters", workspace="default", name="c", uuid="u", spec=encode_cluster_spec(cluster),
        secrets={"SETUP_TOKEN": SETUP_SECRET}, target=0, created=0.0,
    )  # fmt: skip
    job = JobSpec(name="j", cluster="c", toolkit=ToolkitSettings(kind="custom", command_line="true"))
    job.mount_volumes = mounts
    store.insert(
        "jobs", workspace="default", experiment="default", name="j", uuid="u", cluster="c", priority=0,
        state="queued", spec=encode_job_spec(job), created=0.0, state_since=0.0,
        secrets={"API_KEY": JOB_SECRET, "batchai:registryPassword": REGISTRY_PASSWORD},
    )  # fmt: skip
    store.insert(
        "datastores", workspace="default", name="blobs", kind="blob", config={"container": "c"},
        secrets={"account_key": DATASTORE_KEY}, created=0.0,
    )  # fmt: skip


def test_secret_values_are_sealed_in_the_store_and_read_back_with_its_key(tmp_path):
    path = str(tmp_path / "batchai.db")
    store = Store(path)
    _fill(store)
    job, cluster = store.job_by_name("default", "default", "j"), store.cluster("default", "c")
    assert job.secrets == {"API_KEY": JOB_SECRET, "batchai:registryPassword": REGISTRY_PASSWORD}
    assert job.spec.mount_volumes["azureFileShares"][0]["accountKey"] == MOUNT_KEY
    assert cluster.secrets == {"SETUP_TOKEN": SETUP_SECRET}
    assert cluster.spec.mount_volumes["azureFileShares"][0]["accountKey"] == MOUNT_KEY
    assert cluster.spec.backend_options == {"password": MOUNT_KEY}
    assert store.datastore_row("default", "blobs").secrets == {"account_key": DATASTORE_KEY}
    on_disk = _bytes(path)
    store.close()
    on_disk += _bytes(path)
    for secret in (MOUNT_KEY, SETUP_SECRET, JOB_SECRET, REGISTRY_PASSWORD, DATASTORE_KEY):
        assert secret.encode() not in on_disk, secret
    assert b"acct" in on_disk  # what is not secret stays readable

    key_file = key_file_for(path)
    assert stat.S_IMODE(os.stat(key_file).st_mode) == 0o600
    again = Store(path)  # a restart reads them back with the same key
    assert again.job_by_name("default", "default", "j").secrets["API_KEY"] == JOB_SECRET
    again.close()


def test_a_store_copied_without_its_key_reveals_no_secret_and_is_refused(tmp_path):
    path = str(tmp_path / "batchai.db")
    store = Store(path)
    _fill(store)
    store.close()
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    copy = str(elsewhere / "batchai.db")
    shutil.copy(path, copy)
    with pytest.raises(KeyMismatch) as refused:
        Store(copy)
    assert "key file" in str(refused.value) and "missing" in str(refused.value)
    assert not os.path.exists(key_file_for(copy))  # no new key was made over the sealed values

    Store(str(tmp_path / "other.db")).close()  # another store's key is not this one's
    shutil.copy(key_file_for(str(tmp_path / "other.db")), key_file_for(copy))
    with pytest.raises(KeyMismatch) as refused:
        Store(copy)
    assert "another key" in str(refused.value)

    shutil.copy(key_file_for(path), key_file_for(copy))  # with its own key it opens
    assert Store(copy).job_by_name("default", "default", "j").secrets["API_KEY"] == JOB_SECRET


def test_a_store_that_kept_secrets_in_clear_is_sealed_when_upgraded_and_its_backup_too(tmp_path):
    path = str(tmp_path / "batchai.db")
    with open(V0_DUMP) as dump, sqlite3.connect(path) as connection:
        connection.executescript(dump.read().replace("@BATCHAI_HOME@", str(tmp_path)))
    assert V0_SECRET in _bytes(path)
    store = Store(path)
    assert store.job_by_name("default", "default", "waiting-secret").secrets == {"API_KEY": "s3cr3t-v0"}
    store.close()
    backup = path + ".v0.bak"
    assert os.path.exists(backup)
    assert V0_SECRET not in _bytes(path) and V0_SECRET not in _bytes(backup)
    # The backup, put back over the store, opens (and is upgraded again) with the same key.
    shutil.copy(backup, path)
    os.remove(path + "-wal") if os.path.exists(path + "-wal") else None
    restored = Store(path)
    assert restored.job_by_name("default", "default", "waiting-secret").secrets == {"API_KEY": "s3cr3t-v0"}
    restored.close()
