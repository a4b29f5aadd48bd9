// The operator's work queue: what needs a person now, riskiest first (the dashboard view's task
// queue: HIL tasks, failed agent tasks and tasks awaiting review, by SLA status then due time),
// with filters and search served by the API, and the active workflows below. Rows change in
// place from the event stream; the order is read again from the API right after.
import { get, post, query } from '../api.js';
import { live } from '../live.js';
import * as session from '../session.js';
import { h, replace, text, when, businessLeft, badge, label, progressBar, select, field, shortId, timeZone } from '../dom.js';

const TASK_STATUSES = ['FAILED', 'AWAITING_REVIEW', 'PENDING', 'RUNNING', 'WAITING'];
const TYPES = ['MUNI_LIEN_SEARCH', 'HOA_ACQUISITION', 'PAYOFF_REQUEST'];
const filters = { q: '', status: '', type: '', clientId: '', assignedTo: '' };
const clientsSeen = new Map();

export function peopleNames(team) {
  return new Map((team || []).map((p) => [p.userId, p.fullName || p.email]));
}

export async function queueView(main, params) {
  const me = session.person();
  if (params !== undefined) {
    const given = new URLSearchParams(params);
    for (const key of Object.keys(filters)) filters[key] = given.get(key) || '';
  }
  let data = null;
  let reloadTimer = null;
  let loading = null;
  let again = false;

  const summary = h('section', { class: 'cards', 'aria-label': 'Summary' });
  const queueBody = h('tbody');
  const activeBody = h('tbody');
  const status = h('p', { class: 'status-line', role: 'status', 'aria-live': 'polite' });
  const search = h('input', { type: 'search', name: 'q', value: filters.q, placeholder: 'address, loan number or id',
                               autocomplete: 'off' });
  const statusSelect = select('status', [['', 'Any status'], ...TASK_STATUSES.map((s) => [s, label(s)])], filters.status);
  const typeSelect = select('type', [['', 'Any type'], ...TYPES.map((t) => [t, label(t)])], filters.type);
  const clientSelect = select('clientId', [['', 'Any client']], filters.clientId);
  const assigneeSelect = select('assignedTo', [['', 'Anyone'], [me.id, 'Me']], filters.assignedTo);

  const form = h('form', {
    class: 'filters', role: 'search', 'aria-label': 'Filter the queue',
    onsubmit: (event) => { event.preventDefault(); readFilters(); load(); },
  },
  field('Search', search), field('Task status', statusSelect), field('Workflow type', typeSelect),
  field('Client', clientSelect), field('Assignee', assigneeSelect),
  h('div', { class: 'field actions' }, h('button', { type: 'submit' }, 'Apply'),
    h('button', { type: 'button', onclick: () => { Object.keys(filters).forEach((k) => { filters[k] = ''; }); form.reset(); load(); } }, 'Clear')));
  for (const control of [statusSelect, typeSelect, clientSelect, assigneeSelect]) {
    control.addEventListener('change', () => { readFilters(); load(); });
  }

  function readFilters() {
    filters.q = search.value.trim();
    filters.status = statusSelect.value;
    filters.type = typeSelect.value;
    filters.clientId = clientSelect.value;
    filters.assignedTo = assigneeSelect.value;
  }

  replace(main,
    h('div', { class: 'view-head' }, h('h1', {}, 'Work queue'),
      h('small', {}, `Times in ${timeZone()}; time left counts business hours.`)),
    summary, form, status,
    h('section', { 'aria-labelledby': 'queue-title' },
      h('h2', { id: 'queue-title' }, 'Needs a person'),
      h('div', { class: 'table-wrap' }, h('table', { class: 'queue', id: 'queue' },
        h('thead', {}, h('tr', {}, ['SLA', 'Time left', 'Due', 'Task', 'Workflow', 'Assignee', ''].map((c) => h('th', { scope: 'col' }, c)))),
        queueBody))),
    h('section', { 'aria-labelledby': 'active-title' },
      h('h2', { id: 'active-title' }, 'Active workflows'),
      h('div', { class: 'table-wrap' }, h('table', { class: 'active', id: 'active-workflows' },
        h('thead', {}, h('tr', {}, ['Workflow', 'Type', 'Status', 'Progress', 'SLA', 'Owner', 'Updated'].map((c) => h('th', { scope: 'col' }, c)))),
        activeBody))));

  function renderSummary() {
    const s = data.summary || {};
    const cards = [
      ['Active workflows', s.activeWorkflows], ['Tasks awaiting a person', s.tasksAwaitingHil],
      ['At risk', s.tasksAtRisk], ['Breached', s.tasksBreached], ['Unread notifications', s.unreadNotifications],
    ];
    replace(summary, cards.map(([caption, value]) => h('div', { class: 'card' },
      h('span', { class: 'value' }, text(value ?? 0)), h('span', { class: 'caption' }, caption))));
  }

  function queueRow(task, names) {
    const mine = task.assignedTo === me.id;
    return h('tr', { dataset: { taskId: task.taskId, workflowId: task.workflowId, status: task.status } },
      h('td', {}, badge('sla', task.slaStatus)),
      h('td', { class: 'left' }, businessLeft(task.businessMinutesRemaining)),
      h('td', {}, when(task.slaDueAt)),
      h('td', {}, h('div', { class: 'task-title' }, task.title), h('span', { class: 'task-status' }, badge('status', task.status)),
        ' ', h('small', {}, task.executorType === 'AI' ? (task.agentName ? `agent ${task.agentName}` : 'automation') : 'person')),
      h('td', {}, h('a', { href: `#/workflows/${task.workflowId}` }, task.workflowTitle || shortId(task.workflowId)),
        h('div', {}, h('small', {}, label(task.workflowType)))),
      h('td', {}, task.assignedTo ? (mine ? 'me' : text(names.get(task.assignedTo) || shortId(task.assignedTo))) : 'unassigned'),
      h('td', { class: 'row-actions' },
        mine ? null : h('button', { type: 'button', class: 'take', onclick: () => take(task) }, 'Take'),
        h('a', { class: 'button', href: `#/workflows/${task.workflowId}` }, 'Open')));
  }

  function activeRow(w, names) {
    return h('tr', { dataset: { workflowId: w.id } },
      h('td', {}, h('a', { href: `#/workflows/${w.id}` }, w.title || shortId(w.id))),
      h('td', {}, label(w.workflowType)),
      h('td', { class: 'wf-status' }, badge('status', w.status)),
      h('td', { class: 'wf-progress' }, progressBar(w.progress?.progressPercentage, `progress of ${w.title || w.id}`)),
      h('td', { class: 'wf-sla' }, badge('sla', w.slaStatus)),
      h('td', {}, w.hilOwnerId ? text(names.get(w.hilOwnerId) || shortId(w.hilOwnerId)) : '—'),
      h('td', {}, when(w.updatedAt)));
  }

  function render() {
    const focused = document.activeElement?.closest?.('tr')?.dataset?.taskId;
    const names = peopleNames(data.team);
    renderSummary();
    for (const task of data.taskQueue || []) if (task.clientId) clientsSeen.set(task.clientId, true);
    for (const w of data.activeWorkflows || []) if (w.clientId) clientsSeen.set(w.clientId, true);
    const clients = [['', 'Any client'], ...[...clientsSeen.keys()].map((id) => [id, `client ${shortId(id)}`])];
    if (clientSelect.options.length !== clients.length) {
      replace(clientSelect, clients.map(([v, c]) => h('option', { value: v, selected: v === filters.clientId }, c)));
    }
    const people = [['', 'Anyone'], [me.id, 'Me'], ...(data.team || []).filter((p) => p.userId !== me.id)
      .map((p) => [p.userId, p.fullName || p.email])];
    if (assigneeSelect.options.length !== people.length) {
      replace(assigneeSelect, people.map(([v, c]) => h('option', { value: v, selected: v === filters.assignedTo }, c)));
    }
    const rows = (data.taskQueue || []).map((task) => queueRow(task, names));
    replace(queueBody, rows.length ? rows : h('tr', {}, h('td', { colspan: 7, class: 'empty' }, 'Nothing needs a person right now.')));
    replace(activeBody, (data.activeWorkflows || []).map((w) => activeRow(w, names)));
    if (focused) queueBody.querySelector(`tr[data-task-id="${CSS.escape(focused)}"] button, tr[data-task-id="${CSS.escape(focused)}"] a`)?.focus();
    // Task changes of the workflows shown arrive on their channels.
    const channels = new Set(['workflows']);
    for (const task of data.taskQueue || []) channels.add(`workflow:${task.workflowId}`);
    live.only([...channels].slice(0, 150));
    main.dataset.loadedAt = String(Date.now());
    // The queue's first meaningful paint, for the Performance API (tests/perf/bench_console.py).
    if (!performance.getEntriesByName('rexera:queue-painted').length) {
      requestAnimationFrame(() => performance.mark('rexera:queue-painted'));
    }
  }

  async function load() {
    if (loading) {
      again = true;
      return loading;
    }
    loading = (async () => {
      try {
        data = await get(`/api/views/dashboard${query({ ...filters })}`);
        render();
        status.textContent = '';
      } catch (error) {
        status.textContent = error.message;
        status.className = 'status-line error';
      }
    })();
    await loading;
    loading = null;
    if (again) {
      again = false;
      load();
    }
  }

  function reloadSoon() {
    clearTimeout(reloadTimer);
    reloadTimer = setTimeout(load, 250);
  }

  async function take(task) {
    try {
      await post(`/api/tasks/${task.taskId}/actions`, { action: 'assign', data: { assigneeId: me.id } });
      status.textContent = `You took "${task.title}".`;
      status.className = 'status-line';
      load();
    } catch (error) {
      status.textContent = error.message;
      status.className = 'status-line error';
    }
  }

  // Live: patch what is on screen at once, then read the order again.
  const off = live.on((message) => {
    if (message.type === 'reload') {
      load();
      return;
    }
    if (message.type === 'workflow_status_changed') {
      const row = activeBody.querySelector(`tr[data-workflow-id="${CSS.escape(message.workflowId)}"]`);
      if (row) {
        const m = message.metadata || {};
        replace(row.querySelector('.wf-status'), badge('status', message.status));
        replace(row.querySelector('.wf-progress'), progressBar(m.progressPercentage, 'progress'));
        if (m.slaStatus) replace(row.querySelector('.wf-sla'), badge('sla', m.slaStatus));
        row.dataset.eventId = String(message.id);
      }
      reloadSoon();
    } else if (message.type === 'task_execution_updated') {
      const row = queueBody.querySelector(`tr[data-task-id="${CSS.escape(message.taskId)}"]`);
      if (row) {
        replace(row.querySelector('.task-status'), badge('status', message.status));
        row.dataset.status = message.status;
        row.dataset.eventId = String(message.id);
      }
      reloadSoon();
    } else if (message.type === 'hil_notification') {
      reloadSoon();
    }
  });

  await load();
  return () => {
    off();
    clearTimeout(reloadTimer);
  };
}
