"""A stopped log follower writes nothing more: an evicted or lost node's last copy of its task's log
must not land beside the next attempt's logs (the engine archives the old ones and starts the next
attempt as soon as the follower is stopped)."""

from __future__ import annotations

import io
import stat
import threading
from types import SimpleNamespace

from batchai_jupyter.backends.ssh_tasks import TaskFollower, TaskRecord


class _HeldRead(io.BytesIO):
    """A remote file whose reads wait until the test lets them go, as a read from a dying host does."""

    def __init__(self, data: bytes, reading: threading.Event, go_on: threading.Event):
        super().__init__(data)
        self.reading, self.go_on = reading, go_on

    def prefetch(self, _size: int) -> None:
        pass

    def read(self, size: int = -1) -> bytes:
        self.reading.set()
        self.go_on.wait(30)
        return super().read(size)


class _SlowHost:
    """Stands in for the host's SFTP session (the race needs a read held open at will)."""

    def __init__(self, data: bytes):
        self.data = data
        self.reading, self.go_on = threading.Event(), threading.Event()

    def stat(self, _path: str):
        return SimpleNamespace(st_size=len(self.data), st_mode=stat.S_IFREG | 0o644)

    def open(self, _path: str, _mode: str) -> _HeldRead:
        return _HeldRead(self.data, self.reading, self.go_on)

    def close(self) -> None:
        pass


def test_a_copy_in_flight_when_the_follower_stops_writes_nothing(tmp_path):
    host = _SlowHost(b"attempt 1 resumes at 0\n")
    local = tmp_path / "stdouterr" / "stdout.txt"
    record = TaskRecord(host={}, login={}, run_dir="/run/1", logs=[["/run/1/stdout.txt", str(local)]])
    follower = TaskFollower(SimpleNamespace(sftp=lambda: host), record, stager=None, output_sync_seconds=3600)
    follower.start()
    assert host.reading.wait(30), "the follower never started copying"

    stopping = threading.Thread(target=follower.stop)
    stopping.start()  # the job is requeued while a read from the host is still in flight
    host.go_on.set()
    stopping.join(30)
    follower._thread.join(30)

    assert not stopping.is_alive() and not follower._thread.is_alive()
    assert local.read_bytes() == b"", "a stopped follower still wrote what it read"
