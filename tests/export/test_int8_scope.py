"""What the INT8 export quantises, read from the written IR (issue 15: INT8 that pays on CPUs).

PatchCore quantises its whole backbone (``int8_max_stride = 16``) and keeps its memory bank
FP32 (``int8_head_fp32``): every backbone convolution takes a FakeQuantize input and no FP16
constant is left for OpenVINO's slower FP16-weight kernel. The other models keep the default
scope (stride 8: the deeper blocks stay floating point) and FP16 storage.
"""

from __future__ import annotations

import pytest

from edgeanomaly.models import model_class


def _scope(xml) -> tuple[list[str], list[str], int]:
    import openvino as ov

    model = ov.Core().read_model(str(xml))
    quantised, floating = [], []
    for op in model.get_ops():
        if op.get_type_name() in ("Convolution", "GroupConvolution") and "feature_extractor" in op.get_friendly_name():
            fed = op.input_value(0).get_node().get_type_name() == "FakeQuantize"
            (quantised if fed else floating).append(op.get_friendly_name())
    f16 = sum(1 for op in model.get_ops() if op.get_type_name() == "Constant" and op.get_element_type() == ov.Type.f16)
    return quantised, floating, f16


@pytest.mark.parametrize("model", ["patchcore", "padim"])
def test_int8_scope_follows_the_model(model: str, exported) -> None:
    _, report = exported[model]
    quantised, floating, f16 = _scope(report.out / "openvino-int8" / "model.xml")
    cls = model_class(model)
    assert quantised, "no backbone convolution was quantised"
    if cls.int8_max_stride >= 16:  # PatchCore: blocks.10 is its deepest layer, at stride 16
        assert floating == [], floating
    else:
        assert any("_blocks.10" in n for n in floating), floating  # stride 16: left FP32
        assert not any("_blocks.10" in n for n in quantised)
    assert (f16 == 0) == cls.int8_head_fp32, f16
