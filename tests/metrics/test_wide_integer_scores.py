"""Integer scores beyond float64's exact range (2**53) keep their order: no lossy cast."""

from __future__ import annotations

import numpy as np
import pytest

from edgeanomaly.metrics import AUROC, aupr, auroc, f1_adaptive_threshold

sklearn_metrics = pytest.importorskip("sklearn.metrics", reason="scikit-learn is the oracle")


@pytest.mark.parametrize("dtype", [np.int64, np.uint64])
def test_int64_scores_above_2_53_match_sklearn(dtype: type) -> None:
    base = 2**53 if dtype is np.int64 else 2**63
    # Consecutive integers that float64 merges into ties; positives are exactly the larger ones.
    scores = (np.array([base] * 1, dtype=dtype) + np.arange(8, dtype=dtype))
    labels = np.array([0, 0, 0, 0, 1, 1, 1, 1])
    assert np.unique(scores.astype(np.float64)).size < scores.size  # the trap is real
    expected_auroc = sklearn_metrics.roc_auc_score(labels, scores)
    assert expected_auroc == 1.0
    assert auroc(scores, labels) == pytest.approx(expected_auroc, abs=1e-12)
    assert AUROC().update(scores, labels).compute() == pytest.approx(expected_auroc, abs=1e-12)
    assert aupr(scores, labels) == pytest.approx(sklearn_metrics.average_precision_score(labels, scores), abs=1e-12)
    # The classes are separable, so the best F1 is 1 (float64 ties would cap it below).
    assert f1_adaptive_threshold(scores, labels).f1 == pytest.approx(1.0)

def test_small_integers_still_use_float64_or_narrower() -> None:
    from edgeanomaly.metrics._validate import scores

    assert scores(np.array([1, 2, 3], np.int64)).dtype == np.float64
    assert scores(np.array([1, 2, 3], np.int16)).dtype == np.float32
