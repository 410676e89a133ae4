"""The remote backend without a model server: timeouts and refusals are errors that name the URL."""

from __future__ import annotations

import contextlib
import socket

import pytest

from edgeanomaly.errors import BackendUnavailableError
from edgeanomaly.runtime._backends._remote import RemoteBackend


def test_silent_server_times_out_with_the_url():
    with contextlib.closing(socket.socket()) as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(1)  # accepts the connection, never answers
        url = f"http://127.0.0.1:{listener.getsockname()[1]}"
        with pytest.raises(BackendUnavailableError, match=rf"{url.replace('.', '[.]')} did not answer .* within 0.3 s"):
            RemoteBackend(url, "m", [-1, 3, 8, 8], ["pred_score"], timeout=0.3)


def test_refused_connection_names_the_url():
    with contextlib.closing(socket.socket()) as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed again: nothing listens there
    with pytest.raises(BackendUnavailableError, match=f"Cannot reach inference server http://127.0.0.1:{port}"):
        RemoteBackend(f"http://127.0.0.1:{port}", "m", [-1, 3, 8, 8], ["pred_score"], timeout=2)
