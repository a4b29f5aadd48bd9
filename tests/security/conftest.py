"""Security tests: every refused request is a 4xx in the one error shape and writes nothing."""
from __future__ import annotations

import pytest

from tests.security.state import fingerprint


@pytest.fixture
def unchanged(db):
    """Asserts at the end of the test that no table of the database changed."""
    before = fingerprint(db)
    yield
    after = fingerprint(db)
    assert [name for name in before if before[name] != after.get(name)] == []
