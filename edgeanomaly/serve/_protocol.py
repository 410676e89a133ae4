"""Open Inference Protocol (KServe V2) REST bodies: strict parsing and encoding, no kserve needed.

A request body is JSON, or JSON followed by raw tensor bytes (the binary tensor extension:
header ``Inference-Header-Content-Length`` gives the JSON's length, each input's
``parameters.binary_data_size`` its share of the rest). Everything a client can get wrong
raises :class:`BadRequest` with a message of the form "expected ..., got ..."; the server
turns it into a 4xx answer and keeps serving.
"""

from __future__ import annotations

import base64
import binascii
import json
import math
import struct
from dataclasses import dataclass, field
from typing import Any

import numpy as np

__all__ = ["BadRequest", "InferBody", "parse_infer_request", "encode_infer_response", "V2_DTYPES"]

#: V2 datatype -> NumPy dtype (BYTES is handled separately: a list of ``bytes``).
V2_DTYPES: dict[str, Any] = {
    "BOOL": np.bool_, "UINT8": np.uint8, "INT32": np.int32, "INT64": np.int64,
    "FP16": np.float16, "FP32": np.float32, "FP64": np.float64,
}
_NUMPY_TO_V2 = {np.dtype(v): k for k, v in V2_DTYPES.items()}


class BadRequest(ValueError):
    """A request the server refuses; ``status`` is the HTTP status (400, 404, 413, ...)."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


@dataclass
class InferBody:
    """A parsed request: inputs by name, the outputs asked for and whether to answer in binary."""

    inputs: dict[str, np.ndarray | list[bytes]]
    outputs: list[str] | None = None
    binary_outputs: set[str] = field(default_factory=set)
    request_id: str | None = None


def _shape(value: Any, name: str) -> tuple[int, ...]:
    if not isinstance(value, list) or not all(isinstance(d, int) and not isinstance(d, bool) and d >= 0 for d in value):
        raise BadRequest(f"Expected 'shape' of input {name!r} to be a list of non-negative integers, got {value!r}")
    return tuple(value)


def _decode_bytes_elements(raw: bytes | memoryview, count: int, name: str) -> list[bytes]:
    """Binary BYTES tensor: each element is a 4-byte little-endian length, then the bytes."""
    out, pos = [], 0
    for i in range(count):
        if pos + 4 > len(raw):
            raise BadRequest(f"Expected {count} length-prefixed elements in binary BYTES input {name!r}, got {i}")
        (n,) = struct.unpack_from("<I", raw, pos)
        pos += 4
        if pos + n > len(raw):
            raise BadRequest(f"Expected element {i} of binary BYTES input {name!r} to fit the {len(raw) - pos} bytes left, got a length of {n}")
        out.append(bytes(raw[pos : pos + n]))
        pos += n
    if pos != len(raw):
        raise BadRequest(f"Expected binary BYTES input {name!r} to end after its {count} elements, got {len(raw) - pos} more bytes")
    return out


def _json_bytes_elements(data: Any, count: int, name: str) -> list[bytes]:
    """JSON BYTES tensor: images travel as base64 strings (JSON cannot carry raw bytes)."""
    flat = data
    while isinstance(flat, list) and len(flat) == 1 and isinstance(flat[0], list):
        flat = flat[0]
    if not isinstance(flat, list) or len(flat) != count or not all(isinstance(s, str) for s in flat):
        raise BadRequest(f"Expected 'data' of BYTES input {name!r} to be {count} base64 strings, got {type(data).__name__}")
    out = []
    for i, s in enumerate(flat):
        try:
            out.append(base64.b64decode(s, validate=True))
        except (binascii.Error, ValueError) as exc:
            raise BadRequest(f"Expected element {i} of BYTES input {name!r} to be base64-encoded image bytes: {exc}") from exc
    return out


def _json_numbers(data: Any, shape: tuple[int, ...], dtype: Any, name: str, datatype: str) -> np.ndarray:
    try:
        arr = np.asarray(data, dtype=dtype)
    except (TypeError, ValueError, OverflowError, RecursionError) as exc:
        raise BadRequest(f"Expected 'data' of {datatype} input {name!r} to hold numbers only: {exc}") from exc
    size = math.prod(shape)
    if arr.size != size:
        raise BadRequest(f"Expected {size} values for input {name!r} of shape {list(shape)}, got {arr.size}")
    return arr.reshape(shape)


def _json_header(body: bytes, header_length: str | None) -> tuple[dict[str, Any], int]:
    """``(JSON object, its length in bytes)``: the whole body, or its first
    ``Inference-Header-Content-Length`` bytes when binary tensors follow."""
    if header_length is not None:
        try:
            n = int(header_length)
        except ValueError:
            raise BadRequest(f"Expected header Inference-Header-Content-Length to be an integer, got {header_length!r}") from None
        if not 0 < n <= len(body):
            raise BadRequest(f"Expected Inference-Header-Content-Length between 1 and the body size {len(body)}, got {n}")
    else:
        n = len(body)
    try:
        doc = json.loads(body[:n])
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise BadRequest(f"Expected a JSON inference request, got malformed JSON: {exc}") from None
    except RecursionError:
        raise BadRequest("Expected a JSON inference request, got JSON nested too deeply to parse") from None
    if not isinstance(doc, dict):
        raise BadRequest(f"Expected a JSON object with 'inputs', got a JSON {type(doc).__name__}")
    return doc, n


def parse_infer_request(body: bytes, header_length: str | None = None) -> InferBody:
    """Parse a V2 infer request body (JSON, or JSON + binary tensors).

    Returns:
        :class:`InferBody`; numeric inputs as arrays of their V2 datatype and shape, BYTES
        inputs as lists of ``bytes``.

    Raises:
        BadRequest: malformed JSON, missing or mistyped fields, sizes that disagree.

    >>> parse_infer_request(b'{"inputs": [{"name": "x", "shape": [2], "datatype": "FP32", "data": [1, 2]}]}').inputs["x"]
    array([1., 2.], dtype=float32)
    """
    doc, n = _json_header(body, header_length)
    inputs = doc.get("inputs")
    if not isinstance(inputs, list) or not inputs:
        raise BadRequest(f"Expected 'inputs' to be a non-empty list of tensors, got {inputs!r:.80}")
    binary, pos = memoryview(body)[n:], 0  # no copy of the tensors' bytes
    parsed: dict[str, np.ndarray | list[bytes]] = {}
    for i, spec in enumerate(inputs):
        if not isinstance(spec, dict) or not isinstance(spec.get("name"), str):
            raise BadRequest(f"Expected input {i} to be an object with a string 'name', got {spec!r:.80}")
        name = spec["name"]
        if name in parsed:
            raise BadRequest(f"Expected each input once, got {name!r} twice")
        datatype = spec.get("datatype")
        if datatype != "BYTES" and datatype not in V2_DTYPES:
            raise BadRequest(f"Expected 'datatype' of input {name!r} to be one of BYTES, {', '.join(V2_DTYPES)}, got {datatype!r}")
        shape = _shape(spec.get("shape"), name)
        params = spec.get("parameters") or {}
        if not isinstance(params, dict):
            raise BadRequest(f"Expected 'parameters' of input {name!r} to be an object, got {params!r:.80}")
        count = math.prod(shape)  # Python integers: no overflow, whatever the shape says
        if count > len(body):  # every element takes at least one byte of the body
            raise BadRequest(
                f"Expected a shape whose {count} elements fit the {len(body)}-byte request, got shape {list(shape)} "
                f"for input {name!r}"
            )
        if "binary_data_size" in params:
            size = params["binary_data_size"]
            if not isinstance(size, int) or isinstance(size, bool) or size < 0 or pos + size > len(binary):
                raise BadRequest(
                    f"Expected binary_data_size of input {name!r} to fit the {len(binary) - pos} binary bytes left, got {size!r}"
                )
            raw = binary[pos : pos + size]
            pos += size
            if datatype == "BYTES":
                parsed[name] = _decode_bytes_elements(raw, count, name)
            else:
                dtype = np.dtype(V2_DTYPES[datatype])
                if size != count * dtype.itemsize:
                    raise BadRequest(
                        f"Expected {count * dtype.itemsize} bytes for {datatype} input {name!r} of shape {list(shape)}, got {size}"
                    )
                parsed[name] = np.frombuffer(raw, dtype=dtype.newbyteorder("<")).astype(dtype, copy=False).reshape(shape)
        elif "data" in spec:
            if datatype == "BYTES":
                parsed[name] = _json_bytes_elements(spec["data"], count, name)
            else:
                parsed[name] = _json_numbers(spec["data"], shape, V2_DTYPES[datatype], name, datatype)
        else:
            raise BadRequest(f"Expected input {name!r} to carry 'data' or parameters.binary_data_size, got neither")
    if pos != len(binary):
        raise BadRequest(f"Expected the binary part to hold exactly the inputs' binary_data_size bytes; {len(binary) - pos} bytes are left over")

    outputs, binary_outputs = None, set()
    default_binary = bool((doc.get("parameters") or {}).get("binary_data_output", False)) if isinstance(doc.get("parameters"), dict) else False
    if doc.get("outputs") is not None:
        if not isinstance(doc["outputs"], list) or not all(isinstance(o, dict) and isinstance(o.get("name"), str) for o in doc["outputs"]):
            raise BadRequest(f"Expected 'outputs' to be a list of objects with a string 'name', got {doc['outputs']!r:.80}")
        outputs = [o["name"] for o in doc["outputs"]]
        for o in doc["outputs"]:
            if bool((o.get("parameters") or {}).get("binary_data", default_binary)):
                binary_outputs.add(o["name"])
    elif default_binary:
        binary_outputs = {"*"}
    request_id = doc.get("id") if isinstance(doc.get("id"), str) else None
    return InferBody(parsed, outputs, binary_outputs, request_id)


def encode_infer_response(model_name: str, outputs: dict[str, np.ndarray], binary: set[str],
                          request_id: str | None = None) -> tuple[bytes, int | None]:
    """Encode outputs as a V2 response; returns ``(body, json_length or None when all JSON)``.

    Outputs named in ``binary`` (``"*"``: all) travel as raw little-endian bytes after the JSON.
    """
    head: dict[str, Any] = {"model_name": model_name, "outputs": []}
    if request_id is not None:
        head["id"] = request_id
    parts: list[bytes] = []
    for name, value in outputs.items():
        arr = np.ascontiguousarray(value)
        entry: dict[str, Any] = {"name": name, "shape": list(arr.shape), "datatype": _NUMPY_TO_V2[arr.dtype]}
        if name in binary or "*" in binary:
            data = arr.astype(arr.dtype.newbyteorder("<"), copy=False).tobytes()
            entry["parameters"] = {"binary_data_size": len(data)}
            parts.append(data)
        else:
            entry["data"] = arr.reshape(-1).tolist()
        head["outputs"].append(entry)
    text = json.dumps(head).encode()
    if not parts:
        return text, None
    return text + b"".join(parts), len(text)
