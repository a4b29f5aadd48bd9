"""scripts/agent_simulator.py: the agent contract for all ten agents, determinism by seed, failure
rates and latency, bad requests, concurrency, stats; and the command line as a subprocess.

Most tests start the simulator in-process on port 0 (AgentSimulator); no database is needed.
"""
from __future__ import annotations

import importlib.util
import json
import os
import signal
import socket
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timezone
from pathlib import Path

import pytest
import requests

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "scripts" / "agent_simulator.py"
FROZEN = datetime(2026, 3, 2, 15, 0, tzinfo=timezone.utc)


def load_script():
    spec = importlib.util.spec_from_file_location("agent_simulator_script", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


sim_module = load_script()
AgentSimulator = sim_module.AgentSimulator

SEED_AGENTS = {  # supabase/seed.sql: agents.name -> capabilities
    "nina": ["research_municipality", "research_hoa_contact", "identify_lender_contact"],
    "mia": ["send_email_request", "send_payoff_request", "notify_client"],
    "florian": ["make_phone_call", "send_payoff_request"],
    "rex": ["portal_access"],
    "iris": ["process_documents", "extract_payoff_data"],
    "ria": ["update_crm", "update_crm_record", "handle_client_update"],
    "kosha": ["generate_invoice"],
    "cassy": ["quality_validation"],
    "max": ["send_payoff_request"],
    "corey": ["analyze_hoa_docs"],
}
PAIRS = [(agent, task_type) for agent, types in SEED_AGENTS.items() for task_type in types]
PAYLOAD = {"address": "12 Elm St, Orlando, FL 32801", "county": "Orange", "parcelNumber": "29-22-28-0000",
           "buyer": "Pat Buyer", "closingDate": "2026-04-01", "hoaName": "Willow Creek HOA",
           "documentsRequested": ["bylaws", "budget"], "borrowerName": "Sam Borrower",
           "lenderName": "Lakeshore Mortgage", "loanNumber": "5550001234", "payoffDate": "2026-03-31",
           "estimatedBalance": 250000, "workflowType": "PAYOFF_REQUEST"}


@pytest.fixture(scope="module")
def sim():
    with AgentSimulator(seed=11, now=FROZEN) as simulator:
        yield simulator


@pytest.fixture
def make_sim():
    started = []

    def make(**options):
        options.setdefault("now", FROZEN)
        simulator = AgentSimulator(**options)
        simulator.start()
        started.append(simulator)
        return simulator

    yield make
    for simulator in started:
        simulator.stop()


def call_body(agent, task_type, workflow_id="wf-1", payload=None, **extra):
    body = {"task_id": "task-1", "workflow_id": workflow_id, "agent_name": agent, "task_type": task_type,
            "payload": dict(PAYLOAD) if payload is None else payload}
    body.update(extra)
    return body


def call(base_url, agent, task_type, workflow_id="wf-1", payload=None, **extra):
    return requests.post(f"{base_url}/agents/{agent}", json=call_body(agent, task_type, workflow_id, payload, **extra),
                         timeout=10)


def is_money(value):
    return isinstance(value, float) or (isinstance(value, int) and not isinstance(value, bool))


def is_str(value):
    return isinstance(value, str) and value != ""


def is_contact(value):
    return isinstance(value, dict) and all(is_str(value.get(key)) for key in ("name", "email", "phone")) \
        and "@" in value["email"]


def is_lien(value):
    return isinstance(value, dict) and is_str(value.get("type")) and is_money(value.get("amount")) \
        and value["amount"] >= 0 and is_str(value.get("holder"))


def is_email_result(r):
    return is_str(r["messageId"]) and is_str(r["to"]) and "@" in r["to"] and is_str(r["subject"]) \
        and datetime.fromisoformat(r["sentAt"].replace("Z", "+00:00")).tzinfo is not None


def is_call_result(r):
    return is_str(r["callId"]) and isinstance(r["durationSeconds"], int) and r["durationSeconds"] > 0 \
        and is_str(r["outcome"]) and is_str(r["transcriptSummary"])


RESULT_CHECKS = {
    ("nina", "research_municipality"): lambda r: is_str(r["municipality"]) and is_str(r["county"])
    and 1 <= len(r["portals"]) <= 4
    and all(is_str(p["name"]) and p["url"].startswith("https://") for p in r["portals"]),
    ("nina", "research_hoa_contact"): lambda r: is_str(r["hoaName"]) and is_contact(r["contact"])
    and is_str(r["managementCompany"]),
    ("nina", "identify_lender_contact"): lambda r: is_str(r["lender"]) and is_contact(r["contact"])
    and isinstance(r["hasIvr"], bool) and isinstance(r["requiresPhone"], bool),
    ("mia", "send_email_request"): is_email_result,
    ("mia", "send_payoff_request"): is_email_result,
    ("mia", "notify_client"): is_email_result,
    ("florian", "make_phone_call"): is_call_result,
    ("florian", "send_payoff_request"): is_call_result,
    ("rex", "portal_access"): lambda r: is_str(r["portal"]) and isinstance(r["liens"], list)
    and all(is_lien(lien) for lien in r["liens"]) and isinstance(r["documents"], list) and len(r["documents"]) >= 1,
    ("iris", "process_documents"): lambda r: is_money(r["totalLiens"]) and isinstance(r["liens"], list)
    and all(is_lien(lien) for lien in r["liens"]) and isinstance(r["documents"], list)
    and abs(r["totalLiens"] - sum(lien["amount"] for lien in r["liens"])) < 0.01,
    ("iris", "extract_payoff_data"): lambda r: is_money(r["payoffAmount"]) and is_money(r["perDiem"])
    and 0 < r["perDiem"] < r["payoffAmount"] and is_str(r["goodThrough"]) and is_str(r["lender"])
    and is_str(r["loanNumber"]),
    ("ria", "update_crm"): lambda r: is_str(r["crmRecordId"]) and r["updated"] is True,
    ("ria", "update_crm_record"): lambda r: is_str(r["crmRecordId"]) and r["updated"] is True,
    ("ria", "handle_client_update"): lambda r: is_str(r["crmRecordId"]) and r["updated"] is True,
    ("kosha", "generate_invoice"): lambda r: is_str(r["invoiceNumber"]) and len(r["lineItems"]) >= 1
    and all(is_str(i["description"]) and is_money(i["amountUsd"]) for i in r["lineItems"])
    and abs(r["totalUsd"] - sum(i["amountUsd"] for i in r["lineItems"])) < 0.01,
    ("cassy", "quality_validation"): lambda r: isinstance(r["passed"], bool) and isinstance(r["issues"], list)
    and 0 <= r["score"] <= 1,
    ("max", "send_payoff_request"): lambda r: isinstance(r["ivrPath"], list) and len(r["ivrPath"]) >= 1
    and is_str(r["confirmationNumber"]),
    ("corey", "analyze_hoa_docs"): lambda r: is_money(r["monthlyDues"]) and r["monthlyDues"] > 0
    and isinstance(r["specialAssessments"], list) and isinstance(r["restrictions"], list)
    and all(is_str(x) for x in r["restrictions"]) and isinstance(r["flags"], list),
}


def assert_contract_success(body):
    assert body["success"] is True
    assert isinstance(body["result"], dict)
    assert isinstance(body["confidence_score"], float) and 0 <= body["confidence_score"] <= 1
    assert isinstance(body["processing_time_ms"], int) and body["processing_time_ms"] >= 0
    assert isinstance(body["tokens_used"], int) and body["tokens_used"] > 0
    assert isinstance(body["cost_usd"], float) and body["cost_usd"] > 0
    assert "error_details" not in body


def assert_contract_failure(body, retry_recommended):
    assert body["success"] is False
    assert body["result"] is None
    assert 0 <= body["confidence_score"] <= 1
    assert isinstance(body["processing_time_ms"], int)
    details = body["error_details"]
    assert is_str(details["error_code"]) and is_str(details["error_message"])
    assert details["retry_recommended"] is retry_recommended


# --- the contract ----------------------------------------------------------------------------


def test_the_simulator_knows_exactly_the_seed_agents_and_their_task_types():
    assert {name: list(types) for name, types in sim_module.AGENTS.items()} == SEED_AGENTS
    seed_sql = (ROOT / "supabase" / "seed.sql").read_text()
    for name, types in SEED_AGENTS.items():
        assert f"'/agents/{name}'" in seed_sql
        assert "array[" + ", ".join(f"'{t}'" for t in types) + "]" in seed_sql
    assert set(RESULT_CHECKS) == set(PAIRS)


def test_health_lists_the_ten_agents(sim):
    response = requests.get(sim.base_url + "/health", timeout=5)
    assert response.status_code == 200
    assert response.json()["status"] == "ok"
    assert response.json()["agents"] == list(SEED_AGENTS)
    listing = requests.get(sim.base_url + "/agents", timeout=5).json()["agents"]
    assert {a["name"]: a["task_types"] for a in listing} == SEED_AGENTS


@pytest.mark.parametrize("agent,task_type", PAIRS, ids=[f"{a}-{t}" for a, t in PAIRS])
def test_every_agent_answers_each_of_its_task_types_with_the_contract(sim, agent, task_type):
    for payload in (PAYLOAD, {}):
        response = call(sim.base_url, agent, task_type, payload=payload, timeout_ms=60000, retry_count=0)
        assert response.status_code == 200, response.text
        assert response.headers["Content-Type"] == "application/json"
        body = response.json()
        assert_contract_success(body)
        assert body["task_id"] == "task-1" and body["agent_name"] == agent and body["task_type"] == task_type
        assert RESULT_CHECKS[(agent, task_type)](body["result"]), body["result"]


def test_results_follow_the_payload(sim):
    for n in range(25):
        result = call(sim.base_url, "iris", "extract_payoff_data", f"wf-{n}").json()["result"]
        assert abs(result["payoffAmount"] - 250000) < 5000
        assert result["loanNumber"] == "5550001234" and result["lender"] == "Lakeshore Mortgage"
        assert result["goodThrough"] == "2026-03-31"
        portals = call(sim.base_url, "nina", "research_municipality", f"wf-{n}").json()["result"]["portals"]
        assert 1 <= len(portals) <= 4
    muni = call(sim.base_url, "nina", "research_municipality").json()["result"]
    assert (muni["municipality"], muni["county"]) == ("Orlando", "Orange")
    portal = {"name": "Orange County Tax Collector", "url": "https://tax.example/search"}
    rex = call(sim.base_url, "rex", "portal_access", payload={"portal": portal}).json()["result"]
    assert rex["portal"] == portal["name"] and all(lien["type"] == "tax_lien" for lien in rex["liens"])
    found = [{"type": "tax_lien", "amount": 6000.0, "holder": "A"},
             {"type": "utility_lien", "amount": 4500.5, "holder": "B"}]
    iris = call(sim.base_url, "iris", "process_documents",
                payload={"portalResults": [{"liens": found[:1]}, {"liens": found[1:]}]}).json()["result"]
    assert iris["totalLiens"] == 10500.5 and len(iris["liens"]) == 2
    cassy = call(sim.base_url, "cassy", "quality_validation",
                 payload={"estimatedBalance": 250000, "payoffAmount": 262000}).json()["result"]
    assert cassy["passed"] is False and cassy["issues"][0]["code"] == "PAYOFF_MISMATCH"
    assert call(sim.base_url, "cassy", "quality_validation").json()["result"]["passed"] is True
    email = call(sim.base_url, "mia", "notify_client", payload={"clientEmail": "client@example.com"}).json()["result"]
    assert email["to"] == "client@example.com" and email["sentAt"] == "2026-03-02T15:00:00Z"
    update = call(sim.base_url, "ria", "handle_client_update",
                  payload={"message": "Please also get the per diem rate"}).json()["result"]
    assert update["payloadChanges"] == {"includePerDiem": True}
    crm = call(sim.base_url, "ria", "update_crm_record").json()["result"]
    assert crm["crmRecordId"] == update["crmRecordId"]  # one CRM record per workflow


# --- determinism -----------------------------------------------------------------------------


def test_the_same_inputs_give_identical_results(sim, make_sim):
    twin = make_sim(seed=11)
    for agent, task_type in PAIRS:
        first = call(sim.base_url, agent, task_type, "wf-det").json()
        again = call(sim.base_url, agent, task_type, "wf-det").json()
        other_process = call(twin.base_url, agent, task_type, "wf-det").json()
        assert first["result"] == again["result"] == other_process["result"]
        assert first["confidence_score"] == other_process["confidence_score"]
        assert first["tokens_used"] == other_process["tokens_used"]
    pure = sim_module.simulate_result(11, "nina", "research_municipality", "wf-det", 0, dict(PAYLOAD), FROZEN)
    assert pure == call(sim.base_url, "nina", "research_municipality", "wf-det").json()["result"]


def test_a_different_seed_workflow_or_retry_gives_different_results(sim, make_sim):
    other = make_sim(seed=12)

    def results(base_url, workflow_id="wf-det", retry_count=0):
        return [call(base_url, agent, task_type, workflow_id, retry_count=retry_count).json()["result"]
                for agent, task_type in PAIRS]

    baseline = results(sim.base_url)
    for variant in (results(other.base_url), results(sim.base_url, "wf-other"),
                    results(sim.base_url, retry_count=1)):
        differing = sum(a != b for a, b in zip(baseline, variant))
        assert differing >= len(PAIRS) // 2


def test_parallel_portal_branches_of_one_workflow_differ(sim):
    results = [call(sim.base_url, "rex", "portal_access", "wf-branches",
                    payload={"portal": {"name": name, "url": f"https://{n}.example"}}).json()["result"]
               for n, name in enumerate(["Orange County Tax Collector", "City of Orlando Utility Billing"])]
    assert results[0]["portal"] != results[1]["portal"]
    assert results[0]["documents"] != results[1]["documents"]


# --- failures --------------------------------------------------------------------------------


def test_failure_rate_zero_never_fails(make_sim):
    simulator = make_sim(seed=1, failure_rate=0)
    for n in range(40):
        assert call(simulator.base_url, "nina", "research_municipality", f"wf-{n}").status_code == 200
    assert simulator.stats()["agents"]["nina"]["failed"] == 0


def test_failure_rate_one_fails_every_call_with_503_and_retry_recommended(make_sim):
    simulator = make_sim(seed=1, failure_rate=1)
    for agent, task_type in PAIRS:
        for retry_count in range(3):
            response = call(simulator.base_url, agent, task_type, retry_count=retry_count)
            assert response.status_code == 503
            assert_contract_failure(response.json(), retry_recommended=True)
    stats = simulator.stats()
    assert stats["totals"]["transient_failures"] == stats["totals"]["calls"] == len(PAIRS) * 3


def test_a_per_agent_override_fails_only_that_agent(make_sim):
    simulator = make_sim(seed=1, agents={"rex": {"failure_rate": 1}})
    for n in range(10):
        assert call(simulator.base_url, "rex", "portal_access", f"wf-{n}").status_code == 503
        assert call(simulator.base_url, "nina", "research_municipality", f"wf-{n}").status_code == 200
    # and the global rate applies to the others, the override wins for rex
    simulator.configure(failure_rate=1, agents={"rex": {"failure_rate": 0}})
    assert call(simulator.base_url, "rex", "portal_access").status_code == 200
    assert call(simulator.base_url, "nina", "research_municipality").status_code == 503


def test_business_failure_mode_answers_200_with_success_false_and_no_retry(make_sim):
    simulator = make_sim(agents={"nina": {"failure_rate": 1, "failure_mode": "business"}})
    response = call(simulator.base_url, "nina", "identify_lender_contact")
    assert response.status_code == 200
    assert_contract_failure(response.json(), retry_recommended=False)
    assert response.json()["error_details"]["error_code"] == "CONTACT_NOT_FOUND"
    assert simulator.stats()["agents"]["nina"]["business_failures"] == 1


def test_a_partial_failure_rate_is_reproducible_and_retries_roll_again(make_sim):
    def outcomes(simulator, retry_count=0):
        return [call(simulator.base_url, "mia", "notify_client", f"wf-{n}", retry_count=retry_count).status_code
                for n in range(40)]

    first, second = make_sim(seed=5, failure_rate=0.5), make_sim(seed=5, failure_rate=0.5)
    run = outcomes(first)
    assert run == outcomes(second)
    assert 5 <= run.count(503) <= 35 and set(run) == {200, 503}
    assert outcomes(first, retry_count=1) != run
    assert outcomes(make_sim(seed=6, failure_rate=0.5)) != run


def test_the_payload_hook_forces_an_outcome_or_result_fields(sim):
    forced = call(sim.base_url, "nina", "identify_lender_contact",
                  payload={"_simulate": {"result": {"hasIvr": True, "requiresPhone": False}}}).json()
    assert forced["success"] and forced["result"]["hasIvr"] is True
    response = call(sim.base_url, "cassy", "quality_validation",
                    payload={"_simulate": {"outcome": "transient_failure"}})
    assert response.status_code == 503 and response.json()["error_details"]["retry_recommended"] is True
    response = call(sim.base_url, "cassy", "quality_validation", payload={"_simulate": {"outcome": "business_failure"}})
    assert response.status_code == 200 and response.json()["success"] is False


# --- latency ---------------------------------------------------------------------------------


def test_latency_is_honoured_globally_and_per_agent(make_sim):
    simulator = make_sim(latency_ms=120, agents={"corey": {"latency_ms": 250}})
    for agent, task_type, at_least in (("mia", "notify_client", 120), ("corey", "analyze_hoa_docs", 250)):
        started = time.monotonic()
        response = call(simulator.base_url, agent, task_type)
        elapsed_ms = (time.monotonic() - started) * 1000
        assert response.status_code == 200
        assert elapsed_ms >= at_least
        assert response.json()["processing_time_ms"] >= at_least


def test_latency_beyond_the_requests_timeout_answers_504_after_the_timeout(make_sim):
    simulator = make_sim(latency_ms=5000)
    started = time.monotonic()
    response = call(simulator.base_url, "rex", "portal_access", timeout_ms=150)
    assert (time.monotonic() - started) * 1000 >= 150
    assert response.status_code == 504
    assert_contract_failure(response.json(), retry_recommended=True)
    assert response.json()["error_details"]["error_code"] == "AGENT_TIMEOUT"
    assert simulator.stats()["agents"]["rex"]["timeouts"] == 1


# --- bad requests ----------------------------------------------------------------------------


def post_raw(base_url, path, data, headers=None):
    return requests.post(base_url + path, data=data, timeout=5,
                         headers={"Content-Type": "application/json", **(headers or {})})


def assert_error(response, status, code):
    assert response.status_code == status, response.text
    assert response.headers["Content-Type"] == "application/json"
    error = response.json()["error"]
    assert error["code"] == code and is_str(error["message"])
    return error


@pytest.mark.parametrize("data", [b"{not json", b"", b"   ", b"\xff\xfe", b"[1, 2"], ids=repr)
def test_malformed_json_is_a_400(sim, data):
    assert_error(post_raw(sim.base_url, "/agents/nina", data), 400, "invalid_json")


@pytest.mark.parametrize("missing", ["task_id", "workflow_id", "agent_name", "task_type", "payload"])
def test_a_missing_field_is_a_400_naming_it(sim, missing):
    body = call_body("nina", "research_municipality")
    del body[missing]
    error = assert_error(requests.post(sim.base_url + "/agents/nina", json=body, timeout=5), 400, "invalid_request")
    assert error["details"]["missing"] == [missing]


@pytest.mark.parametrize("field,value", [("task_id", 7), ("workflow_id", ""), ("payload", [1]), ("payload", "x"),
                                         ("retry_count", -1), ("retry_count", "1"), ("retry_count", True),
                                         ("timeout_ms", 0), ("task_type", None)])
def test_a_mistyped_field_is_a_400(sim, field, value):
    body = call_body("nina", "research_municipality")
    body[field] = value
    assert_error(requests.post(sim.base_url + "/agents/nina", json=body, timeout=5), 400, "invalid_request")


def test_a_body_that_is_not_an_object_is_a_400(sim):
    assert_error(post_raw(sim.base_url, "/agents/nina", b"[]"), 400, "invalid_request")


def test_an_unknown_agent_is_a_404(sim):
    assert_error(requests.post(sim.base_url + "/agents/bob", json=call_body("bob", "x"), timeout=5), 404,
                 "unknown_agent")
    assert_error(requests.post(sim.base_url + "/nowhere", json={}, timeout=5), 404, "not_found")


def test_a_task_type_the_agent_does_not_handle_is_a_422(sim):
    error = assert_error(call(sim.base_url, "rex", "notify_client"), 422, "unsupported_task_type")
    assert error["details"]["supported"] == ["portal_access"]
    assert_error(call(sim.base_url, "max", "make_phone_call"), 422, "unsupported_task_type")


def test_an_agent_name_not_matching_the_endpoint_is_a_400(sim):
    body = call_body("mia", "notify_client")
    assert_error(requests.post(sim.base_url + "/agents/nina", json=body, timeout=5), 400, "agent_mismatch")


def test_wrong_methods_and_oversized_bodies_are_refused(sim):
    response = requests.get(sim.base_url + "/agents/nina", timeout=5)
    assert_error(response, 405, "method_not_allowed")
    assert response.headers["Allow"] == "POST"
    assert_error(requests.get(sim.base_url + "/reset", timeout=5), 405, "method_not_allowed")
    big = json.dumps(call_body("nina", "research_municipality", payload={"blob": "x" * 1_100_000})).encode()
    assert_error(post_raw(sim.base_url, "/agents/nina", big), 413, "payload_too_large")


def test_a_keep_alive_connection_survives_bad_requests(sim):
    with requests.Session() as session:
        for _ in range(3):
            bad = session.post(sim.base_url + "/agents/nina", data=b"{oops", timeout=5)
            assert bad.status_code == 400
            good = session.post(sim.base_url + "/agents/nina", json=call_body("nina", "research_municipality"),
                                timeout=5)
            assert good.status_code == 200


def test_an_api_key_when_configured_is_required(make_sim):
    simulator = make_sim(api_key="sim-key-123")
    assert_error(call(simulator.base_url, "nina", "research_municipality"), 401, "unauthorized")
    for headers in ({"Authorization": "Bearer sim-key-123"}, {"X-API-Key": "sim-key-123"}):
        response = requests.post(simulator.base_url + "/agents/nina", headers=headers, timeout=5,
                                 json=call_body("nina", "research_municipality"))
        assert response.status_code == 200
    assert requests.get(simulator.base_url + "/health", timeout=5).status_code == 200


# --- concurrency, stats, config --------------------------------------------------------------


def test_fifty_parallel_requests_are_all_answered(make_sim):
    simulator = make_sim(latency_ms=200)

    def one(n):
        agent, task_type = PAIRS[n % len(PAIRS)]
        return call(simulator.base_url, agent, task_type, f"wf-{n}")

    with ThreadPoolExecutor(max_workers=50) as pool:
        responses = list(pool.map(one, range(50)))
    assert [r.status_code for r in responses] == [200] * 50
    assert all(r.json()["success"] for r in responses)
    stats = simulator.stats()
    assert stats["totals"]["calls"] == stats["totals"]["succeeded"] == 50
    assert stats["max_in_flight"] > 1 and stats["in_flight"] == 0


def test_stats_count_calls_failures_and_rejections_and_reset_clears_them(make_sim):
    simulator = make_sim(agents={"kosha": {"failure_rate": 1}})
    base = simulator.base_url
    call(base, "nina", "research_municipality")
    call(base, "nina", "research_hoa_contact")
    call(base, "kosha", "generate_invoice")
    call(base, "nina", "portal_access")                      # 422
    post_raw(base, "/agents/mia", b"{")                        # 400
    requests.post(base + "/agents/bob", json={}, timeout=5)   # 404
    stats = requests.get(base + "/stats", timeout=5).json()
    nina, kosha = stats["agents"]["nina"], stats["agents"]["kosha"]
    assert (nina["calls"], nina["succeeded"], nina["failed"], nina["rejected"]) == (2, 2, 0, 1)
    assert nina["by_task_type"] == {"research_municipality": {"calls": 1, "failed": 0},
                                    "research_hoa_contact": {"calls": 1, "failed": 0}}
    assert (kosha["calls"], kosha["failed"], kosha["transient_failures"]) == (1, 1, 1)
    assert stats["agents"]["mia"]["rejected"] == 1
    assert stats["totals"]["calls"] == 3 and stats["totals"]["rejected"] == 3
    reset = requests.post(base + "/reset", timeout=5)
    assert reset.status_code == 200 and reset.json() == {"status": "ok"}
    cleared = requests.get(base + "/stats", timeout=5).json()
    assert all(v == 0 for v in cleared["totals"].values()) and cleared["max_in_flight"] == 0
    assert cleared["agents"]["nina"]["by_task_type"] == {}


def test_config_can_be_read_and_changed_over_http(make_sim):
    simulator = make_sim(seed=3)
    base = simulator.base_url
    config = requests.get(base + "/config", timeout=5).json()
    assert config["seed"] == 3 and config["failure_rate"] == 0 and config["agents"]["rex"]["latency_ms"] == 0
    changed = requests.post(base + "/config", json={"agents": {"rex": {"failure_rate": 1}}}, timeout=5)
    assert changed.status_code == 200 and changed.json()["agents"]["rex"]["failure_rate"] == 1
    assert call(base, "rex", "portal_access").status_code == 503
    requests.post(base + "/config", json={"agents": {"rex": None}}, timeout=5)
    assert call(base, "rex", "portal_access").status_code == 200
    for bad in ({"failure_rate": 2}, {"agents": {"bob": {}}}, {"agents": {"rex": {"speed": 1}}}, {"nope": 1}, []):
        assert_error(requests.post(base + "/config", json=bad, timeout=5), 400, "invalid_request")


# --- the command line ------------------------------------------------------------------------


def start_cli(*args):
    process = subprocess.Popen([sys.executable, str(SCRIPT), *args], stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True)
    line = process.stdout.readline().strip()
    return process, line


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_the_script_serves_prints_one_start_line_and_exits_cleanly_on_a_signal(signum):
    process, line = start_cli("--port", "0", "--seed", "42", "--latency-ms", "0",
                              "--agent", "rex:failure_rate=1", "--agent", "mia:latency_ms=30,failure_rate=0")
    try:
        assert line.startswith("agent simulator listening on http://127.0.0.1:") and line.endswith("(seed 42)"), line
        base_url = line.split(" on ")[1].split(" ")[0]
        assert requests.get(base_url + "/health", timeout=5).json()["status"] == "ok"
        assert call(base_url, "rex", "portal_access").status_code == 503
        assert call(base_url, "nina", "research_municipality").status_code == 200
        assert call(base_url, "mia", "notify_client").json()["processing_time_ms"] >= 30
        process.send_signal(signum)
        stdout, stderr = process.communicate(timeout=5)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert process.returncode == 0, stderr
    assert stdout == "" and stderr == ""


def test_a_taken_port_gives_a_one_line_error_and_exit_code_2():
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = subprocess.run([sys.executable, str(SCRIPT), "--port", str(port)], capture_output=True,
                                text=True, timeout=10)
    assert result.returncode == 2
    assert result.stdout == ""
    assert len(result.stderr.strip().splitlines()) == 1
    assert f"cannot listen on 127.0.0.1:{port}" in result.stderr


@pytest.mark.parametrize("args", [["--port", "0", "--agent", "bob:failure_rate=1"],
                                  ["--port", "0", "--agent", "rex:failure_rate=2"],
                                  ["--port", "0", "--agent", "rex"],
                                  ["--port", "0", "--failure-rate", "1.5"]], ids=repr)
def test_bad_options_exit_with_2(args):
    result = subprocess.run([sys.executable, str(SCRIPT), *args], capture_output=True, text=True, timeout=10,
                            env={**os.environ})
    assert result.returncode == 2
    assert "usage:" in result.stderr
