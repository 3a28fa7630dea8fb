"""Regression tests for defects found in review of the fold (topo_neurons.compress)."""

import pytest
import torch
from torch import nn

from topo_neurons.compress import fold_redundant


def _prelu_model(num_parameters: int) -> nn.Module:
    torch.manual_seed(0)
    m = nn.Sequential(nn.Linear(4, 6), nn.PReLU(num_parameters), nn.Linear(6, 2))
    with torch.no_grad():
        m[0].weight[5] = m[0].weight[0]
        m[0].bias[5] = m[0].bias[0]
    return m


def test_per_channel_prelu_is_refused_not_left_unsliced():
    m = _prelu_model(6)
    x = torch.randn(200, 4)
    with pytest.raises(ValueError, match="PReLU"):
        fold_redundant(m, x, threshold=0.01, layers="0")
    folded, report = fold_redundant(m, x, threshold=0.01)
    assert "0" in report.skipped and "PReLU" in report.skipped["0"]
    torch.testing.assert_close(folded(x), m(x))


def test_shared_prelu_still_folds_exactly():
    m = _prelu_model(1)
    x = torch.randn(200, 4)
    folded, report = fold_redundant(m, x, threshold=0.01)
    assert report.layers[0].removed == (5,)
    assert folded[0].out_features == 5
    torch.testing.assert_close(folded(x), m(x), atol=1e-5, rtol=1e-5)


def test_fold_report_with_skipped_not_an_object_is_a_value_error(tmp_path):
    import json

    from topo_neurons.compress import FoldReport

    m = _prelu_model(1)
    _, report = fold_redundant(m, torch.randn(200, 4), threshold=0.01, dry_run=True)
    d = report.to_dict()
    d["skipped"] = ["not", "a", "mapping"]
    path = tmp_path / "fold.json"
    path.write_text(json.dumps(d), encoding="utf-8")
    with pytest.raises(ValueError, match="not a valid fold report"):
        FoldReport.from_json(path)
