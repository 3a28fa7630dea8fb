"""The public surface: every ``__all__`` name exists, is documented, and is in the docs."""

from __future__ import annotations

from pathlib import Path

import topo_neurons as tn

ROOT = Path(__file__).resolve().parents[1]


def test_all_names_exist_and_have_docstrings():
    for name in tn.__all__:
        assert hasattr(tn, name), f"{name} listed in __all__ but missing"
        if name != "__version__":
            assert getattr(tn, name).__doc__, f"{name} has no docstring"


def test_every_public_name_is_in_the_api_reference():
    api = (ROOT / "docs" / "api.md").read_text()
    missing = [n for n in tn.__all__ if n != "__version__" and f"topo_neurons.{n}" not in api]
    assert not missing, f"add to docs/api.md: {missing}"


def test_version_comes_from_the_metadata():
    from importlib.metadata import version

    assert tn.__version__ == version("topo_neurons")


def test_import_does_not_load_matplotlib_pyplot():
    import subprocess
    import sys

    code = "import sys, topo_neurons; print('matplotlib.pyplot' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
