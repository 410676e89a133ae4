"""``load``'s settings are one documented object, ``LoadOptions``: keywords build it, an object
passes it whole, keywords override an object's fields, and bad values fail once, when it is made."""

from __future__ import annotations

from pathlib import Path

import pytest

from edgeanomaly.errors import ConfigError
from edgeanomaly.runtime import LoadOptions, load


def test_an_options_object_and_keywords_load_the_same(seg_bundle: Path) -> None:
    opts = LoadOptions(precision="fp32", exact=True, num_threads=1)
    with load(seg_bundle, "onnxruntime", options=opts) as a, load(seg_bundle, "onnxruntime", precision="fp32", exact=True,
                                                                    num_threads=1) as b:
        assert a.options == b.options == opts
        assert (a.artifact.name, a.precision) == (b.artifact.name, b.precision)
    with load(seg_bundle, "onnxruntime", options=opts, num_threads=2) as c:  # a keyword overrides the object
        assert c.options.num_threads == 2 and c.options.exact is True


def test_bad_settings_are_refused_by_name() -> None:
    with pytest.raises(ConfigError, match="load\\(\\) has no setting 'nthreads'; its settings: .*num_threads"):
        LoadOptions.of(None, {"nthreads": 2})
    with pytest.raises(ConfigError, match="inference precision 'f64'"):
        LoadOptions(inference_precision="f64")
    with pytest.raises(ConfigError, match="performance hint"):
        LoadOptions(performance_hint="fast")
    with pytest.raises(ConfigError, match="Expected options as a LoadOptions, got dict"):
        LoadOptions.of({"exact": True}, {})  # type: ignore[arg-type]
    assert LoadOptions(inference_precision="BF16").inference_precision == "bf16"


def test_load_refuses_an_unknown_keyword_before_opening_anything(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="no setting 'thread'"):
        load(tmp_path / "missing.bundle", thread=2)
