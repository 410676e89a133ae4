"""Serving at scale (``[serve]`` extra): an Open Inference Protocol server and deployment targets.

- ``edgeanomaly serve BUNDLE``: KServe's model server around :func:`edgeanomaly.runtime.load`
  (:func:`serve`), with the inspection page at ``/``.
- ``edgeanomaly deploy BUNDLE --target triton|ovms|kserve``: model repositories (:func:`deploy`;
  the targets are registry rows, :func:`edgeanomaly.registry.register_deploy_target`).
- The runtime's ``remote`` backend is the client: ``load(bundle, backend="remote", url=...)``.

This package never imports torch; kserve is imported only when a server starts.
"""

from __future__ import annotations

from edgeanomaly._lazy import lazy_exports

_EXPORTS = {
    "serve": "edgeanomaly.serve._server",
    "deploy": "edgeanomaly.serve._deploy",
    "DeployResult": "edgeanomaly.serve._deploy",
    "DeploySettings": "edgeanomaly.serve._deploy",
    "ServedBundle": "edgeanomaly.serve._inference",
    "memory_bound": "edgeanomaly.serve._inference",
}

__all__ = sorted(_EXPORTS)
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
