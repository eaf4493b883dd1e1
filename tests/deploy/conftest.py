from __future__ import annotations

from pathlib import Path

import pytest

from tests.deploy.render import helm_template
from tests.deploy.tools import Tools, ensure_tools

VALUES_ALL = Path(__file__).with_name("values-all.yaml")


@pytest.fixture(scope="session")
def tools() -> Tools:
    return ensure_tools()


@pytest.fixture(scope="session")
def chart_default(tools: Tools) -> list[dict]:
    return helm_template(tools)


@pytest.fixture(scope="session")
def chart_all(tools: Tools) -> list[dict]:
    return helm_template(tools, "--values", VALUES_ALL)
