"""Fitting on too few distinct images says how many the model needs (not a 13-frame ValueError
or NaN scores), for every registered model."""

from __future__ import annotations

import pytest
import torch

from edgeanomaly.errors import DatasetError
from edgeanomaly.models import create_model, list_models

SIZE = 64

pytestmark = pytest.mark.slow  # 16 small fits


def small(name: str):
    from test_contract import SHORT_TRAINING

    return create_model(name, backbone="resnet18", pretrained=False, random_state=0, **SHORT_TRAINING.get(name, {}))


def noise(n: int, seed: int = 0) -> torch.Tensor:
    return torch.rand(n, 3, SIZE, SIZE, generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("name", list_models())
def test_too_few_distinct_images_say_how_many_are_needed(name: str) -> None:
    model = small(name)
    need = model.min_distinct_images
    assert need >= 1
    cases = {
        "one image": [noise(1)],
        "identical": [noise(1).repeat(6, 1, 1, 1)],
        "all black": [torch.zeros(4, 3, SIZE, SIZE), torch.zeros(2, 3, SIZE, SIZE)],
    }
    for case, batches in cases.items():
        if need <= 1:
            small(name).fit(batches)  # PatchCore works from the patches of one image
            continue
        with pytest.raises(DatasetError, match=rf"needs at least {need} distinct training images.*got .*1 distinct") as info:
            small(name).fit(batches)
        assert type(model).__name__ in str(info.value), case
    # Exactly the minimum is enough, and the scores are finite.
    model = small(name).fit([noise(need, seed=3)])
    assert torch.isfinite(model.predict(noise(2, seed=4))["pred_score"]).all()
