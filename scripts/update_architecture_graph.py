"""Paste the current import graph (``python tests/test_architecture.py``) into docs/architecture.md."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
page = ROOT / "docs" / "architecture.md"
graph = subprocess.run(
    [sys.executable, str(ROOT / "tests" / "test_architecture.py")],
    check=True,
    capture_output=True,
    text=True,
).stdout.strip()
text = page.read_text(encoding="utf-8")
new, count = re.subn(r"```mermaid\n.*?```", lambda _: graph, text, count=1, flags=re.S)
if count != 1:
    sys.exit("docs/architecture.md has no ```mermaid block")
page.write_text(new, encoding="utf-8")
print(f"updated {page}")
