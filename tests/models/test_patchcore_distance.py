"""PatchCore's patch distances are exact near zero (issue 25): the search may use the expanded
form |m|^2 - 2 x.m (one matrix product, which a reduced execution precision may run), but the
distance reported is |x - m| of the entry found, which does not cancel when x is close to m."""

from __future__ import annotations

import torch

from edgeanomaly.models import create_model

SIZE = 64


def test_a_patch_in_the_bank_scores_exactly_zero_and_scores_match_cdist() -> None:
    model = create_model("patchcore", backbone="resnet18", pretrained=False, random_state=0, coreset_ratio=1.0)
    model.eval()
    gen = torch.Generator().manual_seed(0)
    train = torch.rand(2, 3, SIZE, SIZE, generator=gen)
    with torch.no_grad():
        model.fit([train])
        score, amap = model(train)
        # every patch of a training image is a bank entry: distance 0 up to the embedding's own
        # rounding (the expanded form gave 0.018 here, 0.4 % of a test image's score)
        test_scale = float(model(torch.rand(2, 3, SIZE, SIZE, generator=torch.Generator().manual_seed(1)))[0].min())
        assert float(amap.abs().max()) <= 1e-4 * test_scale
        test = torch.rand(2, 3, SIZE, SIZE, generator=gen)
        score, amap = model(test)
        emb = model.embed(test)
    n, d, h, w = emb.shape
    patches = emb.permute(0, 2, 3, 1).reshape(n, h * w, d).double()
    bank = model.memory_bank_.double()
    # independent oracle: torch.cdist in float64, nearest entry, then the paper's re-weighting
    dist = torch.cdist(patches, bank[None].expand(n, -1, -1))
    patch_scores, nearest = dist.min(-1)
    top, pos = patch_scores.max(1)
    support = model.support_idx_[nearest[torch.arange(n), pos]]
    to_support = torch.stack([torch.cdist(patches[i, pos[i]][None], bank[support[i]])[0] for i in range(n)])
    expected = (1 - torch.softmax(to_support, 1)[:, 0]) * top
    torch.testing.assert_close(score.double(), expected, rtol=1e-5, atol=0)
