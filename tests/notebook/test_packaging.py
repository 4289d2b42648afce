"""The cell package: which files go, .gitignore, .git, pushed variables and the size limit (no service)."""

from __future__ import annotations

import pickle
import threading

import pytest

from batchai_jupyter.errors import BatchAIError
from batchai_jupyter.notebook.packaging import GitIgnore, build_package, select_files


def _tree(root, files: dict) -> None:
    for path, text in files.items():
        target = root / path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text)


def test_gitignore_is_honoured_and_git_never_taken(tmp_path):
    _tree(
        tmp_path,
        {
            ".gitignore": "*.log\nbuild/\n/secret.txt\n!keep.log\n",
            "a.py": "",
            "run.log": "",
            "keep.log": "",
            "build/out.py": "",
            "sub/secret.txt": "",
            "secret.txt": "",
            ".git/config": "",
            "sub/b.py": "",
        },
    )
    chosen = [f.path for f in select_files(["."], str(tmp_path))]
    assert chosen == [".gitignore", "a.py", "keep.log", "sub/b.py", "sub/secret.txt"]
    assert [f.path for f in select_files(["**/*.py"], str(tmp_path))] == ["a.py", "sub/b.py"]


def test_gitignore_rules():
    ignore = GitIgnore(["data/", "*.tmp", "!important.tmp", "/top.txt"])
    assert ignore.ignores("data/x.csv") and ignore.ignores("a/data/x.csv")
    assert ignore.ignores("x.tmp") and not ignore.ignores("important.tmp")
    assert ignore.ignores("top.txt") and not ignore.ignores("a/top.txt")
    assert ignore.ignores(".git/HEAD") and not ignore.ignores("data.csv")


def test_package_holds_cell_runner_and_pushed_values(tmp_path):
    _tree(tmp_path, {"util.py": "X = 1\n"})
    package = build_package("print(x)\n", ["util.py"], ["x"], ["y"], {"x": [1, 2]}, str(tmp_path))
    by_path = {f.path: f for f in package.files}
    assert set(by_path) == {
        "_batchai_cell.py",
        "_batchai_cell_source.py",
        "_batchai_manifest.json",
        "_batchai_push.pkl",
        "util.py",
    }
    assert pickle.loads(by_path["_batchai_push.pkl"].data) == {"x": [1, 2]}
    assert package.describe().startswith("package ") and "1 file(s) 6 B" in package.describe()


def test_unpicklable_push_and_oversize_are_refused(tmp_path):
    with pytest.raises(BatchAIError, match="--push lock: cannot be pickled"):
        build_package("", [], ["lock"], [], {"lock": threading.Lock()}, str(tmp_path))
    with pytest.raises(BatchAIError, match=r"over the 1.0 KB limit \(biggest: variable blob 2.0 KB"):
        build_package("", [], ["blob"], [], {"blob": b"x" * 2048}, str(tmp_path), limit=1024)
