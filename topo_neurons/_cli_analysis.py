"""Subcommands ``analyse``, ``barcode`` and ``compare`` of ``topo-neurons``."""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> None:
    """Add the analysis subcommands to ``sub``."""
