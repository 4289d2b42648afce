"""A local datastore resolves a path under its root as realpath does, links included, and refuses one
that a link leads out of the root."""

import os

import pytest

from batchai_jupyter.errors import BatchAIError
from batchai_jupyter.storage.local import LocalDatastore


@pytest.fixture
def root(tmp_path):
    root = tmp_path / "root"
    (root / "a" / "b").mkdir(parents=True)
    (tmp_path / "outside").mkdir()
    os.symlink(tmp_path / "outside", root / "a" / "out")
    os.symlink("b", root / "a" / "in")
    return str(root)


@pytest.mark.parametrize("segment", ["", "a", "a/b", "a/b/c", "a/in", "a/in/x/y", "new/deep/x", "a/./b"])
def test_a_path_under_the_root_is_its_realpath(root, segment):
    assert LocalDatastore(root).node_path(segment) == os.path.realpath(os.path.join(root, segment))


@pytest.mark.parametrize("segment", ["a/out", "a/out/x", "a/in/../out/x"])
def test_a_link_out_of_the_root_is_refused(root, segment):
    with pytest.raises(BatchAIError, match="leads outside the datastore"):
        LocalDatastore(root).node_path(segment)


def test_a_root_made_after_the_datastore_was_opened_is_resolved_then(tmp_path):
    store = LocalDatastore(str(tmp_path / "later"))
    assert store.node_path("x") == str(tmp_path / "later" / "x")
    os.makedirs(tmp_path / "real")
    os.symlink(tmp_path / "real", tmp_path / "later")
    assert store.node_path("x") == str(tmp_path / "real" / "x")
