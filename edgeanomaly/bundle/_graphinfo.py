"""The ``model_info`` a graph file carries itself, compared with its bundle's manifest.

The exporter writes the manifest's ``model_info`` into every graph (ONNX ``metadata_props``,
OpenVINO ``rt_info`` under ``model_info``). A checksum says a file is the one the manifest
lists; it does not say the graph belongs to this model: a PaDiM ``model.onnx`` copied into a
PatchCore bundle with a recomputed manifest passes every checksum. Comparing the graph's own
``model_info`` with the manifest's catches it, before anything is compiled.

Read without onnx or openvino: ONNX through the protobuf wire format of ``ModelProto``'s top
level (the graph and its weights are skipped, never read), an IR through its ``.xml`` text.
"""

from __future__ import annotations

import io
import os
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any, BinaryIO

from edgeanomaly.errors import BundleError, GraphMismatchError
from edgeanomaly.registry import formats, resolve

__all__ = ["graph_model_info", "check_graph", "COMPARED_FIRST"]

#: ModelProto field numbers (onnx.proto3): metadata_props = 14; StringStringEntryProto key = 1, value = 2.
_METADATA_PROPS = 14
#: The most metadata read from one graph (real ones hold a few KB).
_MAX_METADATA_BYTES = 1 << 20

#: Keys named first in a mismatch: the model's identity and its input/output contract.
COMPARED_FIRST = ("model", "task", "input_height", "input_width", "static_batch", "backbone", "layers",
                  "schema_version", "edgeanomaly_version", "created_utc")


class _Malformed(Exception):
    pass


def _varint(f: BinaryIO) -> int | None:
    """A protobuf varint, or None at the end of the file (before its first byte)."""
    result = shift = 0
    while True:
        b = f.read(1)
        if not b:
            if shift == 0:
                return None
            raise _Malformed("file ends inside a varint")
        result |= (b[0] & 0x7F) << shift
        if not b[0] & 0x80:
            return result
        shift += 7
        if shift > 63:
            raise _Malformed("varint longer than 10 bytes")


def _entry(data: bytes) -> tuple[str, str]:
    """(key, value) of a StringStringEntryProto."""
    f = io.BytesIO(data)
    fields: dict[int, str] = {}
    while (tag := _varint(f)) is not None:
        if tag & 7 != 2:
            raise _Malformed(f"metadata entry field {tag >> 3} has wire type {tag & 7}, expected a string")
        length = _varint(f)
        if length is None:
            raise _Malformed("metadata entry ends inside a length")
        raw = f.read(length)
        if len(raw) != length:
            raise _Malformed("metadata entry string runs past its end")
        try:
            fields[tag >> 3] = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise _Malformed(f"metadata entry is not UTF-8 ({exc})") from exc
    return fields.get(1, ""), fields.get(2, "")


def _onnx_metadata(path: Path) -> dict[str, str]:
    """``metadata_props`` of an ONNX file, walking only the top level of ModelProto."""
    size = path.stat().st_size
    props: dict[str, str] = {}
    total = 0
    with open(path, "rb") as f:
        while True:
            tag = _varint(f)
            if tag is None:
                break
            field, wire = tag >> 3, tag & 7
            if wire == 0:
                if _varint(f) is None:
                    raise _Malformed("file ends inside a field")
            elif wire == 1:
                f.seek(8, os.SEEK_CUR)
            elif wire == 5:
                f.seek(4, os.SEEK_CUR)
            elif wire == 2:
                length = _varint(f)
                if length is None or f.tell() + length > size:
                    raise _Malformed(f"field {field} runs past the end of the file")
                if field == _METADATA_PROPS:
                    total += length
                    if total > _MAX_METADATA_BYTES:
                        raise _Malformed(f"more than {_MAX_METADATA_BYTES} bytes of metadata_props")
                    key, value = _entry(f.read(length))
                    props[key] = value
                else:
                    f.seek(length, os.SEEK_CUR)  # the graph, its weights, opsets: not read
            else:
                raise _Malformed(f"field {field} has wire type {wire}, not used by ModelProto")
            if f.tell() > size:
                raise _Malformed("a field runs past the end of the file")
    return props


#: How much of an IR's end is searched for its ``rt_info`` (real ones are a few KB).
_RT_INFO_TAIL = 1 << 20


def _model_info_of(rt_info: ET.Element) -> dict[str, str]:
    props: dict[str, str] = {}
    for section in rt_info:
        if section.tag != "model_info":
            continue
        for elem in section:
            key = elem.get("name") if elem.tag == "info" and elem.get("name") else elem.tag
            value = elem.get("value")
            if value is not None:
                props[key] = value
    return props


def _openvino_tail(path: Path) -> dict[str, str] | None:
    """The fast path: OpenVINO writes ``<rt_info>`` as the last child of ``<net>``, so it is
    parsed from the file's end alone. None when the end does not look like that."""
    size = path.stat().st_size
    with open(path, "rb") as f:
        f.seek(max(0, size - _RT_INFO_TAIL))
        tail = f.read()
    start, end = tail.rfind(b"<rt_info>"), tail.rfind(b"</rt_info>")
    if start < 0 or end < start or tail[end + len(b"</rt_info>"):].strip() != b"</net>":
        return None
    try:
        return _model_info_of(ET.fromstring(tail[start : end + len(b"</rt_info>")]))
    except ET.ParseError:
        return None


def _openvino_metadata(path: Path) -> dict[str, str]:
    """``rt_info/model_info`` of an OpenVINO IR ``.xml``: from the end of the file when it has
    OpenVINO's layout, else by streaming the whole file (layers are not kept)."""
    fast = _openvino_tail(path)
    if fast is not None:
        return fast
    props: dict[str, str] = {}
    depth: list[str] = []
    try:
        for event, elem in ET.iterparse(str(path), events=("start", "end")):
            if event == "start":
                depth.append(elem.tag)
                continue
            if len(depth) == 4 and depth[1] == "rt_info" and depth[2] == "model_info":
                key = elem.get("name") if elem.tag == "info" and elem.get("name") else elem.tag
                value = elem.get("value")
                if value is not None:
                    props[key] = value
            depth.pop()
            if len(depth) <= 2:
                elem.clear()  # layers and edges are not kept in memory
    except ET.ParseError as exc:
        raise _Malformed(f"not well-formed XML ({exc})") from exc
    return props


def graph_model_info(path: str | os.PathLike[str], fmt: str) -> dict[str, str] | None:
    """The ``model_info`` written into a graph file, or None for a format without a reader.

    Args:
        path: the file a backend loads (``model.onnx``, ``openvino/model.xml``).
        fmt: the artifact format; its registry row names the reader (``model_info_reader``).

    Raises:
        BundleError: the file cannot be parsed as that format.

    >>> graph_model_info("pc.bundle/model.onnx", "onnx")["model"]      # doctest: +SKIP
    'patchcore'
    """
    spec = next((f for f in formats() if f.name == fmt), None)
    if spec is None or spec.model_info_reader is None:
        return None
    reader = resolve(spec.model_info_reader)
    path = Path(path)
    try:
        return reader(path)
    except _Malformed as exc:
        raise BundleError(f"{path} is not a readable {fmt} graph: {exc}") from exc
    except OSError as exc:
        raise BundleError(f"{path} cannot be read ({exc})") from exc


def check_graph(bundle: Any, artifact: Any) -> None:
    """Refuse a graph whose own ``model_info`` disagrees with the manifest's.

    Every key of the manifest's ``model_info`` must be in the graph with the same value (the
    model's name, task, input size, batch, backbone, layers, the edgeanomaly version and time
    of the export: a graph from another export of the same model differs there too), and an
    IR's ``precision`` key must be the artifact's precision. The graph may carry more keys.
    A format without a reader (none built in) is not checked.

    Raises:
        GraphMismatchError: a graph without ``model_info`` or with another one; the message
            names the artifact, the file and the first differing keys with both values.
        BundleError: the graph file cannot be parsed.
    """
    path = bundle.path(artifact)
    found = graph_model_info(path, artifact.format)
    if found is None:
        return
    where = f"Bundle {bundle.source}: artifact {artifact.name} ({artifact.path})"
    declared = dict(bundle.manifest.model_info)
    if not found:
        raise GraphMismatchError(
            f"{where} carries no model_info in its graph metadata (ONNX metadata_props, OpenVINO rt_info), "
            "so it cannot be matched with the manifest's model; it was not exported by edgeanomaly, or was "
            "replaced. Re-export the bundle."
        )
    order = [k for k in COMPARED_FIRST if k in declared] + sorted(k for k in declared if k not in COMPARED_FIRST)
    differ = [k for k in order if found.get(k) != declared[k]]
    if "precision" in found and found["precision"] != artifact.precision:
        differ.append("precision")
        declared = {**declared, "precision": artifact.precision}
    if differ:
        def show(key: str) -> str:
            value = found.get(key)
            return f"{key}={'(absent)' if value is None else repr(_short(value))} where the manifest says {_short(declared[key])!r}"

        first = "; ".join(show(k) for k in differ[:3])
        more = f" (also differs: {', '.join(differ[3:])})" if len(differ) > 3 else ""
        raise GraphMismatchError(
            f"{where} is not this bundle's graph: its own model_info has {first}{more}. The graph was copied "
            "from another model or export; refusing to compile it. Re-export the bundle."
        )


def _short(value: str, limit: int = 60) -> str:
    return value if len(value) <= limit else value[: limit - 1] + "…"
