"""Subcommand ``reproduce`` of ``topo-neurons``."""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> None:
    """Add the ``reproduce`` subcommand to ``sub``."""
