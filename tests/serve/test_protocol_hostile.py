"""Hostile V2 request bodies at the parser (issue 20, item 1): a clear 4xx, never a 500.

Runs without a server: ``parse_infer_request`` is what the REST route calls first; the same
bodies against a real server are in test_hostile_requests.py.
"""

from __future__ import annotations

import json

import pytest

from edgeanomaly.serve._protocol import BadRequest, parse_infer_request


def _nested(depth: int) -> bytes:
    return b'{"inputs": ' + b"[" * depth + b"]" * depth + b"}"


def test_deeply_nested_json_is_a_400_not_a_recursion_error():
    with pytest.raises(BadRequest, match="(?i)expected.*nested") as info:
        parse_infer_request(_nested(200_000))
    assert info.value.status == 400


@pytest.mark.parametrize("shape", [[2**32, 2**32], [2**63, 2], [2**40, 2**40, 2**40]])
@pytest.mark.parametrize("datatype", ["FP32", "BYTES", "UINT8"])
def test_huge_shape_with_empty_data_is_a_4xx(shape, datatype):
    body = json.dumps({"inputs": [{"name": "image", "shape": shape, "datatype": datatype, "data": []}]}).encode()
    with pytest.raises(BadRequest, match=r"(?i)expected.*elements") as info:
        parse_infer_request(body)
    assert 400 <= info.value.status < 500


def test_huge_shape_with_binary_data_is_a_4xx():
    head = json.dumps({"inputs": [{"name": "image", "shape": [2**32, 2**32], "datatype": "FP32",
                                   "parameters": {"binary_data_size": 16}}]}).encode()
    with pytest.raises(BadRequest, match=r"(?i)expected") as info:
        parse_infer_request(head + bytes(16), str(len(head)))
    assert 400 <= info.value.status < 500


def test_nested_data_within_the_recursion_limit_is_a_400():
    inner = "[" * 900 + "1" + "]" * 900
    body = ('{"inputs": [{"name": "image", "shape": [1], "datatype": "FP32", "data": ' + inner + "}]}").encode()
    with pytest.raises(BadRequest):
        parse_infer_request(body)
