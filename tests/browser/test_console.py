"""The console as its people use it, in headless Chromium against the running service.

Each test makes its own workflows through the API (as the operator or a client user) and moves
them with signed callbacks exactly as n8n sends them, so the tests do not depend on each other.
"""
from __future__ import annotations

import re
import signal
import time
import uuid

import pytest
import requests
from selenium.common.exceptions import NoAlertPresentException
from selenium.webdriver.common.action_chains import ActionChains
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys

from tests.browser.conftest import (Console, browser_env, failure_artifacts, screenshot, wait_for)
from tests.db.world import CLIENT_A, CLIENT_B, PEOPLE
from tests.perf.bench_api import free_port, start_service
from tests.realtime.conftest import PAYOFF, stop_service
from tests.support import mint_token

pytestmark = pytest.mark.browser
LIVE_WITHIN_SECONDS = 1.0
XSS_TITLE = "<img src=x onerror=alert(1)>"


# ---- helpers ------------------------------------------------------------------------------------
def api(console: Console, person: str, method: str, path: str, **kwargs) -> requests.Response:
    headers = {"Authorization": f"Bearer {mint_token(PEOPLE[person])}"}
    return requests.request(method, console.base + path, headers=headers, timeout=10, **kwargs)


def started_workflow(console: Console, *, title: str, client=CLIENT_A, payload=None) -> tuple[str, list[dict]]:
    """A payoff workflow started by the operator: its id and its seven tasks in plan order."""
    created = api(console, "operator", "POST", "/api/workflows",
                  json={"type": "PAYOFF_REQUEST", "clientId": str(client), "title": title, "payload": payload or PAYOFF})
    assert created.status_code == 201, created.text
    workflow_id = created.json()["id"]
    assert api(console, "operator", "POST", f"/api/workflows/{workflow_id}/actions",
               json={"action": "start"}).status_code == 200
    tasks = api(console, "operator", "GET", f"/api/tasks?workflowId={workflow_id}").json()["tasks"]
    return workflow_id, tasks


def callback_ok(console: Console, workflow_id: str, event_type: str, **data) -> dict:
    response = console.callback(workflow_id, event_type, **data)
    assert response.status_code == 200, response.text
    return response.json()


def open_as(browser, console: Console, person: str, route: str = "", width: int = 1280, height: int = 900):
    """A browser signed in as `person` through a one-time sign-in link, on `route`, live."""
    driver = browser(width, height)
    driver.get(console.sign_in_link(person))
    wait_for(lambda: driver.find_element(By.ID, "main").get_attribute("data-loaded-at"), message="the first view")
    assert "code=" not in driver.current_url  # the code leaves the address bar at once
    if route:
        go(driver, route)
    wait_for(lambda: driver.find_element(By.ID, "connection").get_attribute("data-state") == "live",
             message="the live connection")
    return driver


def go(driver, route: str) -> None:
    """Navigate inside the console (the hash), and wait for the view to load."""
    if driver.execute_script("return location.hash") == route:
        return
    before = driver.find_element(By.ID, "main").get_attribute("data-loaded-at")
    driver.execute_script("location.hash = arguments[0]", route)
    wait_for(lambda: driver.find_element(By.ID, "main").get_attribute("data-loaded-at") not in (None, before),
             message=f"the view at {route}")


def css(driver, selector: str):
    return driver.find_element(By.CSS_SELECTOR, selector)


def click(driver, selector: str) -> None:
    """Click the element once it is there; the page may redraw it meanwhile (a live update)."""
    def attempt():
        element = css(driver, selector)
        driver.execute_script("arguments[0].scrollIntoView({block: 'center'})", element)
        element.click()
        return True
    wait_for(attempt, message=f"a click on {selector}")


def text_of(driver, selector: str) -> str:
    return css(driver, selector).text


def mark_no_reload(*drivers) -> None:
    for driver in drivers:
        driver.execute_script("window.__stillTheSamePage = true")


def not_reloaded(driver) -> bool:
    return driver.execute_script("return window.__stillTheSamePage === true")


def main_text(driver) -> str:
    return driver.execute_script("return document.body.innerText")


@pytest.fixture(autouse=True)
def keep_failure_artifacts(request, browser):
    """On a failure, each open browser's screenshot and page source go to tests/perf/results/."""
    opened = []
    original = browser

    def tracking(*args, **kwargs):
        driver = original(*args, **kwargs)
        opened.append(driver)
        return driver

    request.node.open_browser = tracking
    yield
    report = getattr(request.node, "rep_call", None)
    if report is not None and report.failed:
        for index, driver in enumerate(opened):
            failure_artifacts(driver, f"{request.node.name}-{index}")


@pytest.fixture
def open_browser(request):
    return request.node.open_browser


# ---- 1. live updates from n8n ---------------------------------------------------------------------
def test_a_signed_callback_moves_the_queue_row_and_the_workflow_page_without_a_reload(console, open_browser):
    workflow_id, tasks = started_workflow(console, title=f"Live payoff {uuid.uuid4().hex[:6]}")
    first = tasks[0]
    callback_ok(console, workflow_id, "task.started", taskKey=first["taskKey"], attempt=1)

    queue = open_as(open_browser, console, "operator")
    row = f'#active-workflows tr[data-workflow-id="{workflow_id}"]'
    wait_for(lambda: css(queue, row), message="the workflow's row in the queue")
    assert "0%" in text_of(queue, row)
    page = open_as(open_browser, console, "operator", f"#/workflows/{workflow_id}")
    task_row = f'#plan tr.task[data-task-id="{first["id"]}"]'
    wait_for(lambda: css(page, task_row).get_attribute("data-status") == "RUNNING", message="the running task")
    mark_no_reload(queue, page)

    callback_ok(console, workflow_id, "task.completed", taskKey=first["taskKey"], attempt=1,
                output={"confidence": 0.93, "lender": "First Bank"})
    answered = time.monotonic()
    wait_for(lambda: "14%" in text_of(queue, row), timeout=5, message="the queue row's progress")
    queue_seconds = time.monotonic() - answered
    wait_for(lambda: css(page, task_row).get_attribute("data-status") == "COMPLETED", timeout=5,
             message="the task row's status")
    page_seconds = time.monotonic() - answered
    assert queue_seconds < LIVE_WITHIN_SECONDS and page_seconds < LIVE_WITHIN_SECONDS, (queue_seconds, page_seconds)
    assert not_reloaded(queue) and not_reloaded(page)
    # The page reads the rest (the agent's result) right after, still without a reload.
    wait_for(lambda: "confidence 0.93" in text_of(page, task_row), message="the agent's result")
    assert "1 of 7 tasks" in text_of(page, "#workflow-progress")
    # While the socket is up nothing polls: no request leaves either page when nothing changes.
    time.sleep(0.5)
    requests_made = [driver.execute_script("return performance.getEntriesByType('resource').length")
                     for driver in (queue, page)]
    time.sleep(3)
    assert [driver.execute_script("return performance.getEntriesByType('resource').length")
            for driver in (queue, page)] == requests_made


# ---- 2. an escalation worked by the operator, watched by the client ----------------------------------
def test_the_operator_takes_and_completes_an_escalated_task_and_the_client_sees_the_order_move(console, open_browser):
    workflow_id, tasks = started_workflow(console, title=f"Escalated payoff {uuid.uuid4().hex[:6]}")
    first, second = tasks[0], tasks[1]
    callback_ok(console, workflow_id, "task.started", taskKey=first["taskKey"], attempt=1)
    callback_ok(console, workflow_id, "task.completed", taskKey=first["taskKey"], attempt=1, output={"lender": "First Bank"})
    callback_ok(console, workflow_id, "escalation", taskKey=second["taskKey"], reason="The lender's portal needs a person")
    assert console.sql("select status from public.workflows where id = %s", (workflow_id,), one=True)["status"] == "BLOCKED"

    client = open_as(open_browser, console, "client_user_a", f"#/orders/{workflow_id}")
    assert "1 of 7 steps" in text_of(client, "#order-progress")
    mark_no_reload(client)

    operator = open_as(open_browser, console, "operator")
    queue_row = f'#queue tr[data-task-id="{second["id"]}"]'
    wait_for(lambda: css(operator, queue_row), message="the escalated task in the queue")
    click(operator, f"{queue_row} button.take")
    wait_for(lambda: "me" in css(operator, queue_row).find_elements(By.TAG_NAME, "td")[5].text, message="taken")
    assert console.sql("select assigned_to from public.tasks where id = %s", (second["id"],), one=True)["assigned_to"] \
        == PEOPLE["operator"].user_id

    click(operator, f"{queue_row} a.button")
    task_row = f'#plan tr.task[data-task-id="{second["id"]}"]'
    wait_for(lambda: css(operator, task_row), message="the workflow page")
    assert "The lender's portal needs a person" in text_of(operator, task_row)
    click(operator, f'{task_row} button[data-action="complete"]')
    form = css(operator, "form.action-form")
    form.find_element(By.NAME, "notes").send_keys("Called the lender; the request went out by fax.")
    form.find_element(By.NAME, "result").send_keys('{"faxConfirmation": "F-1234"}')
    form.find_element(By.CSS_SELECTOR, 'button[type="submit"]').click()
    wait_for(lambda: css(operator, task_row).get_attribute("data-status") == "COMPLETED", message="the completed task")

    row = console.sql("select status, result, assigned_to from public.tasks where id = %s", (second["id"],), one=True)
    assert row["status"] == "COMPLETED" and row["result"] == {"faxConfirmation": "F-1234"}
    # The notes are HIL-only: an internal note on the task (and the action's audit record), not the result.
    wait_for(lambda: console.sql("""select body from public.communications where task_id = %s
                                     and direction = 'INTERNAL'""", (second["id"],)),
             message="the internal note")
    assert console.sql("""select count(*) as n from public.audit_events
                           where resource_id = %s and event_type = 'task.complete' and data ->> 'notes' = %s""",
                       (second["id"], "Called the lender; the request went out by fax."), one=True)["n"] == 1
    # The problem dealt with, the operator lets the workflow go on.
    click(operator, 'button[data-workflow-action="resume"]')
    wait_for(lambda: console.sql("select status from public.workflows where id = %s", (workflow_id,), one=True)
             ["status"] == "IN_PROGRESS", message="the workflow moving on")
    wait_for(lambda: "2 of 7 steps" in text_of(client, "#order-progress"), timeout=5, message="the client's progress")
    assert not_reloaded(client)


# ---- 3. a client sees their own orders and nothing HIL-only ------------------------------------------
def test_a_client_sees_only_their_orders_and_none_of_the_hil_only_data(console, open_browser):
    marker = uuid.uuid4().hex[:8]
    own_id, own_tasks = started_workflow(console, title=f"Own order {marker}")
    other_id, _ = started_workflow(console, title=f"Other client's order {marker}", client=CLIENT_B)
    hil_only = [f"HIL-ONLY-NOTE-{marker}", f"HIL-ONLY-REASON-{marker}"]
    assert api(console, "operator", "POST", "/api/communications", json={
        "workflowId": own_id, "type": "message", "direction": "INTERNAL", "body": hil_only[0],
        "message": {"channel": "portal"}}).status_code == 201
    assert api(console, "operator", "POST", "/api/communications", json={
        "workflowId": own_id, "type": "message", "direction": "OUTBOUND", "isClientVisible": True,
        "body": f"Your payoff is on its way {marker}", "message": {"channel": "portal"}}).status_code == 201
    callback_ok(console, own_id, "task.started", taskKey=own_tasks[0]["taskKey"], attempt=1)
    callback_ok(console, own_id, "escalation", taskKey=own_tasks[0]["taskKey"], reason=hil_only[1])

    client = open_as(open_browser, console, "client_user_a", "#/orders")
    orders = text_of(client, "#orders")
    assert f"Own order {marker}" in orders and f"Other client's order {marker}" not in orders
    go(client, f"#/orders/{own_id}")
    wait_for(lambda: f"Your payoff is on its way {marker}" in main_text(client), message="the client-visible message")
    shown = main_text(client)
    for secret in hil_only + ["internal", "cost", "audit", "escalat"]:
        assert secret.lower() not in shown.lower(), secret
    # Routes of the HIL console are not there for a client, and another client's order is not found.
    go(client, f"#/workflows/{own_id}")
    assert "There is nothing at this address for you" in main_text(client)
    go(client, f"#/orders/{other_id}")
    assert "Order not found" in main_text(client)
    assert "Other client's order" not in main_text(client)


# ---- 4. text stays text --------------------------------------------------------------------------------
def test_an_html_title_renders_as_text_and_no_script_runs(console, open_browser):
    workflow_id, _ = started_workflow(console, title=XSS_TITLE)
    assert api(console, "operator", "POST", "/api/communications", json={
        "workflowId": workflow_id, "type": "message", "direction": "INTERNAL",
        "body": '<script>window.__xss = 1</script><b onmouseover="window.__xss = 2">bold</b>',
        "message": {"channel": "portal"}}).status_code == 201
    operator = open_as(open_browser, console, "operator")
    row = f'#active-workflows tr[data-workflow-id="{workflow_id}"]'
    wait_for(lambda: css(operator, row), message="the row")
    assert XSS_TITLE in text_of(operator, row)
    go(operator, f"#/workflows/{workflow_id}")
    assert text_of(operator, "#workflow-title") == XSS_TITLE
    assert "<script>window.__xss = 1</script>" in main_text(operator)
    with pytest.raises(NoAlertPresentException):
        operator.switch_to.alert.text  # noqa: B018 (the access raises when no alert is open)
    assert operator.execute_script("return window.__xss") is None
    assert operator.execute_script("return document.querySelectorAll('main img, main script, main b').length") == 0
    # The page is served with a policy that refuses inline script anyway.
    policy = requests.get(console.base + "/console/", timeout=5).headers["Content-Security-Policy"]
    assert "script-src 'self'" in policy and "unsafe-inline" not in policy


# ---- 5. the socket drops and comes back -------------------------------------------------------------
@pytest.fixture
def restartable(browser_database):
    """The service on a port of its own, which the test stops and starts again."""
    port = free_port()
    env = browser_env(browser_database, port)
    state = {"process": start_service(env, "wsgi:app", "browser-restart-server.log")[0]}

    def restart_after(during):
        # A restart as a deploy does it: SIGTERM, on which gunicorn's workers close their
        # sockets (1001) and stop once their requests are done.
        state["process"].send_signal(signal.SIGTERM)
        during()
        state["process"].wait(timeout=30)
        state["process"] = start_service(env, "wsgi:app", "browser-restart-server.log")[0]

    service = Console(f"http://127.0.0.1:{port}", browser_database, state["process"])
    service.restart_after = restart_after
    yield service
    stop_service(state["process"])


def test_after_the_service_restarts_the_page_catches_up_with_no_missed_or_repeated_event(restartable, open_browser):
    console = restartable
    workflow_id, tasks = started_workflow(console, title=f"Restart payoff {uuid.uuid4().hex[:6]}")
    page = open_as(open_browser, console, "operator", f"#/workflows/{workflow_id}")
    callback_ok(console, workflow_id, "task.started", taskKey=tasks[0]["taskKey"], attempt=1)
    first_row = f'#plan tr.task[data-task-id="{tasks[0]["id"]}"]'
    wait_for(lambda: css(page, first_row).get_attribute("data-status") == "RUNNING", message="a first live event")
    mark_no_reload(page)
    last_before = page.execute_script("return window.rexeraLive.lastId")
    assert last_before is not None

    def while_down():
        wait_for(lambda: css(page, "#connection").get_attribute("data-state") in ("reconnecting", "polling"),
                 message="the page showing the connection is down")
        # Changes committed while no service is up: each writes its events to the stream.
        with_statuses = [(tasks[0]["id"], "COMPLETED"), (tasks[1]["id"], "RUNNING")]
        for task_id, status in with_statuses:
            console.sql("update public.tasks set status = %s where id = %s", (status, task_id))

    console.restart_after(while_down)
    wait_for(lambda: css(page, "#connection").get_attribute("data-state") == "live", timeout=20,
             message="the connection back")
    second_row = f'#plan tr.task[data-task-id="{tasks[1]["id"]}"]'
    wait_for(lambda: css(page, first_row).get_attribute("data-status") == "COMPLETED"
             and css(page, second_row).get_attribute("data-status") == "RUNNING", message="the missed changes")
    assert not_reloaded(page)
    # What the page's channels carry after the last event it had: the workflow's own events and
    # the operator's notifications.
    expected = [r["seq"] for r in console.sql(
        """select seq from public.realtime_events
            where seq > %s and ((workflow_id = %s and event_type <> 'hil_notification')
                                or (event_type = 'hil_notification' and recipient_id = %s))
            order by seq""", (last_before, workflow_id, PEOPLE["operator"].user_id))]
    received = page.execute_script("return window.rexeraLive.received")
    after = [event_id for event_id in received if event_id > last_before]
    assert sorted(after) == expected  # every event of the channel once: none missed, none twice
    assert len(after) == len(set(after))


# ---- 6. by keyboard alone ---------------------------------------------------------------------------------
def keys(driver, *sequence) -> None:
    """Keys pressed on the keyboard, going to whatever has the focus (as a person types)."""
    ActionChains(driver).send_keys(*sequence).perform()


def tab_to(driver, predicate_js: str, limit: int = 150) -> None:
    """Press Tab until the focused element satisfies the JavaScript predicate (on `el`)."""
    for _ in range(limit):
        if driver.execute_script(f"const el = document.activeElement; return Boolean(el && ({predicate_js}));"):
            return
        keys(driver, Keys.TAB)
    raise AssertionError(f"never reached by Tab: {predicate_js}")


def test_the_main_path_by_keyboard_alone(console, open_browser):
    workflow_id, tasks = started_workflow(console, title=f"Keyboard payoff {uuid.uuid4().hex[:6]}")
    task = tasks[0]
    callback_ok(console, workflow_id, "task.started", taskKey=task["taskKey"], attempt=1)
    callback_ok(console, workflow_id, "escalation", taskKey=task["taskKey"], reason="Needs a person (keyboard)")
    driver = open_as(open_browser, console, "operator")
    # Narrow the queue by typing a search, then Enter.
    tab_to(driver, "el.name === 'q'")
    keys(driver, workflow_id, Keys.ENTER)
    wait_for(lambda: len(driver.find_elements(By.CSS_SELECTOR, "#queue tr[data-task-id]")) == 1, message="the search")
    tab_to(driver, f"el.classList.contains('take') && el.closest('tr').dataset.taskId === '{task['id']}'")
    keys(driver, Keys.ENTER)
    wait_for(lambda: console.sql("select assigned_to from public.tasks where id = %s", (task["id"],), one=True)
             ["assigned_to"] == PEOPLE["operator"].user_id, message="taken by keyboard")
    wait_for(lambda: "me" in text_of(driver, f'#queue tr[data-task-id="{task["id"]}"]'), message="the row says me")
    tab_to(driver, f"el.matches('a.button') && el.closest('tr').dataset.taskId === '{task['id']}'")
    keys(driver, Keys.ENTER)
    wait_for(lambda: css(driver, f'#plan tr.task[data-task-id="{task["id"]}"]'), message="the workflow page")
    tab_to(driver, f"el.dataset.action === 'complete' && el.closest('tr').dataset.taskId === '{task['id']}'")
    keys(driver, Keys.ENTER)
    wait_for(lambda: driver.switch_to.active_element.get_attribute("name") == "notes", message="focus in the form")
    keys(driver, "Done by keyboard")
    tab_to(driver, "el.type === 'submit' && el.closest('form.action-form')")
    keys(driver, Keys.ENTER)
    wait_for(lambda: console.sql("select status from public.tasks where id = %s", (task["id"],), one=True)
             == {"status": "COMPLETED"}, message="completed by keyboard")
    wait_for(lambda: console.sql("select body from public.communications where task_id = %s and direction = 'INTERNAL'",
                                 (task["id"],)) == [{"body": "Done by keyboard"}], message="the note, kept internal")
    # Every control of the page has a name a screen reader can say.
    unlabelled = driver.execute_script("""
        return [...document.querySelectorAll('input, select, textarea')].filter((el) => el.type !== 'hidden'
          && !(el.labels && el.labels.length) && !el.getAttribute('aria-label')).map((el) => el.name);""")
    assert unlabelled == []


# ---- 7. what the README shows ----------------------------------------------------------------------------
def test_screenshots_of_the_queue_a_workflow_and_the_client_view(console, open_browser):
    ids = []
    for index, (address, loan) in enumerate([("12 Oak Lane, Austin TX", "LN-40391"), ("7 Harbor View, Tampa FL", "LN-77120"),
                                             ("301 Elm St, Denver CO", "LN-11873")]):
        workflow_id, tasks = started_workflow(console, title=f"Payoff {loan} · {address.split(',')[0]}",
                                              payload={**PAYOFF, "address": address, "loanNumber": loan})
        ids.append(workflow_id)
        callback_ok(console, workflow_id, "task.started", taskKey=tasks[0]["taskKey"], attempt=1)
        callback_ok(console, workflow_id, "task.completed", taskKey=tasks[0]["taskKey"], attempt=1,
                    output={"confidence": 0.91 + index / 100, "lender": "First Bank", "portal": "lenderlink"})
        if index == 0:
            callback_ok(console, workflow_id, "escalation", taskKey=tasks[1]["taskKey"], reason="Lender portal asks for a captcha")
        if index == 1:
            callback_ok(console, workflow_id, "task.started", taskKey=tasks[1]["taskKey"], attempt=1)
            callback_ok(console, workflow_id, "task.failed", taskKey=tasks[1]["taskKey"], attempt=1,
                        error={"code": "LENDER_TIMEOUT", "message": "The lender's fax line did not answer"})
    api(console, "operator", "POST", "/api/communications", json={
        "workflowId": ids[0], "type": "message", "direction": "INTERNAL", "message": {"channel": "portal"},
        "body": "Captcha on the lender portal again; calling them instead."})
    api(console, "operator", "POST", "/api/communications", json={
        "workflowId": ids[0], "type": "message", "direction": "OUTBOUND", "isClientVisible": True,
        "message": {"channel": "portal"}, "body": "We have found your lender and are requesting the payoff statement."})

    operator = open_as(open_browser, console, "operator", width=1280, height=1000)
    wait_for(lambda: css(operator, f'#queue tr[data-workflow-id="{ids[0]}"]'), message="the queue rows")
    assert screenshot(operator, "queue").stat().st_size > 20_000
    go(operator, f"#/workflows/{ids[0]}")
    assert screenshot(operator, "workflow").stat().st_size > 20_000
    narrow = open_as(open_browser, console, "operator", width=400, height=900)
    assert screenshot(narrow, "queue-narrow").stat().st_size > 10_000
    assert narrow.execute_script("return document.documentElement.scrollWidth <= window.innerWidth + 1")
    client = open_as(open_browser, console, "client_user_a", f"#/orders/{ids[0]}", width=1280, height=800)
    wait_for(lambda: "requesting the payoff statement" in main_text(client), message="the client's message")
    assert screenshot(client, "client-order").stat().st_size > 10_000


# ---- beyond the seven: the other pages, as their people use them ----------------------------------------
FILL_THE_FORM = """
const form = document.querySelector('form.order-form');
for (const el of form.querySelectorAll('.payload [data-name]')) {
  if (el.dataset.kind === 'array') el.querySelector('input[type=checkbox]').checked = true;
  else if (el.tagName === 'SELECT') el.value = el.options[el.options.length - 1].value;
  else if (el.type === 'date') el.value = '2026-12-21';
  else if (el.type === 'number') el.value = '1250.50';
  else if (el.type === 'checkbox') el.checked = true;
  else el.value = el.dataset.name + ' ' + arguments[0];
}
return [...form.querySelectorAll('.payload [data-name]')].map((el) => el.dataset.name);
"""


def test_a_client_places_an_order_of_each_type_from_the_form_the_api_describes(console, open_browser):
    client = open_as(open_browser, console, "client_user_a", "#/orders/new")
    count = "select count(*) as n from public.workflows where client_id = %s"
    before = console.sql(count, (CLIENT_A,), one=True)["n"]
    # Nothing filled in: the API's own messages, next to the fields they are about, and nothing written.
    css(client, "form.order-form button[type=submit]").click()
    wait_for(lambda: css(client, '[data-name="address"]').find_element(By.XPATH, "..").find_element(
        By.CSS_SELECTOR, ".field-error").text, message="a field's error")
    errors = [e.text for e in client.find_elements(By.CSS_SELECTOR, "form.order-form .field-error") if e.text]
    assert "Missing data for required field." in errors and len(errors) >= 5, errors
    assert console.sql(count, (CLIENT_A,), one=True)["n"] == before
    placed = {}
    for workflow_type in ("MUNI_LIEN_SEARCH", "HOA_ACQUISITION", "PAYOFF_REQUEST"):
        go(client, "#/orders/new")
        client.execute_script("const s = document.querySelector('select[name=type]'); s.value = arguments[0];"
                              " s.dispatchEvent(new Event('change'));", workflow_type)
        marker = uuid.uuid4().hex[:6]
        names = client.execute_script(FILL_THE_FORM, marker)
        assert "address" in names
        css(client, "form.order-form button[type=submit]").click()
        wait_for(lambda: client.execute_script("return location.hash").startswith("#/orders/")
                 and client.execute_script("return location.hash") != "#/orders/new", message="the new order's page")
        workflow_id = client.execute_script("return location.hash").split("/")[-1]
        placed[workflow_type] = workflow_id
        row = console.sql("select workflow_type, client_id, created_by, payload from public.workflows where id = %s",
                          (workflow_id,), one=True)
        assert (row["workflow_type"], row["client_id"], row["created_by"]) == \
            (workflow_type, CLIENT_A, PEOPLE["client_user_a"].user_id)
        assert row["payload"]["address"] == f"address {marker}"
    assert console.sql(count, (CLIENT_A,), one=True)["n"] == before + 3


def test_the_manager_sees_the_team_and_the_sla_charts(console, open_browser):
    workflow_id, tasks = started_workflow(console, title=f"Team payoff {uuid.uuid4().hex[:6]}")
    callback_ok(console, workflow_id, "escalation", taskKey=tasks[0]["taskKey"], reason="for the team view")
    assert api(console, "manager", "POST", f"/api/tasks/{tasks[0]['id']}/actions",
               json={"action": "assign", "data": {"assigneeId": str(PEOPLE["operator"].user_id)}}).status_code == 200
    console.sql("""insert into public.sla_performance_metrics (metric_date, workflow_type, task_type, tasks_total, tasks_on_time)
                   values (current_date - 1, 'PAYOFF_REQUEST', 'team_view_check', 10, 9),
                          (current_date - 2, 'PAYOFF_REQUEST', 'team_view_check', 10, 7)
                   on conflict do nothing""")
    manager = open_as(open_browser, console, "manager", "#/team")
    nav = [a.text for a in manager.find_elements(By.CSS_SELECTOR, "#nav a")]
    assert nav == ["Queue", "Team", "Performance & SLA"]
    operator_row = f'#team tr[data-user-id="{PEOPLE["operator"].user_id}"]'
    cells = [td.text for td in css(manager, operator_row).find_elements(By.TAG_NAME, "td")]
    expected = console.sql("""select count(*) as n from public.tasks where assigned_to = %s
                               and status in ('PENDING', 'RUNNING', 'WAITING', 'AWAITING_REVIEW', 'FAILED')""",
                           (PEOPLE["operator"].user_id,), one=True)["n"]
    assert cells[0] == "Test Operator" and cells[2] == str(expected) and expected >= 1
    assert manager.find_elements(By.CSS_SELECTOR, "svg.chart rect")
    screenshot(manager, "team")
    go(manager, "#/reports")
    assert manager.find_elements(By.CSS_SELECTOR, "svg.chart polyline.line-c")  # payoff compliance by day
    assert "SLA compliance per type and day" in main_text(manager)
    screenshot(manager, "reports")
    # An operator has neither page.
    operator = open_as(open_browser, console, "operator", "#/team")
    assert "There is nothing at this address for you" in main_text(operator)


def test_notifications_count_mark_read_and_lead_to_the_workflow(console, open_browser):
    operator = open_as(open_browser, console, "operator")
    unread = lambda: int(css(operator, "#unread").text)  # noqa: E731
    before = unread()
    workflow_id, tasks = started_workflow(console, title=f"Notified payoff {uuid.uuid4().hex[:6]}")
    assert api(console, "manager", "PATCH", f"/api/workflows/{workflow_id}",
               json={"hilId": str(PEOPLE["operator"].user_id)}).status_code == 200
    callback_ok(console, workflow_id, "escalation", taskKey=tasks[0]["taskKey"], reason="a notification for you")
    wait_for(lambda: unread() > before, message="the unread count going up, live")
    shown = unread()
    assert shown == console.sql("select count(*) as n from public.notifications where recipient_id = %s"
                                " and read_at is null", (PEOPLE["operator"].user_id,), one=True)["n"]
    css(operator, "#notifications-button").click()
    item = wait_for(lambda: [li for li in operator.find_elements(By.CSS_SELECTOR, "#notifications li.unread")
                             if "a notification for you" in li.text][0], message="the notification")
    notification_id = item.get_attribute("data-id")
    item.find_element(By.TAG_NAME, "a").click()
    wait_for(lambda: operator.execute_script("return location.hash") == f"#/workflows/{workflow_id}",
             message="the jump to the workflow")
    wait_for(lambda: console.sql("select read_at from public.notifications where id = %s", (notification_id,),
                                 one=True)["read_at"] is not None, message="marked read")
    wait_for(lambda: unread() == shown - 1, message="the count going down")


def test_times_are_shown_in_the_viewers_time_zone(console, open_browser):
    workflow_id, _ = started_workflow(console, title=f"Zoned payoff {uuid.uuid4().hex[:6]}")
    driver = open_browser()
    driver.execute_cdp_cmd("Emulation.setTimezoneOverride", {"timezoneId": "America/Chicago"})
    driver.get(console.sign_in_link("operator"))
    wait_for(lambda: css(driver, f'#active-workflows tr[data-workflow-id="{workflow_id}"]'), message="the row")
    assert "Times in America/Chicago" in main_text(driver)
    assert re.search(r"\b(CST|CDT)\b", text_of(driver, f'#active-workflows tr[data-workflow-id="{workflow_id}"]'))


def test_where_the_socket_is_not_served_the_page_says_so_and_refreshes(browser_database, open_browser):
    """The Vercel shape: /ws answers 501; the console shows it and reads the API every 15 s."""
    env = browser_env(browser_database, free_port(), VERCEL="1", DISPATCHER_ENABLED="", SLA_SWEEP_INTERVAL_SECONDS="")
    env = {key: value for key, value in env.items() if value != ""}
    process, base = start_service(env, "wsgi:app", "browser-serverless-server.log")
    try:
        console = Console(base, browser_database, process)
        workflow_id, tasks = started_workflow(console, title=f"Polled payoff {uuid.uuid4().hex[:6]}")
        driver = open_browser()
        driver.get(console.sign_in_link("operator"))
        row = f'#active-workflows tr[data-workflow-id="{workflow_id}"]'
        wait_for(lambda: css(driver, row), message="the row")
        assert css(driver, "#connection").get_attribute("data-state") == "unavailable"
        assert "not available here" in text_of(driver, "#connection")
        mark_no_reload(driver)
        callback_ok(console, workflow_id, "task.started", taskKey=tasks[0]["taskKey"], attempt=1)
        callback_ok(console, workflow_id, "task.completed", taskKey=tasks[0]["taskKey"], attempt=1, output={})
        wait_for(lambda: "14%" in text_of(driver, row), timeout=25, message="the periodic refresh")
        assert not_reloaded(driver)
    finally:
        stop_service(process)


def test_signing_out_ends_the_session_in_the_page_and_the_cookie(console, open_browser):
    operator = open_as(open_browser, console, "operator")
    click(operator, "#sign-out")
    wait_for(lambda: "Sign in to Rexera" in main_text(operator), message="the sign-in page")
    assert css(operator, "header.top").get_attribute("hidden") is not None
    assert operator.execute_script("return window.rexeraLive.ws") is None  # the socket is closed
    operator.refresh()  # the refresh cookie is gone: a reload does not sign back in
    wait_for(lambda: "Sign in to Rexera" in main_text(operator), message="still signed out after a reload")


def test_the_token_is_refreshed_before_it_expires_and_the_page_and_socket_carry_on(browser_database, open_browser):
    """Tokens of 62 s: the page refreshes each a minute before its end (here after 5 s), sends the
    new one over the socket, and an hour's work goes on past the first token's expiry with no
    drop and no sign-in."""
    process, base = start_service(browser_env(browser_database, free_port(), CONSOLE_LOCAL_TOKEN_SECONDS="62"),
                                  "wsgi:app", "browser-refresh-server.log")
    try:
        console = Console(base, browser_database, process)
        workflow_id, tasks = started_workflow(console, title=f"Refreshed payoff {uuid.uuid4().hex[:6]}")
        signed_in_at = time.monotonic()
        page = open_as(open_browser, console, "operator", f"#/workflows/{workflow_id}")
        mark_no_reload(page)
        refreshes = ("return performance.getEntriesByType('resource')"
                     ".filter((e) => e.name.endsWith('/console/auth/refresh')).length")
        wait_for(lambda: page.execute_script(refreshes) >= 2, timeout=20, message="two refreshes")
        # Past the first token's expiry (and the server's check of the socket's token).
        time.sleep(max(0.0, 66 - (time.monotonic() - signed_in_at)))
        assert css(page, "#connection").get_attribute("data-state") == "live"
        assert page.execute_script("return window.rexeraLive.failures") == 0  # never dropped
        loaded = page.find_element(By.ID, "main").get_attribute("data-loaded-at")
        callback_ok(console, workflow_id, "task.started", taskKey=tasks[0]["taskKey"], attempt=1)
        task_row = f'#plan tr.task[data-task-id="{tasks[0]["id"]}"]'
        wait_for(lambda: css(page, task_row).get_attribute("data-status") == "RUNNING", message="a live change")
        wait_for(lambda: page.find_element(By.ID, "main").get_attribute("data-loaded-at") != loaded,
                 message="the API read after it, with the current token")
        assert "Sign in to Rexera" not in main_text(page) and not_reloaded(page)
    finally:
        stop_service(process)


def test_the_interactive_api_docs_render_offline_under_their_policy(console, open_browser):
    driver = open_browser()
    driver.get(console.base + "/api/docs")
    wait_for(lambda: len(driver.find_elements(By.CSS_SELECTOR, ".opblock")) > 20, timeout=20,
             message="Swagger UI's operations")
    assert "/api/workflows" in main_text(driver)
    refused = [entry["message"] for entry in driver.get_log("browser")
               if "Content Security Policy" in entry["message"] or entry["level"] == "SEVERE"]
    assert refused == []
