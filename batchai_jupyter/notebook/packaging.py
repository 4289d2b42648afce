"""The cell package: the cell as the job's script, the files it names, and pushed variables (pickled).

Files come from `--files` globs relative to the notebook's folder; `.gitignore` there is honoured and
`.git` is never taken. A package over the limit is refused, naming its biggest parts.
"""

from __future__ import annotations

import fnmatch
import glob
import json
import os
import pickle
from dataclasses import dataclass

from ..errors import BatchAIError
from ..runtime import cellrunner
from .datasets import UploadFile

DEFAULT_LIMIT_BYTES = 50 * 1024 * 1024


def human_size(size: float) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if size < 1024 or unit == "GB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{size:.1f} GB"


@dataclass
class Package:
    files: list[UploadFile]
    parts: list[tuple[str, int]]  # (what, bytes) for the description: the cell, each file, each variable

    @property
    def size(self) -> int:
        return sum(f.size for f in self.files)

    def describe(self) -> str:
        files = [size for what, size in self.parts if what.startswith("file ")]
        variables = [size for what, size in self.parts if what.startswith("variable ")]
        text = f"package {human_size(self.size)}: cell {human_size(self.parts[0][1])}"
        if files:
            text += f", {len(files)} file(s) {human_size(sum(files))}"
        if variables:
            text += f", {len(variables)} pushed variable(s) {human_size(sum(variables))}"
        return text


class GitIgnore:
    """The patterns of a folder's .gitignore: last match wins, `!` re-includes, `dir/` matches folders."""

    def __init__(self, lines: list[str]):
        self.rules = []
        for raw in lines:
            line = raw.rstrip("\n").rstrip()
            if not line or line.startswith("#"):
                continue
            negate = line.startswith("!")
            line = line[1:] if negate else line
            directory_only = line.endswith("/")
            line = line.strip("/") if directory_only else line
            anchored = "/" in line.lstrip("/") or line.startswith("/")
            self.rules.append((line.lstrip("/"), negate, directory_only, anchored))

    @classmethod
    def of(cls, root: str) -> GitIgnore:
        try:
            with open(os.path.join(root, ".gitignore")) as handle:
                return cls(handle.readlines())
        except OSError:
            return cls([])

    def _matches(self, path: str, is_dir: bool) -> bool:
        ignored = False
        for pattern, negate, directory_only, anchored in self.rules:
            if directory_only and not is_dir:
                continue
            target = path if anchored else path.rsplit("/", 1)[-1]
            if fnmatch.fnmatchcase(target, pattern):
                ignored = not negate
        return ignored

    def ignores(self, path: str) -> bool:
        """Whether a file at `path` (relative, '/'-separated) is ignored, itself or by a parent folder."""
        parts = path.split("/")
        if ".git" in parts:
            return True
        return any(self._matches("/".join(parts[:i]), True) for i in range(1, len(parts))) or self._matches(path, False)


def select_files(patterns: list[str], root: str) -> list[UploadFile]:
    """The files `patterns` (globs, folders included whole) name under `root`, minus ignored ones."""
    ignore = GitIgnore.of(root)
    chosen: dict[str, str] = {}
    for pattern in patterns:
        if os.path.isabs(pattern) or os.path.normpath(pattern).split(os.sep)[0] == "..":
            raise BatchAIError(
                "InvalidFiles",
                f"--files: {pattern!r} is outside the notebook's folder {root}; "
                "give globs relative to it, or upload that data with --data",
            )
        matches = sorted(glob.glob(os.path.join(root, pattern), recursive=True))
        if not matches:
            raise BatchAIError("FileNotFound", f"--files: {pattern!r} matches no file in {root}; check the pattern")
        for match in matches:
            walked = (
                [match]
                if os.path.isfile(match)
                else [os.path.join(folder, name) for folder, _dirs, names in os.walk(match) for name in names]
            )
            for path in walked:
                relative = os.path.relpath(path, root).replace(os.sep, "/")
                if not ignore.ignores(relative):
                    chosen[relative] = path
    return [UploadFile(relative, local=path) for relative, path in sorted(chosen.items())]


def pickle_variables(names: list[str], namespace: dict) -> dict[str, bytes]:
    pickled = {}
    for name in names:
        if name not in namespace:
            raise BatchAIError(
                "UnknownVariable",
                f"--push {name}: the notebook has no variable '{name}'; run the cell that defines it first",
            )
        try:
            pickled[name] = pickle.dumps(namespace[name])
        except Exception as failure:
            raise BatchAIError(
                "NotPicklable",
                f"--push {name}: cannot be pickled ({type(failure).__name__}: "
                f"{failure}); push plain data, or save it to a file and use "
                "--files",
            ) from None
    return pickled


def build_package(
    cell: str,
    patterns: list[str],
    push: list[str],
    pull: list[str],
    namespace: dict,
    root: str,
    limit: int = DEFAULT_LIMIT_BYTES,
) -> Package:
    try:
        cellrunner.compile_cell(cell)
    except SyntaxError as failure:
        where = f"line {failure.lineno}: " if failure.lineno else ""
        code = f": {failure.text.strip()}" if failure.text and failure.text.strip() else ""
        raise BatchAIError(
            "CellSyntaxError", f"the cell does not compile ({where}{failure.msg}{code}); nothing was uploaded or queued"
        ) from None
    with open(cellrunner.__file__, "rb") as handle:
        runner = handle.read()
    source = cell.encode()
    files = select_files(patterns, root) if patterns else []
    taken = {cellrunner.RUNNER_NAME, cellrunner.SOURCE_NAME, cellrunner.PUSH_NAME, cellrunner.MANIFEST_NAME}
    clash = [f.path for f in files if f.path in taken]
    if clash:
        raise BatchAIError("InvalidFiles", f"--files: {clash[0]!r} has a name the package itself uses; rename it")
    variables = pickle_variables(push, namespace)
    parts = (
        [("cell", len(source))]
        + [(f"file {f.path}", f.size) for f in files]
        + [(f"variable {name}", len(data)) for name, data in variables.items()]
    )
    manifest = json.dumps({"pull": pull, "push": sorted(variables)}).encode()
    package_files = [
        UploadFile(cellrunner.RUNNER_NAME, data=runner),
        UploadFile(cellrunner.SOURCE_NAME, data=source),
        UploadFile(cellrunner.MANIFEST_NAME, data=manifest),
        *files,
    ]
    if variables:
        values = {name: namespace[name] for name in variables}
        package_files.append(UploadFile(cellrunner.PUSH_NAME, data=pickle.dumps(values)))
    package = Package(package_files, parts)
    if package.size > limit:
        biggest = ", ".join(f"{what} {human_size(size)}" for what, size in sorted(parts, key=lambda p: -p[1])[:3])
        raise BatchAIError(
            "PackageTooLarge",
            f"the job package is {human_size(package.size)}, over the "
            f"{human_size(limit)} limit (biggest: {biggest}); pass large data with "
            "--data NAME=PATH or put it in a datastore",
        )
    return package
