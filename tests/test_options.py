"""The one option check: a bad value raises ValueError naming the option, value and choices."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

import topo_neurons as tn
from topo_neurons._options import check_choice

VALID = ("sum", "mean")


@given(st.sampled_from(VALID))
def test_a_valid_value_is_returned_unchanged(value):
    assert check_choice("reduction", value, VALID) is value


@given(st.text().filter(lambda s: s not in VALID))
def test_any_other_value_is_refused_with_the_value_and_the_choices(value):
    with pytest.raises(ValueError) as info:
        check_choice("reduction", value, VALID)
    msg = str(info.value)
    assert msg.startswith(f"reduction={value!r} is not a valid reduction;")
    assert msg.endswith("valid reductions are ('sum', 'mean')")


def test_types_must_match_and_arrays_are_never_compared_elementwise():
    with pytest.raises(ValueError, match=r"distributed=1 is not valid; valid values are "):
        check_choice("distributed", 1, (True, False, "auto"), what="", plural="values")
    assert check_choice("d", np.str_("auto"), ("auto",)) == "auto"  # a str subclass is a str
    with pytest.raises(ValueError, match=r"kind=array"):
        check_choice("kind", np.array(["abs", "abs"]), ("abs", "sqrt"))
    with pytest.raises(ValueError, match=r"kind=tensor"):
        check_choice("kind", torch.tensor([1.0]), ("abs", "sqrt"))


def test_mixed_choices_are_listed_in_words_and_the_nouns_are_the_callers():
    with pytest.raises(ValueError) as info:
        check_choice("distributed", "yes", (True, False, "auto"), what="", plural="values")
    assert str(info.value) == (
        "distributed='yes' is not valid; valid values are True, False and 'auto'"
    )
    with pytest.raises(ValueError) as info:
        check_choice("backend", "ripser", ("auto", "native"), what="persistence backend")
    assert str(info.value) == (
        "backend='ripser' is not a valid persistence backend; valid persistence backends are "
        "('auto', 'native')"
    )


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: tn.correlation_dissimilarity(torch.randn(5, 3), kind="cos"), r"kind='cos'"),
        (lambda: tn.zero_persistence(np.zeros((2, 2)), backend=1), r"backend=1 is not a valid"),
        (lambda: tn.TopologicalRedundancy(reduction="max"), r"reduction='max' is not valid"),
        (lambda: tn.DeCov(distributed=1), r"distributed=1 is not valid"),
        (lambda: tn.gather_activations(torch.ones(2, 2), gradient="sum"), r"gradient='sum'"),
        (lambda: tn.paper_style(columns=True), None),
    ],
)
def test_the_library_options_go_through_the_one_check(call, message):
    if message is None:  # True == 1 and bool is an int: one column, as before
        call()
        return
    with pytest.raises(ValueError, match=message):
        call()
