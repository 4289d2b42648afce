"""The server's TensorBoard processes: one a killed server left running (its pid file is still there) is
stopped when the next server of the same home starts."""

from __future__ import annotations

import subprocess

from batchai_jupyter.server.tensorboard import TensorBoards


def test_a_tensorboard_left_by_a_killed_server_is_stopped_at_the_next_start(tmp_path):
    root = str(tmp_path / "home" / "tensorboard")
    killed = TensorBoards(root)  # a server that is then killed: nothing of it stops its TensorBoard
    instance = killed.open("default/exp/", {"run1/metrics": str(tmp_path / "run1")})
    assert instance.process.poll() is None
    TensorBoards(root)  # the next server of this home
    try:
        assert instance.process.wait(30) is not None  # ended (and reaped here, as its parent)
    except subprocess.TimeoutExpired:
        instance.process.kill()
        raise AssertionError("the TensorBoard of the killed server is still running") from None
