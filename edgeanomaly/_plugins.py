"""Plugins: modules outside the package that register rows (a model, a backbone, a format, a
backend, a report metric), named in ``$EDGEANOMALY_PLUGINS``.

A plugin registers at import time (``register_model``, ``register_backbone``,
``register_format``, ``register_backend``, ``register_report_metric``). Importing it in
one's own script is enough for that process; naming it in ``$EDGEANOMALY_PLUGINS``
(comma-separated module names) makes every edgeanomaly process import it when
``edgeanomaly`` is imported: the CLI, ``edgeanomaly serve``, and the child processes export
and benchmark start (they inherit the environment), which otherwise would not know the rows.

>>> import os
>>> os.environ.get(ENV, "") == "" or isinstance(load_plugins(), tuple)
True
"""

from __future__ import annotations

import importlib
import os

__all__ = ["ENV", "load_plugins"]

#: The environment variable naming plugin modules.
ENV = "EDGEANOMALY_PLUGINS"

_loaded: list[str] = []


def load_plugins() -> tuple[str, ...]:
    """Import each module named in ``$EDGEANOMALY_PLUGINS`` (once); returns their names.

    Raises:
        ImportError: a named module cannot be imported (the message names the variable).
    """
    for name in (n.strip() for n in os.environ.get(ENV, "").split(",")):
        if not name or name in _loaded:
            continue
        _loaded.append(name)  # before importing: a plugin that imports edgeanomaly does not recurse
        try:
            importlib.import_module(name)
        except ImportError as exc:
            _loaded.remove(name)
            raise ImportError(f"${ENV} names the plugin module {name!r}, which cannot be imported: {exc}. "
                              f"Install it, put its folder on PYTHONPATH, or remove it from ${ENV}.") from exc
    return tuple(_loaded)
