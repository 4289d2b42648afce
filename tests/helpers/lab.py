"""A real `jupyter lab` (with the batchai server extension and the prebuilt panel) and headless
Chromium from Debian's `chromium` package, driven by Playwright. Screenshots go to
tests/lab/artifacts/ (or $BATCHAI_TEST_ARTIFACTS)."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import uuid
from pathlib import Path

import requests

from .tools import free_port
from .waits import wait_for_server

LAB_TOKEN = "lab-token-" + uuid.uuid4().hex[:8]
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
ARTIFACTS = Path(os.environ.get("BATCHAI_TEST_ARTIFACTS", Path(__file__).parents[1] / "lab" / "artifacts"))


class LabServer:
    """`jupyter lab` on 127.0.0.1 with a token and its own BATCHAI_HOME, settings and workspaces."""

    def __init__(self, base: Path):
        self.base = base
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}/"
        self.log_path = base / "lab.log"
        settings = base / "lab-settings"
        # No "would you like news?" toast over the screenshots.
        notification = settings / "@jupyterlab" / "apputils-extension" / "notification.jupyterlab-settings"
        notification.parent.mkdir(parents=True, exist_ok=True)
        notification.write_text(json.dumps({"fetchNews": "false"}))
        (base / "notebooks").mkdir()
        self.env = {
            **os.environ,
            "BATCHAI_HOME": str(base / "home"),
            "JUPYTER_RUNTIME_DIR": str(base / "runtime"),
            "JUPYTERLAB_SETTINGS_DIR": str(settings),
            "JUPYTERLAB_WORKSPACES_DIR": str(base / "lab-workspaces"),
        }
        self.process: subprocess.Popen | None = None

    def start(self, timeout: float = 120.0) -> None:
        log = open(self.log_path, "ab")
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "jupyterlab",
                "--no-browser",
                "--allow-root",
                "--ip",
                "127.0.0.1",
                "--port",
                str(self.port),
                f"--IdentityProvider.token={LAB_TOKEN}",
                f"--ServerApp.root_dir={self.base / 'notebooks'}",
                "--LabApp.expose_app_in_browser=True",
            ],
            stdout=log,
            stderr=log,
            stdin=subprocess.DEVNULL,
            env=self.env,
            start_new_session=True,
        )
        wait_for_server(self.process, self._serves_batchai, "jupyter lab", timeout, self.log)

    def _serves_batchai(self) -> bool:
        reply = requests.get(
            f"{self.url}batchai/api/v1/version", headers={"Authorization": f"token {LAB_TOKEN}"}, timeout=5
        )
        return reply.status_code == 200

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")[-5000:]

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


class LabPage:
    """One browser tab on JupyterLab, with the Batch AI panel open; `shot(name)` keeps a screenshot."""

    def __init__(self, page, lab: LabServer):
        self.page = page
        self.lab = lab
        self.console: list[str] = []
        page.on("console", lambda message: self.console.append(f"{message.type}: {message.text}"))
        page.on("pageerror", lambda error: self.console.append(f"pageerror: {error}"))

    def open(self) -> None:
        self.page.goto(f"{self.lab.url}lab?token={LAB_TOKEN}")
        self.page.wait_for_selector("#jp-main-dock-panel", timeout=90_000)
        # Wait for the saved layout to be restored, so it cannot re-close the panel after we open it.
        self.page.wait_for_function("() => window.jupyterapp !== undefined", timeout=90_000)
        self.page.evaluate("() => window.jupyterapp.restored.then(() => true)")
        self.open_panel()

    def open_panel(self) -> None:
        panel = self.page.locator("#batchai-panel")
        if not panel.is_visible():
            self.page.locator('li[data-id="batchai-panel"]').click()
        panel.wait_for(state="visible", timeout=30_000)

    @property
    def panel(self):
        return self.page.locator("#batchai-panel")

    def job_row(self, name: str):
        return self.panel.locator(f'tr[data-job="{name}"]')

    def cluster_row(self, name: str):
        return self.panel.locator(f'tr[data-cluster="{name}"]')

    def set_sidebar_width(self, width: int) -> int:
        """Drags the splitter beside the left sidebar as a user would; the sidebar's width after it."""
        sidebar = self.page.locator("#jp-left-stack")
        handle = self.page.locator("#jp-main-split-panel > .lm-SplitPanel-handle").first
        box = handle.bounding_box()
        x, y = box["x"] + box["width"] / 2, box["y"] + box["height"] / 2
        self.page.mouse.move(x, y)
        self.page.mouse.down()
        self.page.mouse.move(x + width - sidebar.bounding_box()["width"], y, steps=5)
        self.page.mouse.up()
        return round(sidebar.bounding_box()["width"])

    def styles(self, selector: str, *properties: str, within: str = "", pseudo: str | None = None) -> list:
        """Computed style `properties` of the first element matching `selector` (inside the first job view
        showing the text `within`, when given). The panel draws its tables again on every poll, and a
        replaced element has no style: the element is looked up afresh until one in the page answers."""
        return self.page.wait_for_function(
            """([selector, properties, within, pseudo]) => {
                const root = within
                    ? [...document.querySelectorAll('.bai-JobView')].find(v => v.textContent.includes(within))
                    : document;
                const element = root && root.querySelector(selector);
                if (!element || !element.isConnected) return false;
                const style = getComputedStyle(element, pseudo);
                const values = properties.map(p => p === 'height' ? element.getBoundingClientRect().height
                    : p === 'font-size' ? parseFloat(style.fontSize) : style.getPropertyValue(p));
                return values.every(v => v !== '') && values;
            }""",
            arg=[selector, list(properties), within, pseudo],
            timeout=60_000,
        ).json_value()

    def theme_colour(self, variable: str) -> str:
        """The colour a CSS variable of the theme resolves to, as computed styles give colours."""
        return self.page.evaluate(
            """(variable) => {
                const probe = document.createElement('span');
                probe.style.color = `var(${variable})`;
                document.body.appendChild(probe);
                const colour = getComputedStyle(probe).color;
                probe.remove();
                return colour;
            }""",
            variable,
        )

    def overflow(self, selector: str) -> float:
        """How many pixels the element sticks out to the right of the panel's visible width (0 when it fits)."""
        return self.page.evaluate(
            """(selector) => {
                const panel = document.querySelector('#batchai-panel');
                const inner = panel.getBoundingClientRect().right - parseFloat(getComputedStyle(panel).paddingRight);
                const parts = [panel.querySelector(selector), ...panel.querySelectorAll(selector + ' *')];
                const right = Math.max(...parts.map(e => e.getBoundingClientRect().right));
                return Math.max(0, right - inner, panel.scrollWidth - panel.clientWidth);
            }""",
            selector,
        )

    def shot(self, name: str) -> Path:
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        path = ARTIFACTS / f"{re.sub(r'[^A-Za-z0-9_.-]', '_', name)}.png"
        self.page.screenshot(path=str(path))
        return path

    def command(self, command: str, args: dict | None = None) -> None:
        self.page.evaluate("([id, args]) => window.jupyterapp.commands.execute(id, args)", [command, args or {}])
