"""Every Python block of the README runs as written (and the new integration pages' examples).

The README's ```python blocks are executed in order in one namespace, as a reader running them
one after another in one session would (a later block may use a name an earlier one made: the
GPU block analyses the training example's model), in a temporary working directory, so that
what they write (``out/…``) stays out of the repository. Nothing is downloaded (Hugging Face
models are built from configs with random weights).
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
_BLOCK = re.compile(r"^```python\n(.*?)^```", re.S | re.M)


def python_blocks(text: str) -> list[str]:
    """The bodies of the fenced ```python blocks of a Markdown text, in order."""
    return _BLOCK.findall(text)


def _section(text: str, heading: str) -> str:
    """The Markdown from ``heading`` (a line) to the next heading of the same level."""
    start = text.index(heading + "\n")
    level = heading.split(" ")[0]
    rest = text[start + len(heading) + 1 :]
    m = re.search(rf"^{level} ", rest, re.M)
    return rest[: m.start()] if m else rest


def _run(blocks: list[str], where: str, tmp_path: Path, monkeypatch) -> dict:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("MPLBACKEND", "Agg")
    namespace: dict = {"__name__": "__readme__"}
    for k, code in enumerate(blocks):
        try:
            exec(compile(code, f"{where} python block {k}", "exec"), namespace)
        except Exception as exc:  # name the block in the failure
            raise AssertionError(f"{where}: python block {k} failed:\n{code}") from exc
    return namespace


def test_python_blocks_are_found():
    text = "a\n```python\nx = 1\n```\ntext\n```bash\nls\n```\n```python\ny = 2\n```\n"
    assert python_blocks(text) == ["x = 1\n", "y = 2\n"]


@pytest.mark.slow
def test_every_python_block_of_the_readme_runs(tmp_path, monkeypatch):
    blocks = python_blocks((ROOT / "README.md").read_text(encoding="utf-8"))
    assert len(blocks) >= 8
    ns = _run(blocks, "README.md", tmp_path, monkeypatch)
    # what the integration examples claim
    assert ns["diagrams"].shape == (4, 29, 3)
    assert ns["M"].shape == (6, 6) and ns["res"].exact and ns["res"].n_permutations == 20
    assert any("topo_penalty" in log for log in ns["trainer"].state.log_history)
    assert (tmp_path / "out" / "hf").is_dir() and (tmp_path / "out" / "runs").is_dir()


@pytest.mark.slow
@pytest.mark.parametrize(
    ("page", "heading"),
    [
        ("integrations.md", "## Hugging Face `Trainer`"),
        ("integrations.md", "## scikit-learn and giotto-tda"),
        ("integrations.md", "## Tables (pandas)"),
        ("persistence.md", "## Distances between barcodes"),
    ],
)
def test_integration_pages_examples_run(page, heading, tmp_path, monkeypatch):
    text = (ROOT / "docs" / page).read_text(encoding="utf-8")
    blocks = python_blocks(_section(text, heading))
    assert blocks, f"no python block under {heading!r} in docs/{page}"
    ns = _run(blocks, f"docs/{page} {heading}", tmp_path, monkeypatch)
    if "Trainer" in heading:
        assert len(ns["penalties"]) == 4 and all(p > 0 for p in ns["penalties"])
        (bars,) = [c for c in ns["trainer"].callback_handler.callbacks if hasattr(c, "history")]
        assert bars.history.steps == [2, 4]
        assert (tmp_path / "out" / "hf" / "checkpoint-4" / "topo_neurons_regularizer.pt").exists()
    if "scikit" in heading:
        assert ns["diagrams"].shape == (5, 39, 3)
    if "Tables" in heading:
        assert len(ns["neurons"]) == 20 and ns["layers"]["layer"].tolist()[-1] == "network"
