import pytest

from tests.n8n.fake_n8n import FakeN8n


@pytest.fixture
def n8n():
    """A stand-in n8n of its own for one test."""
    fake = FakeN8n()
    yield fake
    fake.stop()
