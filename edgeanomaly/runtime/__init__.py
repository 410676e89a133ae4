"""Torch-free inference: load a bundle, predict on images, folders, videos and cameras.

Backends: OpenVINO (CPU, GPU, NPU, AUTO on request) and ONNX Runtime (CPU; CUDA/TensorRT
with ``onnxruntime-gpu``), each imported only when used; which backend runs which format on
which device is the table in :mod:`edgeanomaly.registry`. This package never imports torch.
Validation, benchmarking and recalibration live in :mod:`edgeanomaly.tooling`.

>>> from edgeanomaly.runtime import load                     # doctest: +SKIP
>>> det = load("bundles/patchcore-fabric")                  # doctest: +SKIP
>>> det.backend, det.device, det.precision                  # doctest: +SKIP
('openvino', 'CPU', 'fp32 (f32 execution)')
>>> p = det.predict("part.png")                             # doctest: +SKIP
>>> p.score, p.label, p.anomaly_map.shape                   # doctest: +SKIP
(0.91, True, (1024, 1280))
"""

from __future__ import annotations

from edgeanomaly._lazy import lazy_exports

# Names resolve lazily so `import edgeanomaly.runtime` stays cheap (cold start on a device).
_EXPORTS = {
    "load": "edgeanomaly.runtime._detector",
    "LoadOptions": "edgeanomaly.runtime._options",
    "Detector": "edgeanomaly.runtime._detector",
    "select_artifact": "edgeanomaly.runtime._detector",
    "Prediction": "edgeanomaly.runtime._prediction",
    "overlay": "edgeanomaly.runtime._overlay",
    "postprocess": "edgeanomaly.runtime._postprocess",
    "map_to_image": "edgeanomaly.runtime._postprocess",
    "stream": "edgeanomaly.runtime._stream",
    "watch_folder": "edgeanomaly.runtime._stream",
    "FolderWatcher": "edgeanomaly.runtime._stream",
    "StreamError": "edgeanomaly.runtime._stream",
    "list_devices": "edgeanomaly.runtime._devices",
    "ExecutionChoice": "edgeanomaly.runtime._execution",
    "EXECUTION_CAPABILITIES": "edgeanomaly.runtime._execution",
    "NOT_MEASURED": "edgeanomaly.runtime._execution",
    "choose_execution": "edgeanomaly.runtime._execution",
    "device_capabilities": "edgeanomaly.runtime._execution",
    "device_description": "edgeanomaly.runtime._execution",
    "Backend": "edgeanomaly.runtime._backends",
    "served_model_name": "edgeanomaly.runtime._backends._remote",
    "min_image_side": "edgeanomaly.runtime._inputs",
    "check_image_size": "edgeanomaly.runtime._inputs",
}

__all__ = sorted(_EXPORTS)
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
