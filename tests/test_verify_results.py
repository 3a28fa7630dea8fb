"""scripts/verify_results.py: one verdict per retrained row (identical, within tolerance,
differs), and its help says on which machines rows are bit-identical."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "verify_results.py"


@pytest.fixture(scope="module")
def verify():
    spec = importlib.util.spec_from_file_location("verify_results", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


ROW = {
    "task": "mnist5k",
    "status": "ok",
    "metric": "accuracy",
    "val_metric": "0.925",
    "test_metric": "0.918",
    "val_loss": "0.296227365732193",
    "best_epoch": "35",
    "epochs": "45",
    "seconds": "16.0",
    "message": "",
    "checksum": "a332ce435dd43cdb",
}


def _retrained(**changes):
    new = {k: v for k, v in ROW.items() if k != "checksum"}  # train_network has no checksum
    new.update(seconds=3.5, **changes)
    return new


def test_identical_rows_ignore_the_wall_time_and_the_checksum(verify):
    assert verify.compare(ROW, _retrained(), atol=0.01, rtol=0.05) == ("IDENTICAL", {})


def test_rounding_drift_is_within_tolerance_and_names_the_fields(verify):
    new = _retrained(val_metric="0.924", val_loss="0.29601991176605225", best_epoch="36")
    verdict, diff = verify.compare(ROW, new, atol=0.01, rtol=0.05)
    assert verdict == "WITHIN TOLERANCE"
    assert set(diff) == {"val_metric", "val_loss", "best_epoch"}
    assert diff["val_metric"] == ("0.925", "0.924")


@pytest.mark.parametrize(
    "changes",
    [{"test_metric": "0.898"}, {"val_loss": "0.4"}, {"status": "diverged"}, {"metric": "r2"}],
)
def test_beyond_the_tolerances_or_another_status_differs(verify, changes):
    assert verify.compare(ROW, _retrained(**changes), atol=0.01, rtol=0.05)[0] == "DIFFERS"


def test_help_says_when_rows_are_bit_identical(verify, capsys):
    with pytest.raises(SystemExit):
        verify.main(["--help"])
    out = " ".join(capsys.readouterr().out.split())
    assert "same CPU family and instruction set" in out and "WITHIN TOLERANCE" in out
    assert "--exact" in out and "--atol" in out
