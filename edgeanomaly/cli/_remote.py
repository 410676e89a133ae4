"""The ``--url`` / ``--model-name`` options of commands that can run a bundle on a remote server."""

from __future__ import annotations

from typing import Any, Callable, TypeVar

import click

from edgeanomaly.registry import server_backend

F = TypeVar("F", bound=Callable[..., Any])


def remote_options(func: F) -> F:
    """Add ``--url`` and ``--model-name`` (used with ``--backend remote``)."""
    func = click.option("--model-name", default=None,
                        help="With --backend remote: the model's name on the server (default: the bundle's folder name, as `serve` names it).")(func)
    func = click.option("--url", default=None,
                        help="With --backend remote: Open Inference Protocol server, http://HOST:8080 or grpc://HOST:8081.")(func)
    return func


def check_remote(backend: str, url: str | None, model_name: str | None) -> dict[str, Any]:
    """Keyword arguments for ``load``; ``--url`` and ``--backend remote`` only come together."""
    server = server_backend()
    if backend == server and not url:
        raise click.BadParameter(f"--backend {server} needs --url (e.g. http://127.0.0.1:8080)", param_hint="--url")
    if backend != server and (url or model_name):
        raise click.BadParameter(f"--url and --model-name go with --backend {server}, not --backend {backend}", param_hint="--url")
    return {"url": url, "model_name": model_name} if backend == server else {}
