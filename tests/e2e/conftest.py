"""Session fixtures of the end-to-end group: service + dispatcher, agent simulator, real n8n."""
from __future__ import annotations

import secrets

import pytest

from tests.e2e import harness

# How long to wait for the workflow exports (n8n_workflows/*.json, which another process may be rewriting).
EXPORTS_TIMEOUT = 60


@pytest.fixture(scope="session")
def simulator():
    # Latencies spread over 0-20 ms, per agent, fixed seed: runs are reproducible.
    agents = {name: {"latency_ms": (index * 7) % 21} for index, name in enumerate(harness.agent_simulator.AGENTS)}
    sim = harness.agent_simulator.AgentSimulator(seed=harness.SIMULATOR_SEED, agents=agents)
    sim.start()
    try:
        yield sim
    finally:
        sim.stop()


@pytest.fixture(scope="session")
def e2e_database_url(n8n_version):
    """The end-to-end system commits and its dispatcher delivers every due outbox row, so it
    gets a database of its own, never the one the other tests share; one per n8n version, as
    each instance numbers its executions from 1."""
    from tests.conftest import world_database

    yield from world_database("rexera_e2e")


@pytest.fixture(scope="session", params=list(harness.n8n_local.LINES.values()), ids=lambda version: f"n8n-{version}")
def n8n_version(request):
    """Each supported n8n line in turn (2.x as on n8n Cloud, then 1.x), started with n8n's defaults."""
    if harness.n8n_local.installed_binary(version=request.param) is None:
        pytest.skip(f"n8n {request.param} is not installed (scripts/n8n_local.py install --version all)")
    return request.param


@pytest.fixture(scope="session")
def e2e(e2e_database_url, simulator, tmp_path_factory, n8n_version):
    """The whole system running: returns a harness.World."""
    paths = harness.wait_for_exports(EXPORTS_TIMEOUT)
    trigger_token, error_token = secrets.token_urlsafe(24), secrets.token_urlsafe(24)
    n8n = harness.N8n(harness.n8n_local.free_port(), tmp_path_factory.mktemp("n8n"), n8n_version)
    n8n.start()
    service = None
    try:
        credential_ids = harness.create_credentials(n8n, trigger_token, error_token)
        harness.import_workflows(n8n, credential_ids, paths)
        port = harness.n8n_local.free_port()
        settings = harness.make_settings(e2e_database_url, port, n8n.base_url, n8n.api_key, simulator.base_url,
                                         trigger_token, error_token)
        service = harness.Service(settings, port).start()
        yield harness.World(service, simulator, n8n, e2e_database_url)
    finally:
        if service is not None:
            service.stop()
        n8n.stop()


@pytest.fixture
def world(e2e):
    """The running system with the simulator back to its defaults (no failures)."""
    sim = e2e.simulator
    sim.configure(failure_rate=0.0, agents={name: {"failure_rate": 0.0} for name in harness.agent_simulator.AGENTS})
    if not e2e.n8n.running():
        e2e.n8n.start()
    yield e2e
    sim.configure(agents={name: {"failure_rate": 0.0} for name in harness.agent_simulator.AGENTS})
