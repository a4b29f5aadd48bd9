"""Agent simulator: a real HTTP server that answers the standard agent contract (SPEC section 7)
for the ten agents, with configurable latency and failure rate, deterministic by seed.

    python scripts/agent_simulator.py --port 8090 [--host 127.0.0.1] [--seed S] [--latency-ms N]
        [--failure-rate R] [--failure-mode transient|business]
        [--agent NAME:latency_ms=N,failure_rate=R,failure_mode=M ...] [--now ISO] [--api-key KEY]

Endpoints
  POST /agents/<name>   the agent contract (name as in supabase/seed.sql endpoint_path)
  GET  /agents          the agents and their task types
  GET  /health          {"status": "ok", "agents": [...], "seed": S}
  GET  /stats           per-agent call / outcome counts, peak concurrency
  POST /reset           clear the stats
  GET  /config, POST /config   read / change latency and failure settings while running
                        body: {"latency_ms"?, "failure_rate"?, "failure_mode"?,
                               "agents": {"rex": {"failure_rate": 1}, "mia": null}}

Agent request: task_id, workflow_id, agent_name, task_type, payload (object), optional timeout_ms,
retry_count. Response: success, result, confidence_score (0-1), processing_time_ms, tokens_used,
cost_usd, and on failure error_details {error_code, error_message, retry_recommended} (task_id,
agent_name and task_type are echoed too).

Failure convention
  * transient (the default failure mode): HTTP 503 with the contract body, success false,
    retry_recommended true. Callers that retry on non-2xx (n8n's "retry on fail") retry it.
  * business (failure_mode=business): HTTP 200, success false, retry_recommended false: the agent
    worked and the answer is "no" (contact not found, portal refused the login, ...).
  * timeout: when the configured latency exceeds the request's timeout_ms the simulator waits
    timeout_ms and answers HTTP 504, error_code AGENT_TIMEOUT, retry_recommended true.
  * bad requests get the service's error shape {"error": {"code", "message", "details"}}:
    400 malformed JSON / missing or mistyped fields / agent_name not matching the path,
    401 missing API key (only with --api-key), 404 unknown agent or path, 405 wrong method,
    413 body over 1 MB, 422 a task_type the agent does not handle.

Determinism. Each call draws from random.Random seeded with SHA-256 of (seed, workflow_id, agent,
task_type, retry_count, branch), where branch tells apart parallel calls of one task (the
payload's taskKey, or the portal's name/url for Rex's per-portal branches). Whether the call
fails is the first draw of its own stream (roll < failure_rate), so failure_rate 0 never fails,
1 always fails, and a retry (retry_count + 1) rolls again. Results are a pure function of those
inputs, the payload and the clock; timestamps in results (Mia's sentAt, default goodThrough and
invoice dates) use the wall clock unless --now freezes it.

Test hook: payload._simulate = {"outcome": "success" | "transient_failure" | "business_failure" |
"timeout", "latency_ms": N, "result": {...merged over the generated result}} forces one call.

In process (tests, benchmarks, other scripts):

    from agent_simulator import AgentSimulator      # or load this file with importlib
    with AgentSimulator(seed=7, agents={"rex": {"failure_rate": 1}}) as sim:
        requests.post(sim.base_url + "/agents/nina", json=...)

Exit codes: 0 stopped by SIGINT/SIGTERM, 2 bad usage or the port cannot be bound.
"""
from __future__ import annotations

import argparse
import copy
import hashlib
import hmac
import json
import random
import signal
import socket
import sys
import threading
import time
from datetime import datetime, timedelta, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit

# --------------------------------------------------------------------------------------------
# The agents (supabase/seed.sql)
# --------------------------------------------------------------------------------------------

AGENTS: dict[str, tuple[str, ...]] = {
    "nina": ("research_municipality", "research_hoa_contact", "identify_lender_contact"),
    "mia": ("send_email_request", "send_payoff_request", "notify_client"),
    "florian": ("make_phone_call", "send_payoff_request"),
    "rex": ("portal_access",),
    "iris": ("process_documents", "extract_payoff_data"),
    "ria": ("update_crm", "update_crm_record", "handle_client_update"),
    "kosha": ("generate_invoice",),
    "cassy": ("quality_validation",),
    "max": ("send_payoff_request",),
    "corey": ("analyze_hoa_docs",),
}

# agent -> (transient error code, business error code, what the agent does)
AGENT_ERRORS: dict[str, tuple[str, str, str]] = {
    "nina": ("RESEARCH_SOURCE_UNAVAILABLE", "CONTACT_NOT_FOUND", "contact research"),
    "mia": ("MAIL_SERVER_UNAVAILABLE", "EMAIL_BOUNCED", "email delivery"),
    "florian": ("TELEPHONY_UNAVAILABLE", "NO_ANSWER", "the phone call"),
    "rex": ("PORTAL_UNAVAILABLE", "PORTAL_ACCESS_DENIED", "the portal search"),
    "iris": ("EXTRACTION_SERVICE_UNAVAILABLE", "DOCUMENT_UNREADABLE", "document extraction"),
    "ria": ("CRM_UNAVAILABLE", "CRM_RECORD_NOT_FOUND", "the CRM update"),
    "kosha": ("BILLING_UNAVAILABLE", "PRICING_RULE_MISSING", "invoicing"),
    "cassy": ("VALIDATOR_UNAVAILABLE", "VALIDATION_INPUT_INCOMPLETE", "quality validation"),
    "max": ("IVR_LINE_BUSY", "IVR_PATH_NOT_FOUND", "the IVR call"),
    "corey": ("DOCUMENT_SERVICE_UNAVAILABLE", "DOCUMENTS_INCOMPLETE", "HOA document analysis"),
}

# agent -> token range per call
TOKENS: dict[str, tuple[int, int]] = {
    "nina": (1500, 6000), "mia": (300, 1200), "florian": (800, 3000), "rex": (2000, 9000),
    "iris": (3000, 12000), "ria": (200, 800), "kosha": (300, 1000), "cassy": (1000, 4000),
    "max": (200, 900), "corey": (4000, 15000),
}
USD_PER_TOKEN = 0.000003
FAILURE_MODES = ("transient", "business")
OUTCOMES = ("success", "transient_failure", "business_failure", "timeout")
MAX_BODY_BYTES = 1_000_000
REQUIRED_FIELDS = ("task_id", "workflow_id", "agent_name", "task_type", "payload")

# --------------------------------------------------------------------------------------------
# Plausible data
# --------------------------------------------------------------------------------------------

PLACES = [  # (city, county, state)
    ("Springfield", "Sangamon", "IL"), ("Orlando", "Orange", "FL"), ("Austin", "Travis", "TX"),
    ("Phoenix", "Maricopa", "AZ"), ("Charlotte", "Mecklenburg", "NC"), ("Columbus", "Franklin", "OH"),
    ("Denver", "Denver", "CO"), ("Tampa", "Hillsborough", "FL"), ("Nashville", "Davidson", "TN"),
    ("Raleigh", "Wake", "NC"),
]
PORTAL_KINDS = [  # (name suffix, url slug, lien type, owner: county|city)
    ("Tax Collector", "tax", "tax_lien", "county"),
    ("Utility Billing", "utilities", "utility_lien", "city"),
    ("Code Enforcement", "code", "municipal_lien", "city"),
    ("Clerk of Court", "clerk", "judgment_lien", "county"),
    ("Building Permits", "permits", "municipal_lien", "city"),
]
LIEN_AMOUNTS = {"tax_lien": (200, 6000), "utility_lien": (40, 900), "municipal_lien": (100, 3500),
                "judgment_lien": (500, 8000)}
DOCUMENT_TYPES = {"tax_lien": "tax_certificate", "utility_lien": "utility_statement",
                  "municipal_lien": "lien_notice", "judgment_lien": "judgment_abstract"}
FIRST_NAMES = ["Alex", "Jordan", "Taylor", "Morgan", "Casey", "Riley", "Jamie", "Avery", "Quinn", "Drew",
               "Parker", "Reese"]
LAST_NAMES = ["Garcia", "Nguyen", "Patel", "Johnson", "Williams", "Brown", "Lopez", "Kim", "Miller", "Davis",
              "Wilson", "Moore"]
MANAGEMENT_COMPANIES = ["Summit Community Management", "Harbor Association Services", "Keystone HOA Partners",
                        "Crescent Property Management", "Lakeview Community Services"]
HOA_NAMES = ["Oak Ridge", "Willow Creek", "Harbor Pointe", "Maple Commons", "Sunset Terrace", "Cedar Glen"]
LENDERS = ["Evergreen Home Loans", "Lakeshore Mortgage", "Pioneer Savings Bank", "Bluewater Lending",
           "Cornerstone Mortgage Co."]
RESTRICTIONS = ["No short-term rentals under 30 days", "Rental cap: 20% of units may be leased",
                "Architectural review required for exterior changes", "Two pets maximum per unit",
                "No commercial vehicles parked overnight", "Fences limited to 6 ft, approved materials only"]
HOA_FLAGS = ["pending_litigation", "reserve_fund_below_25_percent", "special_assessment_pending",
             "right_of_first_refusal"]
HOA_DOCUMENTS = ["bylaws", "financials", "meeting_minutes", "budget"]
WORKFLOW_PRICES = {"MUNI_LIEN_SEARCH": ("Municipal lien search", 175.0),
                   "HOA_ACQUISITION": ("HOA document acquisition", 250.0),
                   "PAYOFF_REQUEST": ("Mortgage payoff request", 125.0)}
URGENT = {"high", "urgent", "rush", "critical", "expedited"}


def _slug(text: str) -> str:
    out = "".join(ch.lower() if ch.isalnum() else "-" for ch in text)
    return "-".join(part for part in out.split("-") if part) or "x"


def _hex(rng: random.Random, digits: int) -> str:
    return f"{rng.getrandbits(4 * digits):0{digits}x}"


def _money(value: float) -> float:
    return round(value + 0.0, 2)


def _iso(moment: datetime) -> str:
    return moment.astimezone(timezone.utc).isoformat(timespec="seconds").replace("+00:00", "Z")


def _person(rng: random.Random, domain: str) -> dict:
    first, last = rng.choice(FIRST_NAMES), rng.choice(LAST_NAMES)
    return {"name": f"{first} {last}", "email": f"{first.lower()}.{last.lower()}@{domain}",
            "phone": f"({rng.randint(201, 989)}) 555-01{rng.randint(0, 99):02d}"}


def _find(value, key: str, depth: int = 0):
    """The first non-empty value under `key` anywhere in nested dicts/lists (breadth first)."""
    if depth > 6:
        return None
    if isinstance(value, dict):
        if value.get(key) not in (None, "", [], {}):
            return value[key]
        children = list(value.values())
    elif isinstance(value, list):
        children = value
    else:
        return None
    for child in children:
        found = _find(child, key, depth + 1)
        if found is not None:
            return found
    return None


def _find_text(payload: dict, *keys: str) -> str | None:
    for key in keys:
        found = _find(payload, key)
        if isinstance(found, (str, int, float)) and not isinstance(found, bool) and str(found).strip():
            return str(found).strip()
    return None


def _find_number(payload: dict, *keys: str) -> float | None:
    for key in keys:
        found = _find(payload, key)
        if isinstance(found, bool):
            continue
        try:
            return float(found)
        except (TypeError, ValueError):
            continue
    return None


def _collect(value, key: str, depth: int = 0) -> list:
    """Every dict found in lists under `key`, anywhere in the payload."""
    found: list = []
    if depth > 6:
        return found
    if isinstance(value, dict):
        for name, child in value.items():
            if name == key and isinstance(child, list):
                found.extend(item for item in child if isinstance(item, dict))
            else:
                found.extend(_collect(child, key, depth + 1))
    elif isinstance(value, list):
        for child in value:
            found.extend(_collect(child, key, depth + 1))
    return found


def _place(rng: random.Random, payload: dict) -> tuple[str, str, str]:
    """(city, county, state): from the payload's address/municipality/county where given, else
    invented (a known city brings its county)."""
    city, county, state = rng.choice(PLACES)
    given_city = given_state = given_county = None
    address = payload.get("address")
    if isinstance(address, dict):
        given_city, given_state, given_county = address.get("city"), address.get("state"), address.get("county")
    elif isinstance(address, str):
        parts = [part.strip() for part in address.split(",") if part.strip()]
        if len(parts) >= 2:
            given_city = parts[1]
        if len(parts) >= 3 and parts[2].split():
            given_state = parts[2].split()[0]
    given_city = _find_text(payload, "municipality", "city") or given_city
    given_county = _find_text(payload, "county") or given_county
    if given_city:
        city = str(given_city)
        known = next((place for place in PLACES if place[0].lower() == city.lower()), None)
        if known:
            county, state = known[1], known[2]
    if given_state:
        state = str(given_state)
    if given_county:
        county = str(given_county).removesuffix(" County").removesuffix(" county")
    return city, county, state


def _address_text(payload: dict) -> str:
    address = payload.get("address")
    if isinstance(address, dict):
        return ", ".join(str(address[k]) for k in ("street", "line1", "city", "state", "zip") if address.get(k))
    return str(address) if address else "the property"


# --------------------------------------------------------------------------------------------
# Results per task type
# --------------------------------------------------------------------------------------------


def _research_municipality(rng, payload, now):
    city, county, state = _place(rng, payload)
    kinds = rng.sample(PORTAL_KINDS, rng.randint(1, 4))
    portals = []
    for suffix, slug, _lien, owner in kinds:
        owner_name = f"{county} County" if owner == "county" else f"City of {city}"
        host = _slug(county if owner == "county" else city)
        portals.append({"name": f"{owner_name} {suffix}", "url": f"https://{host}-{slug}.gov.example/search",
                        "type": slug})
    return {"municipality": city, "county": county, "state": state, "portals": portals}


def _research_hoa_contact(rng, payload, now):
    hoa = _find_text(payload, "hoaName") or f"{rng.choice(HOA_NAMES)} Homeowners Association"
    company = rng.choice(MANAGEMENT_COMPANIES)
    contact = _person(rng, f"{_slug(company)}.example")
    return {"hoaName": hoa, "contact": contact, "managementCompany": company,
            "website": f"https://{_slug(hoa)}.example", "preferredChannel": rng.choice(["email", "phone"])}


def _identify_lender_contact(rng, payload, now):
    lender = _find_text(payload, "lenderName", "lender") or rng.choice(LENDERS)
    contact = _person(rng, f"{_slug(lender)}.example")
    contact["department"] = "Payoff Department"
    has_ivr = rng.random() < 0.4
    requires_phone = rng.random() < 0.35
    agent = "max" if has_ivr else "florian" if requires_phone else "mia"
    return {"lender": lender, "contact": contact, "hasIvr": has_ivr, "requiresPhone": requires_phone,
            "recommendedAgent": agent}


def _lien(rng, lien_type, holder):
    low, high = LIEN_AMOUNTS[lien_type]
    return {"type": lien_type, "amount": _money(rng.uniform(low, high)), "holder": holder,
            "recordedDate": f"{rng.randint(2019, 2025)}-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}",
            "status": rng.choice(["open", "open", "open", "payment_plan"])}


def _portal_access(rng, payload, now):
    city, county, _state = _place(rng, payload)
    portal = payload.get("portal")
    name = url = None
    if isinstance(portal, dict):
        name, url = portal.get("name"), portal.get("url")
    elif isinstance(portal, str):
        name = portal
    name = str(name or payload.get("portalName") or f"{county} County Tax Collector")
    url = str(url or payload.get("portalUrl") or f"https://{_slug(name)}.gov.example/search")
    lowered = name.lower()
    kind = next((k for k in PORTAL_KINDS if k[0].lower() in lowered or k[1] in lowered), None)
    if kind is None:
        kind = rng.choice(PORTAL_KINDS)
    lien_type = kind[2]
    holder = name if kind[0].lower() in lowered else f"{county} County {kind[0]}"
    liens = [_lien(rng, lien_type, holder) for _ in range(rng.choice([0, 0, 1, 1, 2, 3]))]
    documents = []
    for lien in liens:
        documents.append({"documentId": f"DOC-{_hex(rng, 10)}", "type": DOCUMENT_TYPES[lien_type],
                          "title": f"{lien_type.replace('_', ' ').title()} - {holder}",
                          "url": f"{url.rstrip('/')}/documents/{_hex(rng, 8)}.pdf",
                          "pages": rng.randint(1, 6)})
    if not documents:
        documents.append({"documentId": f"DOC-{_hex(rng, 10)}", "type": "search_certificate",
                          "title": f"No-lien certificate - {holder}",
                          "url": f"{url.rstrip('/')}/documents/{_hex(rng, 8)}.pdf", "pages": 1})
    return {"portal": name, "portalUrl": url, "searchStatus": "completed", "liens": liens, "documents": documents}


def _process_documents(rng, payload, now):
    found = [item for item in _collect(payload, "liens") if isinstance(item.get("amount"), (int, float))]
    if found:
        liens = [{"type": str(item.get("type") or "municipal_lien"), "amount": _money(float(item["amount"])),
                  "holder": str(item.get("holder") or "unknown"), "status": str(item.get("status") or "open")}
                 for item in found]
    else:
        _city, county, _state = _place(rng, payload)
        liens = []
        for _ in range(rng.choice([0, 1, 1, 2, 3, 4])):
            suffix, _slug_, lien_type, _owner = rng.choice(PORTAL_KINDS)
            liens.append(_lien(rng, lien_type, f"{county} County {suffix}"))
    source_docs = [item for item in _collect(payload, "documents") if item.get("documentId") or item.get("url")]
    documents = []
    for item in source_docs or [{"documentId": f"DOC-{_hex(rng, 10)}", "type": "lien_report"}]:
        documents.append({"documentId": str(item.get("documentId") or f"DOC-{_hex(rng, 10)}"),
                          "type": str(item.get("type") or "lien_report"), "status": "processed",
                          "pagesProcessed": int(item.get("pages") or rng.randint(1, 6))})
    return {"totalLiens": _money(sum(lien["amount"] for lien in liens)), "lienCount": len(liens),
            "liens": liens, "documents": documents}


def _extract_payoff_data(rng, payload, now):
    estimate = _find_number(payload, "estimatedBalance")
    if estimate is not None and estimate > 0:
        payoff = estimate + rng.uniform(-1500, 2500)     # always within 5,000 of the estimate
    else:
        payoff = rng.uniform(80_000, 650_000)
    rate = rng.uniform(0.03, 0.07)
    good_through = _find_text(payload, "payoffDate") or (now + timedelta(days=30)).date().isoformat()
    loan = _find_text(payload, "loanNumber") or f"{rng.randint(10**9, 10**10 - 1)}"
    lender = _find_text(payload, "lenderName", "lender") or rng.choice(LENDERS)
    principal = payoff * rng.uniform(0.96, 0.99)
    return {"payoffAmount": _money(payoff), "perDiem": _money(payoff * rate / 365), "goodThrough": good_through,
            "lender": lender, "loanNumber": loan, "principalBalance": _money(principal),
            "interestRate": round(rate, 4), "fees": _money(rng.uniform(25, 350))}


def _send_email(rng, payload, now, task_type):
    address = _address_text(payload)
    if task_type == "notify_client":
        to = _find_text(payload, "clientEmail", "to")
        subject = f"Update on your order: {address}"
    elif task_type == "send_payoff_request":
        to = _find_text(payload, "lenderEmail", "to", "email")
        subject = f"Payoff statement request, loan {_find_text(payload, 'loanNumber') or 'on file'}"
    else:
        to = _find_text(payload, "hoaEmail", "to", "email")
        subject = f"Document request: {_find_text(payload, 'hoaName') or 'HOA'}, {address}"
    if not to:
        to = _person(rng, "recipient.example")["email"]
    return {"messageId": f"<{_hex(rng, 16)}@mia.agents.rexera.example>", "to": to, "subject": subject,
            "sentAt": _iso(now), "channel": "email"}


def _phone_call(rng, payload, now, task_type):
    phone = _find_text(payload, "phone") or _person(rng, "x.example")["phone"]
    outcome = rng.choices(["request_accepted", "voicemail_left", "callback_scheduled"], [0.7, 0.2, 0.1])[0]
    what = "a payoff statement" if task_type == "send_payoff_request" else "the HOA documents"
    summaries = {
        "request_accepted": f"Spoke with the representative; they agreed to send {what} within 2 business days.",
        "voicemail_left": f"No one answered; left a voicemail requesting {what} and a callback number.",
        "callback_scheduled": f"Representative asked to call back tomorrow morning about {what}.",
    }
    return {"callId": f"CALL-{_hex(rng, 12)}", "to": phone, "durationSeconds": rng.randint(45, 900),
            "outcome": outcome, "transcriptSummary": summaries[outcome]}


def _ivr_payoff(rng, payload, now):
    loan = _find_text(payload, "loanNumber") or f"{rng.randint(10**9, 10**10 - 1)}"
    path = [{"prompt": "Main menu: for payoff requests press 2", "input": "2"},
            {"prompt": "Enter the loan number followed by pound", "input": f"{loan}#"}]
    if rng.random() < 0.5:
        path.append({"prompt": "To verify, enter the last four digits of the borrower's SSN", "input": "****"})
    path.append({"prompt": "For a written payoff statement press 1", "input": "1"})
    path.append({"prompt": "For delivery by email press 3", "input": "3"})
    return {"callId": f"IVR-{_hex(rng, 12)}", "ivrPath": path,
            "confirmationNumber": f"PR{rng.randint(10**7, 10**8 - 1)}", "durationSeconds": rng.randint(60, 420),
            "lender": _find_text(payload, "lenderName", "lender") or rng.choice(LENDERS)}


def _analyze_hoa_docs(rng, payload, now):
    requested = payload.get("documentsRequested")
    reviewed = [str(d) for d in requested] if isinstance(requested, list) and requested else \
        rng.sample(HOA_DOCUMENTS, rng.randint(2, 4))
    assessments = [{"description": rng.choice(["Roof replacement", "Pool resurfacing", "Road repaving",
                                               "Reserve replenishment"]),
                    "amountUsd": _money(rng.uniform(250, 4000)), "status": rng.choice(["levied", "proposed"])}
                   for _ in range(rng.choice([0, 0, 0, 1, 2]))]
    flags = [flag for flag in HOA_FLAGS if rng.random() < 0.1]
    proposed = any(assessment["status"] == "proposed" for assessment in assessments)
    if proposed and "special_assessment_pending" not in flags:
        flags.append("special_assessment_pending")
    return {"monthlyDues": _money(rng.uniform(95, 650)), "specialAssessments": assessments,
            "restrictions": rng.sample(RESTRICTIONS, rng.randint(1, 4)), "flags": flags,
            "documentsReviewed": reviewed}


def _quality_validation(rng, payload, now):
    issues = []
    payoff, estimate = _find_number(payload, "payoffAmount"), _find_number(payload, "estimatedBalance")
    if payoff is not None and estimate is not None and abs(payoff - estimate) > 5000:
        issues.append({"code": "PAYOFF_MISMATCH", "severity": "high",
                       "message": f"payoff {payoff:.2f} differs from the estimated balance {estimate:.2f} "
                                  "by more than 5,000"})
    for lien in _collect(payload, "liens"):
        amount = lien.get("amount")
        if isinstance(amount, (int, float)) and not isinstance(amount, bool) and amount < 0:
            issues.append({"code": "NEGATIVE_LIEN_AMOUNT", "severity": "high",
                           "message": f"lien held by {lien.get('holder', 'unknown')} has a negative amount"})
    score = rng.uniform(0.86, 0.99) if not issues else rng.uniform(0.35, 0.7)
    return {"passed": not issues, "issues": issues, "score": round(score, 3),
            "checksRun": ["completeness", "consistency", "amount_tolerance"]}


def _generate_invoice(rng, payload, now):
    workflow_type = str(_find_text(payload, "workflowType", "workflow_type") or "").upper()
    description, base = WORKFLOW_PRICES.get(workflow_type, ("Title research service", 150.0))
    items = [{"description": description, "quantity": 1, "unitPriceUsd": base, "amountUsd": base}]
    portals = _collect(payload, "portals")
    if portals:
        items.append({"description": "Portal searches", "quantity": len(portals), "unitPriceUsd": 15.0,
                      "amountUsd": _money(15.0 * len(portals))})
    if workflow_type == "HOA_ACQUISITION":
        fee = _money(rng.choice([50, 75, 100, 150, 250]))
        items.append({"description": "HOA document fee (pass-through)", "quantity": 1, "unitPriceUsd": fee,
                      "amountUsd": fee})
    if str(_find_text(payload, "urgency", "priority") or "").lower() in URGENT:
        items.append({"description": "Rush handling", "quantity": 1, "unitPriceUsd": 50.0, "amountUsd": 50.0})
    return {"invoiceNumber": f"INV-{now.year}-{rng.randint(0, 999_999):06d}", "invoiceDate": now.date().isoformat(),
            "currency": "USD", "lineItems": items, "totalUsd": _money(sum(item["amountUsd"] for item in items))}


def _update_crm(rng, payload, now, task_type, record_id):
    fields = sorted(key for key in payload if not key.startswith("_"))[:12]
    result = {"crmRecordId": record_id, "updated": True, "fieldsUpdated": fields}
    if task_type == "handle_client_update":
        message = (_find_text(payload, "message", "clientMessage", "body") or "").lower()
        changes = {}
        if "per diem" in message or "per-diem" in message or "perdiem" in message:
            changes["includePerDiem"] = True
        result.update({"acknowledged": True, "replySent": True, "payloadChanges": changes})
    return result


def simulate_result(seed, agent: str, task_type: str, workflow_id: str, retry_count: int = 0,
                    payload: dict | None = None, now: datetime | None = None) -> dict:
    """The result an agent returns for a successful call: deterministic for the same inputs."""
    payload = payload or {}
    now = now or datetime.now(timezone.utc)
    rng = _rng(seed, workflow_id, agent, task_type, retry_count, _branch(payload), "result")
    if task_type == "research_municipality":
        return _research_municipality(rng, payload, now)
    if task_type == "research_hoa_contact":
        return _research_hoa_contact(rng, payload, now)
    if task_type == "identify_lender_contact":
        return _identify_lender_contact(rng, payload, now)
    if task_type == "portal_access":
        return _portal_access(rng, payload, now)
    if task_type == "process_documents":
        return _process_documents(rng, payload, now)
    if task_type == "extract_payoff_data":
        return _extract_payoff_data(rng, payload, now)
    if agent == "max":
        return _ivr_payoff(rng, payload, now)
    if agent == "florian":
        return _phone_call(rng, payload, now, task_type)
    if agent == "mia":
        return _send_email(rng, payload, now, task_type)
    if task_type == "analyze_hoa_docs":
        return _analyze_hoa_docs(rng, payload, now)
    if task_type == "quality_validation":
        return _quality_validation(rng, payload, now)
    if task_type == "generate_invoice":
        return _generate_invoice(rng, payload, now)
    if agent == "ria":
        record = _rng(seed, workflow_id, "crm-record")
        return _update_crm(rng, payload, now, task_type, f"CRM-{_hex(record, 10).upper()}")
    raise ValueError(f"{agent} does not handle {task_type}")


def _rng(*parts) -> random.Random:
    """A random.Random seeded from SHA-256 of the parts (never Python's salted hash())."""
    key = "\x1f".join(str(part) for part in parts).encode()
    return random.Random(int.from_bytes(hashlib.sha256(key).digest()[:8], "big"))


def _branch(payload: dict) -> str:
    """Tells apart parallel calls of one task in one workflow (e.g. Rex's per-portal branches)."""
    for key in ("taskKey", "task_key"):
        if isinstance(payload.get(key), str):
            return payload[key]
    portal = payload.get("portal")
    if isinstance(portal, dict):
        return str(portal.get("name") or portal.get("url") or "")
    if isinstance(portal, str):
        return portal
    return str(payload.get("portalName") or payload.get("portalUrl") or "")


def fails(seed, agent: str, task_type: str, workflow_id: str, retry_count: int, payload: dict,
          failure_rate: float) -> bool:
    """Whether this call fails: the first draw of its own seeded stream, below failure_rate."""
    if failure_rate <= 0:
        return False
    roll = _rng(seed, workflow_id, agent, task_type, retry_count, _branch(payload), "failure").random()
    return roll < failure_rate


# --------------------------------------------------------------------------------------------
# Settings and stats
# --------------------------------------------------------------------------------------------


class RequestError(Exception):
    def __init__(self, status: int, code: str, message: str, details=None):
        super().__init__(message)
        self.status, self.code, self.message, self.details = status, code, message, details


def _check_settings(settings: dict, where: str) -> dict:
    """Validated {latency_ms, failure_rate, failure_mode} (any subset); ValueError otherwise."""
    clean = {}
    for key, value in settings.items():
        if key == "latency_ms":
            if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0 or value != int(value):
                raise ValueError(f"{where}: latency_ms must be a whole number >= 0")
            clean[key] = int(value)
        elif key == "failure_rate":
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value <= 1:
                raise ValueError(f"{where}: failure_rate must be a number in [0, 1]")
            clean[key] = float(value)
        elif key == "failure_mode":
            if value not in FAILURE_MODES:
                raise ValueError(f"{where}: failure_mode must be one of {', '.join(FAILURE_MODES)}")
            clean[key] = value
        else:
            raise ValueError(f"{where}: unknown setting {key!r} (latency_ms, failure_rate, failure_mode)")
    return clean


def _empty_counts() -> dict:
    return {"calls": 0, "succeeded": 0, "failed": 0, "transient_failures": 0, "business_failures": 0,
            "timeouts": 0, "rejected": 0, "by_task_type": {}}


class _Stats:
    def __init__(self):
        self.lock = threading.Lock()
        self.reset()

    def reset(self):
        with self.lock:
            self.agents = {name: _empty_counts() for name in AGENTS}
            self.rejected_other = 0
            self.in_flight = 0
            self.max_in_flight = 0

    def begin(self):
        with self.lock:
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)

    def end(self, agent: str, task_type: str, outcome: str):
        with self.lock:
            self.in_flight -= 1
            counts = self.agents[agent]
            counts["calls"] += 1
            per_type = counts["by_task_type"].setdefault(task_type, {"calls": 0, "failed": 0})
            per_type["calls"] += 1
            if outcome == "success":
                counts["succeeded"] += 1
                return
            counts["failed"] += 1
            per_type["failed"] += 1
            counts[{"transient_failure": "transient_failures", "business_failure": "business_failures",
                    "timeout": "timeouts"}[outcome]] += 1

    def reject(self, agent: str | None):
        with self.lock:
            if agent in self.agents:
                self.agents[agent]["rejected"] += 1
            else:
                self.rejected_other += 1

    def snapshot(self) -> dict:
        with self.lock:
            agents = copy.deepcopy(self.agents)
            totals = {key: sum(counts[key] for counts in agents.values())
                      for key in _empty_counts() if key != "by_task_type"}
            totals["rejected"] += self.rejected_other
            return {"agents": agents, "totals": totals, "in_flight": self.in_flight,
                    "max_in_flight": self.max_in_flight}


# --------------------------------------------------------------------------------------------
# HTTP
# --------------------------------------------------------------------------------------------


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 1024
    simulator: "AgentSimulator"

    def handle_error(self, request, client_address):
        error = sys.exc_info()[1]
        if isinstance(error, (ConnectionError, TimeoutError, socket.timeout)):
            return  # the client went away
        super().handle_error(request, client_address)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "RexeraAgentSimulator/1.0"
    disable_nagle_algorithm = True  # headers and body are separate writes; no 40 ms delayed-ACK stalls
    timeout = 120  # idle keep-alive connections (one thread each) are closed after this many seconds
    server: _Server

    def log_message(self, format, *args):  # noqa: A002 (BaseHTTPRequestHandler's signature)
        if self.server.simulator.verbose:
            super().log_message(format, *args)

    # routing --------------------------------------------------------------------------------

    def _path(self) -> str:
        return urlsplit(self.path).path.rstrip("/") or "/"

    def do_GET(self):
        sim, path = self.server.simulator, self._path()
        if path == "/health":
            return self._json(200, {"status": "ok", "agents": list(AGENTS), "seed": sim.seed})
        if path == "/stats":
            return self._json(200, sim.stats())
        if path == "/config":
            return self._json(200, sim.config())
        if path == "/agents":
            return self._json(200, {"agents": [{"name": name, "endpoint_path": f"/agents/{name}",
                                                "task_types": list(types)} for name, types in AGENTS.items()]})
        self._route_error(path, "GET")

    def do_POST(self):
        sim, path = self.server.simulator, self._path()
        try:
            if path.startswith("/agents/") and path.count("/") == 2:
                agent = path.split("/")[2]
                if agent not in AGENTS:
                    self._discard_body()
                    raise RequestError(404, "unknown_agent", f"no agent named {agent!r}",
                                       {"agents": list(AGENTS)})
                return self._agent_call(agent)
            if path == "/reset":
                self._discard_body()
                sim.reset()
                return self._json(200, {"status": "ok"})
            if path == "/config":
                body = self._read_json()
                if not isinstance(body, dict):
                    raise RequestError(400, "invalid_request", "the body must be a JSON object")
                try:
                    sim.configure(**body)
                except (TypeError, ValueError) as error:
                    raise RequestError(400, "invalid_request", str(error)) from None
                return self._json(200, sim.config())
            self._discard_body()
            self._route_error(path, "POST")
        except RequestError as error:
            if path.startswith("/agents/"):
                sim._stats.reject(path.split("/")[2])
            self._error(error)

    def _other_method(self):
        self._discard_body()
        self._route_error(self._path(), self.command)

    do_PUT = do_PATCH = do_DELETE = _other_method

    def _route_error(self, path: str, method: str):
        allowed = {"/health": "GET", "/stats": "GET", "/agents": "GET", "/config": "GET, POST", "/reset": "POST"}
        if path.startswith("/agents/") and path.count("/") == 2 and path.split("/")[2] in AGENTS:
            allowed[path] = "POST"
        if path in allowed:
            return self._error(RequestError(405, "method_not_allowed", f"{method} is not allowed on {path}"),
                               {"Allow": allowed[path]})
        self._error(RequestError(404, "not_found", f"no such endpoint: {path}"))

    # the agent contract ----------------------------------------------------------------------

    def _agent_call(self, agent: str):
        sim = self.server.simulator
        started = time.monotonic()
        sim._check_api_key(self.headers)
        body = self._read_json()
        request = _validate(agent, body)
        status, response = sim._answer(agent, request, started)
        self._json(status, response)

    # I/O ------------------------------------------------------------------------------------

    def _read_body(self) -> bytes:
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            chunks, size = [], 0
            while True:
                line = self.rfile.readline(1024)
                try:
                    length = int(line.split(b";")[0].strip() or b"0", 16)
                except ValueError:
                    self.close_connection = True
                    raise RequestError(400, "invalid_json", "malformed chunked body") from None
                if length == 0:
                    while self.rfile.readline(1024) not in (b"\r\n", b"\n", b""):
                        pass
                    return b"".join(chunks)
                size += length
                if size > MAX_BODY_BYTES:
                    self.close_connection = True
                    raise RequestError(413, "payload_too_large", f"the body exceeds {MAX_BODY_BYTES} bytes")
                chunks.append(self.rfile.read(length))
                self.rfile.readline(1024)
        raw = self.headers.get("Content-Length", "0")
        try:
            length = int(raw)
        except ValueError:
            self.close_connection = True
            raise RequestError(400, "invalid_json", "invalid Content-Length") from None
        if length > MAX_BODY_BYTES:
            self.close_connection = True
            raise RequestError(413, "payload_too_large", f"the body exceeds {MAX_BODY_BYTES} bytes")
        return self.rfile.read(length) if length > 0 else b""

    def _discard_body(self):
        try:
            self._read_body()
        except RequestError:
            pass

    def _read_json(self):
        raw = self._read_body()
        if not raw.strip():
            raise RequestError(400, "invalid_json", "the body is empty; send a JSON object")
        try:
            return json.loads(raw)
        except (UnicodeDecodeError, json.JSONDecodeError) as error:
            raise RequestError(400, "invalid_json", f"malformed JSON: {error}") from None

    def _json(self, status: int, body: dict, headers: dict | None = None):
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(data)

    def _error(self, error: RequestError, headers: dict | None = None):
        headers = dict(headers or {})
        if error.status == 401:
            headers["WWW-Authenticate"] = "Bearer"
        self._json(error.status, {"error": {"code": error.code, "message": error.message,
                                            "details": error.details}}, headers)


def _validate(agent: str, body) -> dict:
    if not isinstance(body, dict):
        raise RequestError(400, "invalid_request", "the body must be a JSON object")
    missing = [field for field in REQUIRED_FIELDS if field not in body or body[field] is None]
    if missing:
        raise RequestError(400, "invalid_request", f"missing field(s): {', '.join(missing)}", {"missing": missing})
    invalid = {}
    for field in ("task_id", "workflow_id", "agent_name", "task_type"):
        if not isinstance(body[field], str) or not body[field].strip():
            invalid[field] = "must be a non-empty string"
    if not isinstance(body["payload"], dict):
        invalid["payload"] = "must be an object"
    for field, low in (("timeout_ms", 1), ("retry_count", 0)):
        value = body.get(field)
        if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < low):
            invalid[field] = f"must be an integer >= {low}"
    hook = body["payload"].get("_simulate") if isinstance(body["payload"], dict) else None
    if hook is not None:
        if not isinstance(hook, dict):
            invalid["payload._simulate"] = "must be an object"
        else:
            if "outcome" in hook and hook["outcome"] not in OUTCOMES:
                invalid["payload._simulate.outcome"] = f"must be one of {', '.join(OUTCOMES)}"
            latency = hook.get("latency_ms")
            if latency is not None and (isinstance(latency, bool) or not isinstance(latency, int) or latency < 0):
                invalid["payload._simulate.latency_ms"] = "must be an integer >= 0"
            if "result" in hook and not isinstance(hook["result"], dict):
                invalid["payload._simulate.result"] = "must be an object"
    if invalid:
        raise RequestError(400, "invalid_request", "invalid field(s): " + ", ".join(invalid), {"invalid": invalid})
    if body["agent_name"] != agent:
        raise RequestError(400, "agent_mismatch",
                           f"agent_name {body['agent_name']!r} does not match the endpoint /agents/{agent}")
    if body["task_type"] not in AGENTS[agent]:
        raise RequestError(422, "unsupported_task_type", f"{agent} does not handle task type {body['task_type']!r}",
                           {"agent": agent, "task_type": body["task_type"], "supported": list(AGENTS[agent])})
    return body


# --------------------------------------------------------------------------------------------
# The simulator
# --------------------------------------------------------------------------------------------


class AgentSimulator:
    """The simulator's server: start() in a background thread (port 0 picks a free port), then
    base_url; stop() shuts it down. Also a context manager."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0, seed=0, latency_ms: int = 0,
                 failure_rate: float = 0.0, failure_mode: str = "transient", agents: dict | None = None,
                 now: datetime | None = None, api_key: str | None = None, verbose: bool = False):
        self.host, self.port, self.seed = host, port, seed
        self.frozen_now, self.api_key, self.verbose = now, api_key, verbose
        self._lock = threading.Lock()
        self._defaults = {"latency_ms": 0, "failure_rate": 0.0, "failure_mode": "transient"}
        self._overrides: dict[str, dict] = {}
        self.configure(latency_ms=latency_ms, failure_rate=failure_rate, failure_mode=failure_mode,
                       agents=agents or {})
        self._stats = _Stats()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    # lifecycle -------------------------------------------------------------------------------

    def start(self) -> str:
        """Bind and serve in a daemon thread; returns the base URL. OSError when the port is taken."""
        if self._server is not None:
            return self.base_url
        server_class = _Server
        if ":" in self.host:
            server_class = type("_Server6", (_Server,), {"address_family": socket.AF_INET6})
        server = server_class((self.host, self.port), _Handler)
        server.simulator = self
        self._server = server
        self.port = server.server_address[1]
        self._thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.1},
                                        name="agent-simulator", daemon=True)
        self._thread.start()
        return self.base_url

    def stop(self) -> None:
        server, self._server = self._server, None
        if server is None:
            return
        server.shutdown()
        server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def __enter__(self) -> "AgentSimulator":
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    @property
    def base_url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    # settings and stats ----------------------------------------------------------------------

    def configure(self, latency_ms=None, failure_rate=None, failure_mode=None, agents: dict | None = None) -> None:
        """Change the global settings and/or per-agent overrides ({"rex": {"failure_rate": 1}};
        an agent mapped to None drops its overrides). ValueError on a bad value or agent."""
        defaults = _check_settings({key: value for key, value in (("latency_ms", latency_ms),
                                    ("failure_rate", failure_rate), ("failure_mode", failure_mode))
                                    if value is not None}, "global")
        if agents is not None and not isinstance(agents, dict):
            raise ValueError("agents must be an object mapping agent names to settings")
        overrides = {}
        for name, settings in (agents or {}).items():
            if name not in AGENTS:
                raise ValueError(f"unknown agent {name!r}; agents: {', '.join(AGENTS)}")
            if settings is not None and not isinstance(settings, dict):
                raise ValueError(f"{name}: settings must be an object or null")
            overrides[name] = None if settings is None else _check_settings(settings, name)
        with self._lock:
            self._defaults = {**self._defaults, **defaults}
            merged = dict(self._overrides)
            for name, settings in overrides.items():
                if settings is None:
                    merged.pop(name, None)
                else:
                    merged[name] = {**merged.get(name, {}), **settings}
            self._overrides = merged

    def settings_for(self, agent: str) -> dict:
        with self._lock:
            return {**self._defaults, **self._overrides.get(agent, {})}

    def config(self) -> dict:
        with self._lock:
            defaults, overrides = dict(self._defaults), copy.deepcopy(self._overrides)
        return {"seed": self.seed, **defaults, "overrides": overrides,
                "agents": {name: {**defaults, **overrides.get(name, {})} for name in AGENTS}}

    def stats(self) -> dict:
        return self._stats.snapshot()

    def reset(self) -> None:
        self._stats.reset()

    def now(self) -> datetime:
        return self.frozen_now or datetime.now(timezone.utc)

    # answering -------------------------------------------------------------------------------

    def _check_api_key(self, headers) -> None:
        if not self.api_key:
            return
        given = headers.get("X-API-Key") or ""
        auth = headers.get("Authorization") or ""
        if auth.lower().startswith("bearer "):
            given = given or auth[7:].strip()
        if not hmac.compare_digest(given.encode(), self.api_key.encode()):
            raise RequestError(401, "unauthorized", "missing or wrong API key (Authorization: Bearer or X-API-Key)")

    def _answer(self, agent: str, request: dict, started: float) -> tuple[int, dict]:
        settings = self.settings_for(agent)
        task_type, workflow_id = request["task_type"], request["workflow_id"]
        retry_count, payload = request.get("retry_count") or 0, request["payload"]
        hook = payload.get("_simulate") or {}
        latency = hook.get("latency_ms", settings["latency_ms"])
        outcome = hook.get("outcome")
        if outcome is None:
            if fails(self.seed, agent, task_type, workflow_id, retry_count, payload, settings["failure_rate"]):
                outcome = "transient_failure" if settings["failure_mode"] == "transient" else "business_failure"
            else:
                outcome = "success"
        timeout_ms = request.get("timeout_ms")
        if timeout_ms is not None and latency > timeout_ms:
            latency, outcome = timeout_ms, "timeout"
        self._stats.begin()
        try:
            if latency > 0:
                time.sleep(latency / 1000)
            metrics = _rng(self.seed, workflow_id, agent, task_type, retry_count, _branch(payload), "metrics")
            tokens = metrics.randint(*TOKENS[agent])
            confidence = round(metrics.uniform(0.8, 0.99), 3)
            body = {"success": outcome == "success", "result": None, "confidence_score": 0.0,
                    "processing_time_ms": 0, "tokens_used": 0, "cost_usd": 0.0,
                    "task_id": request["task_id"], "agent_name": agent, "task_type": task_type}
            status = 200
            transient_code, business_code, doing = AGENT_ERRORS[agent]
            if outcome == "success":
                result = simulate_result(self.seed, agent, task_type, workflow_id, retry_count, payload, self.now())
                result.update(copy.deepcopy(hook.get("result") or {}))
                body.update(result=result, confidence_score=confidence, tokens_used=tokens,
                            cost_usd=round(tokens * USD_PER_TOKEN, 6))
            elif outcome == "business_failure":
                used = tokens // 3
                body.update(confidence_score=confidence, tokens_used=used, cost_usd=round(used * USD_PER_TOKEN, 6),
                            error_details={"error_code": business_code, "retry_recommended": False,
                                           "error_message": f"{doing} did not succeed ({business_code.lower()})"})
            elif outcome == "transient_failure":
                status = 503
                body["error_details"] = {"error_code": transient_code, "retry_recommended": True,
                                         "error_message": f"{doing} is temporarily unavailable; try again"}
            else:
                status = 504
                body["error_details"] = {"error_code": "AGENT_TIMEOUT", "retry_recommended": True,
                                         "error_message": f"{doing} did not finish within {timeout_ms} ms"}
            body["processing_time_ms"] = int((time.monotonic() - started) * 1000)
            return status, body
        finally:
            self._stats.end(agent, task_type, outcome)


# --------------------------------------------------------------------------------------------
# Command line
# --------------------------------------------------------------------------------------------


def _parse_agent_option(text: str) -> tuple[str, dict]:
    name, sep, rest = text.partition(":")
    name = name.strip().lower()
    if name not in AGENTS:
        raise ValueError(f"unknown agent {name!r} in --agent {text!r}; agents: {', '.join(AGENTS)}")
    if not sep or not rest.strip():
        raise ValueError(f"--agent {text!r}: expected NAME:latency_ms=N,failure_rate=R[,failure_mode=M]")
    settings: dict = {}
    for item in rest.split(","):
        key, eq, value = item.partition("=")
        key = key.strip()
        if not eq:
            raise ValueError(f"--agent {text!r}: {item!r} is not key=value")
        try:
            settings[key] = value.strip() if key == "failure_mode" else float(value)
        except ValueError:
            raise ValueError(f"--agent {text!r}: {key} must be a number") from None
    return name, _check_settings(settings, f"--agent {name}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--port", type=int, required=True, help="port to listen on (0 picks a free one)")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--seed", default="0", help="seed for deterministic results and failures (default 0)")
    parser.add_argument("--latency-ms", type=int, default=0, help="delay per request in ms (default 0)")
    parser.add_argument("--failure-rate", type=float, default=0.0, help="share of calls that fail, 0-1 (default 0)")
    parser.add_argument("--failure-mode", choices=FAILURE_MODES, default="transient",
                        help="transient: HTTP 503, retry recommended (default); business: HTTP 200, success false")
    parser.add_argument("--agent", action="append", default=[], metavar="NAME:key=value,...",
                        help="per-agent override, e.g. rex:failure_rate=1 or iris:latency_ms=200,failure_rate=0.1")
    parser.add_argument("--now", help="freeze the clock used in results (ISO 8601), for byte-identical runs")
    parser.add_argument("--api-key", help="require this key (Authorization: Bearer or X-API-Key) on /agents/*")
    parser.add_argument("--verbose", action="store_true", help="log every request to stderr")
    args = parser.parse_args(argv)

    now = None
    if args.now:
        try:
            now = datetime.fromisoformat(args.now.replace("Z", "+00:00"))
        except ValueError:
            parser.error(f"--now: not an ISO 8601 timestamp: {args.now!r}")
        if now.tzinfo is None:
            now = now.replace(tzinfo=timezone.utc)
    if not 0 <= args.port <= 65535:
        parser.error("--port must be 0-65535")
    try:
        overrides = dict(_parse_agent_option(text) for text in args.agent)
        simulator = AgentSimulator(host=args.host, port=args.port, seed=args.seed, latency_ms=args.latency_ms,
                                   failure_rate=args.failure_rate, failure_mode=args.failure_mode,
                                   agents=overrides, now=now, api_key=args.api_key, verbose=args.verbose)
    except ValueError as error:
        parser.error(str(error))

    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())
    try:
        simulator.start()
    except OSError as error:
        print(f"agent simulator: cannot listen on {args.host}:{args.port}: {error.strerror or error}",
              file=sys.stderr)
        return 2
    print(f"agent simulator listening on {simulator.base_url} (seed {args.seed})", flush=True)
    try:
        while not stop.wait(0.5):
            pass
    finally:
        simulator.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
