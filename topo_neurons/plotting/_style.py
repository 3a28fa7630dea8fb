"""Style and saving: the Okabe–Ito palette, :func:`paper_style`, :func:`save_figure`."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .._options import check_choice

if TYPE_CHECKING:  # pragma: no cover
    from matplotlib.figure import Figure

__all__ = [
    "COLUMN_WIDTHS",
    "CROSS_LAYER_COLOR",
    "OKABE_ITO",
    "SAVE_FORMATS",
    "paper_style",
    "save_figure",
]

#: Okabe–Ito colour-blind-safe palette (Okabe & Ito 2008), in the order used for layers/series.
OKABE_ITO: tuple[str, ...] = (
    "#0072B2",  # blue
    "#E69F00",  # orange
    "#009E73",  # bluish green
    "#D55E00",  # vermillion
    "#56B4E9",  # sky blue
    "#CC79A7",  # reddish purple
    "#F0E442",  # yellow
    "#000000",  # black
)
#: Colour of bars/edges that join neurons of two different layers.
CROSS_LAYER_COLOR = "#7F7F7F"
#: Figure widths in inches: one column and two columns of a typical two-column paper.
COLUMN_WIDTHS: dict[int, float] = {1: 3.5, 2: 7.16}


#: rcParams applied while a figure is written: TrueType (Type 42) fonts in PDF/PS, text in SVG.
_SAVE_RC: dict[str, Any] = {"pdf.fonttype": 42, "ps.fonttype": 42, "svg.fonttype": "none"}
SAVE_FORMATS: tuple[str, ...] = ("png", "pdf", "svg", "eps", "ps")


def save_figure(fig: Figure, path: str | os.PathLike[str], **savefig_kwargs: Any) -> Path:
    """Write ``fig`` atomically, with TrueType (Type 42) fonts embedded in PDF and PostScript.

    The format is the suffix of ``path``. Whatever the surrounding ``rcParams``, the file gets
    ``pdf.fonttype = ps.fonttype = 42`` (no Type 3 fonts, which many journals refuse and whose
    text cannot be edited) and ``svg.fonttype = "none"`` (SVG text stays text). The file appears
    complete or not at all (a temporary beside it, then renamed).

    Parameters
    ----------
    fig : matplotlib.figure.Figure
    path : str or path-like
        Target file; its directory is created. Suffix one of ``png``, ``pdf``, ``svg``, ``eps``,
        ``ps``.
    **savefig_kwargs
        Passed to ``fig.savefig`` (``dpi``, ``bbox_inches``, …).

    Returns
    -------
    pathlib.Path
        ``path``.

    Raises
    ------
    ValueError
        Unknown suffix (listing the valid ones).
    """
    import matplotlib as mpl

    from ..io import atomic_path

    target = Path(path)
    fmt = target.suffix.lstrip(".").lower()
    if fmt not in SAVE_FORMATS:
        raise ValueError(
            f"cannot save a figure as {str(target)!r}: unknown format {fmt!r}; valid formats "
            f"are {SAVE_FORMATS}"
        )
    with mpl.rc_context(_SAVE_RC), atomic_path(target) as tmp:
        fig.savefig(tmp, format=fmt, **savefig_kwargs)
    return target


# ----------------------------------------------------------------------------- style
@contextlib.contextmanager
def paper_style(
    columns: int = 1, *, aspect: float = 0.72, fontsize: float = 8.0
) -> Iterator[dict[str, Any]]:
    """Context in which matplotlib makes figures ready for a paper.

    Inside the ``with`` block: vector output with embedded TrueType fonts (``pdf.fonttype`` and
    ``ps.fonttype`` 42; SVG text kept as text, ``svg.fonttype = "none"``), the Okabe–Ito
    colour-blind-safe palette as the colour cycle, a figure size for one column (3.5 in) or two
    columns (7.16 in), small readable fonts, tight bounding boxes at 300 dpi for raster output.
    Everything is restored on exit (it is a ``matplotlib.rc_context``): no global change.

    Parameters
    ----------
    columns : {1, 2}, default 1
        Width of the figure: single column (3.5 in ≈ 89 mm) or double column (7.16 in ≈ 182 mm).
    aspect : float, default 0.72
        Height / width of the default figure size.
    fontsize : float, default 8
        Base font size in points (labels; ticks and legends one point smaller).

    Yields
    ------
    dict
        The ``rcParams`` applied.

    Examples
    --------
    >>> import topo_neurons as tn
    >>> with tn.paper_style(columns=2) as rc:
    ...     rc["figure.figsize"]
    (7.16, 5.1552)
    """
    import matplotlib as mpl
    from cycler import cycler

    check_choice("columns", columns, tuple(COLUMN_WIDTHS), what="", plural="values")
    if not aspect > 0:
        raise ValueError(f"aspect must be positive; got {aspect}")
    width = COLUMN_WIDTHS[columns]
    rc: dict[str, Any] = {
        "pdf.fonttype": 42,
        "ps.fonttype": 42,
        "svg.fonttype": "none",
        "axes.prop_cycle": cycler(color=list(OKABE_ITO)),
        "figure.figsize": (width, round(width * aspect, 4)),
        "figure.dpi": 150,
        "savefig.dpi": 300,
        "savefig.bbox": "tight",
        "savefig.pad_inches": 0.02,
        "font.size": fontsize,
        "axes.labelsize": fontsize,
        "axes.titlesize": fontsize + 1,
        "xtick.labelsize": fontsize - 1,
        "ytick.labelsize": fontsize - 1,
        "legend.fontsize": fontsize - 1,
        "axes.linewidth": 0.6,
        "lines.linewidth": 1.2,
        "xtick.major.width": 0.6,
        "ytick.major.width": 0.6,
        "axes.spines.top": False,
        "axes.spines.right": False,
        "figure.constrained_layout.use": True,
    }
    with mpl.rc_context(rc):
        yield rc
