"""The inspection page in a real headless browser (Debian's chromium, driven over the DevTools protocol).

The browser loads `/`, a file is put into the page's file input (as a user choosing it), the
page posts it to `/inspect`, and the verdict it shows must be `predict`'s. The screenshot is
kept in the test's temporary folder; set EDGEANOMALY_SCREENSHOT=path to keep a copy (the one
in docs/serve-page.png was made so).
"""

from __future__ import annotations

import base64
import contextlib
import itertools
import json
import os
import shutil
import signal
import subprocess
import time
import urllib.request
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync", "--remote-debugging-address=127.0.0.1",
                  "--remote-debugging-port=0", "--window-size=900,900"]


class _DevTools:
    """The few DevTools protocol calls the test needs, over one websocket."""

    def __init__(self, ws_url: str) -> None:
        import websocket

        self._ws = websocket.create_connection(ws_url, timeout=30, suppress_origin=True)
        self._ids = itertools.count(1)

    def call(self, method: str, **params) -> dict:
        msg_id = next(self._ids)
        self._ws.send(json.dumps({"id": msg_id, "method": method, "params": params}))
        while True:  # skip events until our answer
            reply = json.loads(self._ws.recv())
            if reply.get("id") == msg_id:
                if "error" in reply:
                    raise RuntimeError(f"{method}: {reply['error']}")
                return reply.get("result", {})

    def evaluate(self, expression: str):
        return self.call("Runtime.evaluate", expression=expression, returnByValue=True)["result"].get("value")

    def wait_for(self, expression: str, timeout: float = 60.0):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            value = self.evaluate(expression)
            if value:
                return value
            time.sleep(0.2)
        raise TimeoutError(f"page never satisfied {expression!r} within {timeout} s")

    def close(self) -> None:
        self._ws.close()


@pytest.fixture
def chromium(tmp_path):
    exe = shutil.which("chromium")
    if exe is None:
        pytest.skip("Debian's chromium is not installed (apt-get install chromium); .ci/run installs it as root")
    pytest.importorskip("websocket", reason="the DevTools client needs websocket-client ([dev] extra)")
    profile = tmp_path / "profile"
    proc = subprocess.Popen([exe, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", "about:blank"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        port_file = profile / "DevToolsActivePort"
        deadline = time.monotonic() + 60
        while not (port_file.exists() and port_file.read_text().strip()):
            if proc.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"chromium did not start (exit code {proc.poll()})")
            time.sleep(0.2)
        port = int(port_file.read_text().split()[0])
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list", timeout=10) as r:
            page = next(t for t in json.load(r) if t["type"] == "page")
        tools = _DevTools(page["webSocketDebuggerUrl"])
        yield tools
        tools.close()
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)


def test_page_shows_the_verdict_and_heat_map(server, serve_bundle, serve_data, chromium, tmp_path):
    from edgeanomaly.runtime import load

    image = sorted((serve_data / "metal" / "test").glob("scratch/*.png"))[0]
    with load(serve_bundle, backend="onnxruntime") as det:
        want = det.predict(str(image))

    chromium.call("Page.enable")
    chromium.call("Page.navigate", url=server.url + "/")
    chromium.wait_for("document.readyState === 'complete' && !!document.getElementById('file')")
    assert chromium.evaluate("document.title") == "edgeanomaly inspection"
    root = chromium.call("DOM.getDocument")["root"]["nodeId"]
    node = chromium.call("DOM.querySelector", nodeId=root, selector="#file")["nodeId"]
    chromium.call("DOM.setFileInputFiles", files=[str(image)], nodeId=node)  # fires 'change' like a user
    chromium.wait_for("document.body.dataset.done === '1'")

    verdict = chromium.evaluate("document.getElementById('verdict').textContent")
    score_text = chromium.evaluate("document.getElementById('score').textContent")
    assert verdict == ("ANOMALOUS" if want.label else "NORMAL")
    assert score_text.startswith(f"score {want.score:.3f}")
    assert chromium.evaluate("document.getElementById('overlay').naturalWidth") == want.anomaly_map.shape[1]

    shot = base64.b64decode(chromium.call("Page.captureScreenshot", format="png")["data"])
    assert shot.startswith(b"\x89PNG")
    (tmp_path / "page.png").write_bytes(shot)
    keep = os.environ.get("EDGEANOMALY_SCREENSHOT")
    if keep:
        Path(keep).write_bytes(shot)
