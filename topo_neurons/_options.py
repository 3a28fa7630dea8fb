"""One check for an option that takes one of a few literal values (backend, kind, reduction, ...).

Every public function and class of the package that takes such an option checks it with
:func:`check_choice`, so that a bad value always raises the same kind of error: a
``ValueError`` that repeats the option's name and the bad value and lists the valid ones.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TypeVar

__all__ = ["check_choice"]

T = TypeVar("T")


def _listing(valid: Sequence[object]) -> str:
    """``('a', 'b')`` for values of one type; ``True, False and 'auto'`` for mixed ones."""
    if len({type(v) for v in valid}) <= 1:
        return repr(tuple(valid))
    shown = [repr(v) for v in valid]
    return ", ".join(shown[:-1]) + " and " + shown[-1] if len(shown) > 1 else shown[0]


def _plural(noun: str) -> str:
    """The English plural of ``noun``; ``"values"`` for an identifier (``penalty_pass``).

    >>> [_plural(w) for w in ("reduction", "pass", "index", "strategy", "penalty_pass")]
    ['reductions', 'passes', 'indexes', 'strategies', 'values']
    """
    if not noun or "_" in noun or not noun.replace(" ", "").isalpha():
        return "values"
    if noun.endswith(("s", "x", "z", "ch", "sh")):
        return noun + "es"
    if noun.endswith("y") and noun[-2:-1] not in tuple("aeiou"):
        return noun[:-1] + "ies"
    return noun + "s"


def check_choice(
    name: str,
    value: T,
    valid: Sequence[object],
    *,
    what: str | None = None,
    plural: str | None = None,
) -> T:
    """Return ``value`` if it is one of ``valid``, else raise ``ValueError``.

    A value matches a valid one when it is equal to it *and* of its type (a subclass included:
    ``numpy.str_`` matches a ``str``), so ``1`` is not taken for ``True`` and an array is never
    compared element-wise.

    Parameters
    ----------
    name : str
        The option's name, as the caller spells the parameter (``"backend"``).
    value : object
        The value passed.
    valid : sequence
        The valid values, in the order the message lists them.
    what : str, optional
        What a value is, for the message: ``"backend=… is not a valid <what>"``; default
        ``name``; ``""`` says only ``"is not valid"``.
    plural : str, optional
        The plural for the list of valid values (``"valid <plural> are …"``); default the
        English plural of ``what or name`` (``"passes"``, ``"strategies"``), or ``"values"``
        when that is an identifier such as ``penalty_pass``.

    Returns
    -------
    object
        ``value``, unchanged.

    Raises
    ------
    ValueError
        ``value`` is not one of ``valid``; the message names ``name``, repeats ``value`` and
        lists ``valid``.

    Examples
    --------
    >>> check_choice("reduction", "sum", ("sum", "mean"))
    'sum'
    >>> check_choice("reduction", "max", ("sum", "mean"), what="")
    Traceback (most recent call last):
    ...
    ValueError: reduction='max' is not valid; valid reductions are ('sum', 'mean')
    """
    if any(isinstance(value, type(v)) and value == v for v in valid):
        return value
    noun = name if what is None else what
    plural = plural or _plural(noun or name)
    verdict = f"not a valid {noun}" if noun else "not valid"
    raise ValueError(f"{name}={value!r} is {verdict}; valid {plural} are {_listing(valid)}")
