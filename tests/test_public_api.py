"""The public surface: every ``__all__`` name exists, is documented, and is in the docs."""

from __future__ import annotations

from pathlib import Path

import pytest

import topo_neurons as tn

ROOT = Path(__file__).resolve().parents[1]


def test_all_names_exist_and_have_docstrings():
    assert len(tn.__all__) > 30
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


MOVED_TO_EXPERIMENTS = (
    "critical_difference",
    "friedman_test",
    "load_task",
    "make_model",
    "plot_cd_diagram",
    "reproduce",
)


def test_import_does_not_load_the_experiments():
    import subprocess
    import sys

    code = "import sys, topo_neurons; print(sorted(m for m in sys.modules if 'experiments' in m))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


@pytest.mark.parametrize("name", MOVED_TO_EXPERIMENTS)
def test_experiment_names_at_the_root_are_deprecated_aliases(name):
    import topo_neurons.experiments as experiments

    assert name not in tn.__all__
    with pytest.warns(DeprecationWarning, match=rf"topo_neurons\.{name} is deprecated.*"
                      r"import from topo_neurons\.experiments"):  # fmt: skip
        alias = getattr(tn, name)
    assert alias is getattr(experiments, name)
    with pytest.warns(DeprecationWarning, match="import from topo_neurons.experiments"):
        exec(f"from topo_neurons import {name} as imported", {})  # the from-import form too


def test_unknown_root_names_still_raise_attribute_error():
    with pytest.raises(AttributeError, match="has no attribute 'no_such_name'"):
        tn.no_such_name
