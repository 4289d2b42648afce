"""A monitor's static snapshot: plain HTML (no script) of what the widget shows, kept in the notebook as the
widget's fallback representation, so a notebook reopened without its kernel (nbconvert, GitHub's viewer)
still shows how the job went."""

from __future__ import annotations

from html import escape

TAIL_LINES = 20


def tail(text: str, lines: int = TAIL_LINES) -> str:
    kept = text.rstrip("\n").split("\n")
    return ("…\n" if len(kept) > lines else "") + "\n".join(kept[-lines:])


def log_section(task: str, stdout: str, stderr: str, opened: bool) -> str:
    """One task's last lines, stdout then stderr (in the error colour); `opened` for the failing task."""
    body = []
    if stdout:
        body.append(
            f'<pre class="batchai-log" data-task="{escape(task, quote=True)}" data-stream="stdout" '
            f'style="margin:0;white-space:pre-wrap">{escape(tail(stdout))}</pre>'
        )
    if stderr:
        body.append(
            f'<pre class="batchai-log" data-task="{escape(task, quote=True)}" data-stream="stderr" '
            f'style="margin:0;white-space:pre-wrap;color:var(--jp-error-color1,#d32f2f)">'
            f"{escape(tail(stderr))}</pre>"
        )
    if not body:
        return ""
    return f"<details{' open' if opened else ''}><summary>log of task {escape(task)}</summary>{''.join(body)}</details>"


def snapshot_box(state: str, sections: list[str]) -> str:
    parts = "".join(section for section in sections if section)
    return f'<div class="batchai-snapshot" data-state="{escape(state, quote=True)}">{parts}</div>'
