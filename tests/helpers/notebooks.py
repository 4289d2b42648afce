"""Notebooks executed with nbclient against a real service, as a user's Jupyter would run them."""

from __future__ import annotations

import os

from nbclient import NotebookClient


def execute_notebook(notebook, url: str, token: str, folder: str, timeout: int = 300) -> list[str]:
    """Runs every cell of `notebook` (in place: outputs are kept) in `folder` with a kernel that finds
    the service at `url`; returns each code cell's text output."""
    old = {key: os.environ.get(key) for key in ("BATCHAI_URL", "BATCHAI_TOKEN")}
    os.environ.update(BATCHAI_URL=url, BATCHAI_TOKEN=token)
    try:
        NotebookClient(
            notebook, timeout=timeout, kernel_name="python3", resources={"metadata": {"path": folder}}
        ).execute()
    finally:
        for key, value in old.items():
            os.environ.pop(key, None) if value is None else os.environ.__setitem__(key, value)
    return [cell_text(cell) for cell in notebook.cells if cell.cell_type == "code"]


def cell_text(cell) -> str:
    parts = []
    for output in cell.outputs:
        if output.output_type == "stream":
            parts.append(output.text)
        elif output.output_type in ("execute_result", "display_data"):
            parts.append(output.data.get("text/plain", ""))
        elif output.output_type == "error":
            parts.append(f"{output.ename}: {output.evalue}")
    return "".join(parts)
