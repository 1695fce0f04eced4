"""docs/azure.md lists every template function appgw evaluates."""

from __future__ import annotations

import re
from pathlib import Path

from appgw.config.arm_functions import FUNCTIONS
from appgw.config.arm_template import _OWN

DOC = Path(__file__).resolve().parents[2] / "docs" / "azure.md"


def test_every_function_is_documented() -> None:
    text = DOC.read_text()
    section = text[text.index("## ARM templates") :]
    listed = {name.lower() for name in re.findall(r"`([A-Za-z0-9]+)`", section)}
    missing = sorted((set(FUNCTIONS) | set(_OWN)) - listed)
    assert missing == []
