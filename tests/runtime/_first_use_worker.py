"""Subprocess body of the OpenVINO first-use test (issue 20 item 14).

Four threads load their own detector of the same bundle at once (two ONNX Runtime, two
OpenVINO), then predict one image and stream a few through ``predict_many``: the first use of
OpenVINO happens in several threads together, the case that hung (a C++ function-local static
of OpenVINO's Python bindings initialised in one thread, which then waited for the GIL, while
another thread holding the GIL waited for that static).

Every call into an OpenVINO binding is watched (``sys.setprofile``/``threading.setprofile``
``c_call`` events). Prints, as JSON, ``{"outside": [...], "failures": [...]}``: the bindings
whose first call in this process was NOT made inside ``core()``'s one-time set-up, and what
went wrong in the threads. Exit 0 when both are empty.
"""

from __future__ import annotations

import json
import sys
import threading
import types
from typing import Any

import numpy as np

from edgeanomaly.runtime import load
from edgeanomaly.runtime._backends import _openvino


def _binding(arg: Any) -> str | None:
    """``module.function`` of an OpenVINO binding being called, else None. (A pybind11 3
    method is a builtin bound to a function record; its ``__module__`` names the extension.)"""
    module = getattr(arg, "__module__", None)
    owner = getattr(arg, "__self__", None)
    if not module and isinstance(owner, types.ModuleType):
        module = owner.__name__
    elif not module and owner is not None:
        module = type(owner).__module__
    if not str(module or "").startswith("openvino"):
        return None
    return f"{module}.{getattr(arg, '__name__', repr(arg))}"


def main(bundle: str) -> int:
    set_up = {_openvino.core.__code__}
    first: dict[str, bool] = {}  # binding -> whether its first call was made inside core()
    lock = threading.Lock()

    def profile(frame: Any, event: str, arg: Any) -> None:
        if event != "c_call":
            return
        name = _binding(arg)
        if name is None or name in first:
            return
        inside, f = False, frame
        while f is not None:
            if f.f_code in set_up:
                inside = True
                break
            f = f.f_back
        with lock:
            first.setdefault(name, inside)

    failures: list[str] = []
    rng = np.random.default_rng(0)
    images = [rng.integers(0, 255, (71, 85, 3), dtype=np.uint8) for _ in range(6)]
    start = threading.Barrier(4)

    def work(k: int) -> None:
        try:
            start.wait(timeout=120)
            det = load(bundle, backend="onnxruntime" if k % 2 == 0 else "openvino")
            try:
                det.predict(images[0])
                for _ in range(2):
                    list(det.predict_many(images, batch_size=1 + k % 3))
            finally:
                det.close()
        except BaseException as exc:  # reported by the parent
            failures.append(f"thread {k}: {exc!r}")

    sys.setprofile(profile)
    threading.setprofile(profile)
    threads = [threading.Thread(target=work, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    threading.setprofile(None)
    sys.setprofile(None)
    outside = sorted(name for name, inside in first.items() if not inside)
    print(json.dumps({"outside": outside, "failures": failures, "watched": len(first)}), flush=True)
    return 1 if outside or failures else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
