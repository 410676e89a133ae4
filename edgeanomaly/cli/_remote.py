"""The ``--url`` / ``--model-name`` options of commands that can run a bundle on a remote server."""

from __future__ import annotations

from typing import Any, Callable, TypeVar

import click

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
    if backend == "remote" and not url:
        raise click.BadParameter("--backend remote needs --url (e.g. http://127.0.0.1:8080)", param_hint="--url")
    if backend != "remote" and (url or model_name):
        raise click.BadParameter(f"--url and --model-name go with --backend remote, not --backend {backend}", param_hint="--url")
    return {"url": url, "model_name": model_name} if backend == "remote" else {}
