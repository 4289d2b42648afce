"""The digest of the panel's sources, kept next to the committed bundle so a stale bundle is caught.

`python sources_digest.py write` (run by `jlpm build`) records it in
../batchai_jupyter/labextension/sources.sha256; `python sources_digest.py check` fails when the
sources changed since the bundle was built (then: `jlpm build` and commit the bundle).
"""
from __future__ import annotations

import hashlib
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
RECORD = HERE.parent / "batchai_jupyter" / "labextension" / "sources.sha256"
SOURCES = ["src/*.ts", "style/*", "package.json", "yarn.lock", "tsconfig.json"]


def compute() -> str:
    digest = hashlib.sha256()
    for path in sorted({p for pattern in SOURCES for p in HERE.glob(pattern) if p.is_file()}):
        digest.update(path.relative_to(HERE).as_posix().encode() + b"\0")
        digest.update(path.read_bytes().replace(b"\r\n", b"\n") + b"\0")
    return digest.hexdigest()


def check() -> str | None:
    """None when the committed bundle was built from these sources, else what is wrong and what to do."""
    recorded = RECORD.read_text().strip() if RECORD.is_file() else ""
    if recorded == compute():
        return None
    return (f"{RECORD} does not match labextension/ ({'missing' if not recorded else 'stale'}): the prebuilt "
            "panel that `pip install .` ships was not rebuilt after its sources changed; run "
            "`cd labextension && jlpm build` and commit batchai_jupyter/labextension/")


if __name__ == "__main__":
    if sys.argv[1:] == ["write"]:
        RECORD.write_text(compute() + "\n")
    elif sys.argv[1:] == ["check"]:
        problem = check()
        if problem:
            sys.exit(problem)
    else:
        sys.exit("usage: python sources_digest.py write|check")
