// One workflow, as an operator works it: the plan in order (status, executor, attempts, the
// agent's result, errors, the SLA clock), the actions where the problem is shown, documents,
// communications (internal and client-visible marked), counterparties and the timeline.
// Live on the workflow's channel: rows change in place; a form being filled in is left alone.
import { get, post, fieldErrors } from '../api.js';
import { live } from '../live.js';
import * as session from '../session.js';
import { h, replace, text, when, businessLeft, badge, label, progressBar, field, select, shortId, timeZone } from '../dom.js';

// Finished: no task of the workflow takes an action (the server answers 409). A FAILED workflow
// is recovered as a whole: a person resumes it (then acts on its tasks) or cancels it.
const FINISHED = ['COMPLETED', 'CANCELLED', 'FAILED'];

function taskActions(task, workflowStatus) {
  if (FINISHED.includes(workflowStatus)) return [];
  const hil = task.executorType === 'HIL';
  switch (task.status) {
    case 'FAILED': return ['retry', 'escalate', 'fail', 'assign'];
    case 'AWAITING_REVIEW': return ['complete', 'escalate', 'fail', 'assign'];
    case 'PENDING': return hil ? ['complete', 'escalate', 'assign'] : ['escalate'];
    case 'RUNNING': return hil ? ['complete', 'escalate', 'fail', 'assign'] : ['escalate', 'fail'];
    case 'WAITING': return ['resume', 'escalate', 'fail', 'assign'];
    default: return [];
  }
}

const ACTION_CAPTIONS = {
  complete: 'Complete', retry: 'Retry', escalate: 'Escalate', fail: 'Fail', assign: 'Assign', resume: 'Resume with answer',
};

function json(value) {
  if (value === null || value === undefined) return '—';
  return typeof value === 'string' ? value : JSON.stringify(value, null, 2);
}

function agentResult(task) {
  const output = task.agentOutput ?? task.result;
  const last = (task.executions || []).at(-1);
  const confidence = output && typeof output === 'object' ? (output.confidence ?? output.confidenceScore) : undefined;
  if (output === null || output === undefined) return last?.errorMessage ? '' : '—';
  return h('details', {}, h('summary', {}, confidence !== undefined ? `confidence ${confidence}` : 'output'),
    h('pre', {}, json(output)));
}

export async function workflowView(main, workflowId) {
  const me = session.person();
  let workflow = null;
  let tasks = [];
  let team = [];
  let reloadTimer = null;
  let openForm = null; // {taskId, action, row}

  const head = h('section', { class: 'wf-head', 'aria-label': 'Workflow' });
  const status = h('p', { class: 'status-line', role: 'status', 'aria-live': 'polite' });
  const tasksBody = h('tbody');
  const docs = h('div');
  const comms = h('div');
  const parties = h('div');
  const timeline = h('ol', { class: 'timeline' });

  replace(main, h('p', {}, h('a', { href: '#/queue' }, '← Queue')), head, status,
    h('section', { 'aria-labelledby': 'plan-title' }, h('h2', { id: 'plan-title' }, 'Plan'),
      h('div', { class: 'table-wrap' }, h('table', { class: 'plan', id: 'plan' },
        h('thead', {}, h('tr', {}, ['#', 'Task', 'Status', 'Executor', 'Attempts', 'Agent result', 'Error', 'SLA', ''].map((c) => h('th', { scope: 'col' }, c)))),
        tasksBody))),
    h('div', { class: 'columns' },
      h('section', { 'aria-labelledby': 'comms-title' }, h('h2', { id: 'comms-title' }, 'Communications'), comms, messageForms()),
      h('section', {}, h('h2', {}, 'Documents'), docs, h('h2', {}, 'Counterparties'), parties)),
    h('section', { 'aria-labelledby': 'timeline-title' }, h('h2', { id: 'timeline-title' }, 'Timeline'), timeline));

  function say(message, error = false) {
    status.textContent = message;
    status.className = `status-line${error ? ' error' : ''}`;
  }

  function names(id) {
    if (!id) return 'unassigned';
    if (id === me.id) return 'me';
    const person = team.find((p) => p.userId === id);
    return person ? (person.fullName || person.email) : shortId(id);
  }

  function renderHead() {
    const w = workflow;
    const p = w.progress || {};
    const actions = [];
    if (['IN_PROGRESS', 'AWAITING_REVIEW', 'BLOCKED'].includes(w.status)) actions.push(['pause', 'Pause']);
    // A blocked workflow goes on when the person who dealt with the problem resumes it; a failed
    // one starts again from its last checkpoint, or is closed out with a cancel.
    if (['PAUSED', 'BLOCKED', 'FAILED'].includes(w.status)) actions.push(['resume', 'Resume workflow']);
    if (w.status === 'PENDING') actions.push(['start', 'Start']);
    if (!['COMPLETED', 'CANCELLED'].includes(w.status)) actions.push(['cancel', 'Cancel workflow']);
    replace(head,
      h('h1', { id: 'workflow-title' }, w.title || label(w.type)),
      h('dl', { class: 'facts' },
        h('dt', {}, 'Type'), h('dd', {}, label(w.type)),
        h('dt', {}, 'Status'), h('dd', { id: 'workflow-status' }, badge('status', w.status)),
        h('dt', {}, 'Progress'), h('dd', { id: 'workflow-progress' }, progressBar(p.progressPercentage, 'workflow progress'),
          ` ${p.completedTasks ?? 0} of ${p.totalTasks ?? 0} tasks`),
        h('dt', {}, 'SLA'), h('dd', { id: 'workflow-sla' }, badge('sla', w.slaStatus)),
        h('dt', {}, 'Priority'), h('dd', {}, label(w.priority)),
        h('dt', {}, 'Due'), h('dd', {}, when(w.dueDate)),
        h('dt', {}, 'Owner'), h('dd', {}, names(w.hilId)),
        h('dt', {}, 'Client'), h('dd', {}, shortId(w.clientId)),
        h('dt', {}, 'Id'), h('dd', {}, h('code', {}, w.id))),
      h('div', { class: 'wf-actions' }, actions.map(([action, caption]) => h('button', {
        type: 'button', class: action === 'cancel' ? 'danger' : '', dataset: { workflowAction: action },
        onclick: () => workflowAction(action, caption),
      }, caption))),
      h('small', {}, `Times in ${timeZone()}.`));
  }

  async function workflowAction(action, caption) {
    if (action === 'cancel' && !window.confirm('Cancel this workflow? Its open tasks are cancelled.')) return;
    try {
      await post(`/api/workflows/${workflowId}/actions`, { action });
      say(`${caption}: done.`);
      load();
    } catch (error) {
      say(error.message, true);
    }
  }

  function taskCells(task) {
    return [
      h('td', {}, String(task.sequence ?? '')),
      h('td', {}, h('div', { class: 'task-title' }, task.title), h('small', {}, task.taskKey)),
      h('td', { class: 'task-status' }, badge('status', task.status), task.isWaitingOnN8n ? h('small', {}, ' waiting for an answer') : null),
      h('td', {}, task.executorType === 'AI' ? (task.agentName ? `agent ${task.agentName}` : 'automation') : 'person',
        h('div', {}, h('small', {}, names(task.assignedTo)))),
      h('td', {}, `${task.attemptCount ?? 0} / ${task.maxAttempts ?? '—'}`),
      h('td', {}, agentResult(task)),
      h('td', { class: 'error-cell' }, task.errorMessage || '',
        task.metadata?.escalation ? h('div', { class: 'escalation' }, h('span', { class: 'badge status-blocked' }, 'escalated'),
          ` ${task.metadata.escalation.reason || ''}`) : null,
        !task.errorMessage && !task.metadata?.escalation ? '—' : null),
      h('td', {}, badge('sla', task.slaStatus), h('div', {}, h('small', {}, task.slaDueAt ? `due ${when(task.slaDueAt)}` : '')),
        h('div', {}, h('small', {}, task.businessMinutesRemaining === null || task.businessMinutesRemaining === undefined
          ? '' : businessLeft(task.businessMinutesRemaining)))),
      h('td', { class: 'row-actions' },
        task.assignedTo !== me.id && taskActions(task, workflow?.status).includes('assign')
          ? h('button', { type: 'button', class: 'take', onclick: () => act(task, 'assign', { assigneeId: me.id }) }, 'Take') : null,
        taskActions(task, workflow?.status).map((action) => h('button', {
          type: 'button', dataset: { action }, onclick: () => openActionForm(task, action),
        }, ACTION_CAPTIONS[action]))),
    ];
  }

  function renderTasks() {
    const ids = tasks.map((t) => t.id);
    const current = [...tasksBody.querySelectorAll('tr.task')].map((r) => r.dataset.taskId);
    if (ids.join() === current.join()) {
      for (const task of tasks) {
        const row = tasksBody.querySelector(`tr.task[data-task-id="${CSS.escape(task.id)}"]`);
        row.replaceChildren(...taskCells(task));
        row.dataset.status = task.status;
      }
    } else {
      replace(tasksBody, tasks.map((task) => h('tr', { class: 'task', dataset: { taskId: task.id, status: task.status } }, taskCells(task))));
      if (openForm) tasksBody.querySelector(`tr.task[data-task-id="${CSS.escape(openForm.taskId)}"]`)?.after(openForm.row);
    }
  }

  function openActionForm(task, action) {
    if (openForm) openForm.row.remove();
    const error = h('p', { class: 'error', role: 'alert' });
    const controls = [];
    const read = [];
    if (action === 'complete') {
      const notes = h('textarea', { name: 'notes', rows: 3, required: true });
      const result = h('textarea', { name: 'result', rows: 3, placeholder: '{"lienAmount": 0}' });
      controls.push(field('Notes (HIL only: kept as an internal note on the task)', notes),
        field('Result data (JSON, optional; the task\'s result, which the workflow carries on with)', result));
      read.push(() => {
        const data = result.value.trim() ? JSON.parse(result.value) : {};
        // The notes stay with HIL people: in the action's audit record and an internal note on
        // the task, never in the task's result (which client users may read).
        return { notes: notes.value, result: data };
      });
    } else if (action === 'escalate') {
      const reason = h('textarea', { name: 'reason', rows: 2, required: true });
      controls.push(field('Reason', reason));
      read.push(() => ({ reason: reason.value }));
    } else if (action === 'fail') {
      const why = h('textarea', { name: 'error', rows: 2, required: true });
      controls.push(field('Why it fails', why));
      read.push(() => ({ error: why.value }));
    } else if (action === 'assign') {
      const who = select('assigneeId', [[me.id, 'me'], ...team.filter((p) => p.userId !== me.id).map((p) => [p.userId, p.fullName || p.email])], task.assignedTo);
      controls.push(field('Assign to', who));
      read.push(() => ({ assigneeId: who.value }));
    } else if (action === 'resume') {
      const answer = h('textarea', { name: 'body', rows: 4, required: true, placeholder: '{"payoffAmount": 245000}' });
      const complete = h('input', { type: 'checkbox', name: 'complete' });
      controls.push(field("The outside party's answer (JSON or text)", answer),
        h('label', { class: 'check' }, complete, ' This answer completes the task'));
      read.push(() => {
        let body;
        try { body = JSON.parse(answer.value); } catch { body = { text: answer.value }; }
        return { body, complete: complete.checked };
      });
    }
    const form = h('form', {
      class: 'action-form', 'aria-label': `${ACTION_CAPTIONS[action]}: ${task.title}`,
      onsubmit: async (event) => {
        event.preventDefault();
        let data = {};
        try {
          for (const r of read) Object.assign(data, r());
        } catch (e) {
          error.textContent = `Not valid JSON: ${e.message}`;
          return;
        }
        const done = await act(task, action, data, error);
        if (done && action === 'complete' && data.notes && data.notes.trim()) {
          try {
            await post('/api/communications', { workflowId, taskId: task.id, type: 'message', direction: 'INTERNAL',
                                                body: data.notes, message: { channel: 'portal' } });
            load();
          } catch (e) {
            say(`Completed, but the note was not saved (${e.message}): add it as an internal note.`, true);
          }
        }
        if (done) close();
      },
    }, h('h3', {}, `${ACTION_CAPTIONS[action]}: ${task.title}`), controls, error,
    h('div', { class: 'form-buttons' }, h('button', { type: 'submit' }, ACTION_CAPTIONS[action]),
      h('button', { type: 'button', onclick: () => close() }, 'Close')));
    const row = h('tr', { class: 'action-row' }, h('td', { colspan: 9 }, form));
    const close = () => { row.remove(); openForm = null; };
    tasksBody.querySelector(`tr.task[data-task-id="${CSS.escape(task.id)}"]`).after(row);
    openForm = { taskId: task.id, action, row };
    (form.querySelector('textarea, select, input') || form.querySelector('button')).focus();
  }

  async function act(task, action, data, errorEl) {
    try {
      const result = await post(`/api/tasks/${task.id}/actions`, { action, data });
      say(`${ACTION_CAPTIONS[action]} "${task.title}": ${label(result.previousStatus)} → ${label(result.newStatus)}.`);
      load();
      return true;
    } catch (error) {
      const lines = fieldErrors(error.details).map(([name, message]) => `${name.replace(/^json\./, '')}: ${message}`);
      const message = [error.message, ...lines].join(' — ');
      if (errorEl) errorEl.textContent = message;
      else say(message, true);
      return false;
    }
  }

  function messageForms() {
    const note = h('textarea', { name: 'note', rows: 2, required: true });
    const message = h('textarea', { name: 'message', rows: 2, required: true });
    const error = h('p', { class: 'error', role: 'alert' });
    const send = (body, internal) => post('/api/communications', {
      workflowId, type: 'message', direction: internal ? 'INTERNAL' : 'OUTBOUND', body,
      ...(internal ? {} : { isClientVisible: true }), message: { channel: 'portal' },
    });
    const submit = (input, internal) => async (event) => {
      event.preventDefault();
      error.textContent = '';
      try {
        await send(input.value, internal);
        input.value = '';
        say(internal ? 'Internal note added.' : 'Message sent to the client.');
        load();
      } catch (e) {
        error.textContent = [e.message, ...fieldErrors(e.details).map(([n, m]) => `${n.replace(/^json\./, '')}: ${m}`)].join(' — ');
      }
    };
    return h('div', { class: 'message-forms' },
      h('form', { onsubmit: submit(note, true), 'aria-label': 'Add an internal note' },
        field('Internal note (HIL only)', note), h('button', { type: 'submit' }, 'Add note')),
      h('form', { onsubmit: submit(message, false), 'aria-label': 'Message the client' },
        field('Message to the client (the client sees it)', message), h('button', { type: 'submit' }, 'Send to client')),
      error);
  }

  function renderSides() {
    const communications = workflow.communications || [];
    replace(comms, communications.length ? h('ul', { class: 'comms' }, communications.map((c) => {
      const internal = c.direction === 'INTERNAL' || !c.isClientVisible;
      return h('li', { class: internal ? 'internal' : 'client-visible' },
        h('span', { class: `badge ${internal ? 'vis-internal' : 'vis-client'}` }, internal ? 'internal' : 'client-visible'),
        ' ', h('strong', {}, `${label(c.direction)} ${c.type}`), ' ', h('small', {}, when(c.sentAt || c.createdAt)),
        c.subject ? h('div', {}, c.subject) : null, c.body ? h('p', { class: 'body' }, c.body) : null);
    })) : h('p', { class: 'empty' }, 'No communications yet.'));
    const documents = workflow.documents || [];
    replace(docs, documents.length ? h('ul', {}, documents.map((d) => h('li', {},
      h('strong', {}, d.filename), ' ', badge('status', d.status), ' ', h('small', {}, label(d.documentType)),
      d.deliverableKey ? h('small', {}, ` · deliverable ${d.deliverableKey}`) : null))) : h('p', { class: 'empty' }, 'No documents yet.'));
    const counterparties = workflow.counterparties || [];
    replace(parties, counterparties.length ? h('ul', {}, counterparties.map((c) => h('li', {},
      h('strong', {}, c.name), ` ${label(c.type)} `, badge('status', c.status)))) : h('p', { class: 'empty' }, 'None linked.'));
    const events = tasks.flatMap((t) => (t.timeline || []).map((e) => ({ ...e, task: t.title })))
      .sort((a, b) => String(b.createdAt).localeCompare(String(a.createdAt))).slice(0, 200);
    replace(timeline, events.map((e) => h('li', {},
      h('small', {}, when(e.createdAt)), ' ', h('strong', {}, e.task), ' ', label(e.eventType),
      e.fromStatus || e.toStatus ? ` ${label(e.fromStatus) || '—'} → ${label(e.toStatus) || '—'}` : '',
      e.actorType ? h('small', {}, ` by ${label(e.actorType)}`) : null,
      e.message ? h('div', { class: 'body' }, e.message) : null)));
  }

  async function load() {
    try {
      const [w, t, c] = await Promise.all([
        get(`/api/workflows/${workflowId}?include=documents,counterparties`),
        get(`/api/tasks?workflowId=${workflowId}&include=timeline,executions,sla&limit=200`),
        get(`/api/communications?workflowId=${workflowId}&limit=100`),
      ]);
      workflow = { ...w, communications: c.communications || [] };
      tasks = t.tasks || [];
      renderHead();
      renderTasks();
      renderSides();
      main.dataset.loadedAt = String(Date.now());
    } catch (error) {
      if (error.status === 404) replace(main, h('h1', {}, 'Workflow not found'), h('p', {}, error.message));
      else say(error.message, true);
    }
  }

  const off = live.on((message) => {
    if (message.type === 'reload') {
      load();
      return;
    }
    if (message.workflowId !== workflowId) return;
    if (message.type === 'task_execution_updated') {
      const row = tasksBody.querySelector(`tr.task[data-task-id="${CSS.escape(message.taskId)}"]`);
      if (row) {
        replace(row.querySelector('.task-status'), badge('status', message.status));
        row.dataset.status = message.status;
        row.dataset.eventId = String(message.id);
      }
    } else if (message.type === 'workflow_status_changed') {
      const m = message.metadata || {};
      const st = head.querySelector('#workflow-status');
      const pr = head.querySelector('#workflow-progress');
      if (st) replace(st, badge('status', message.status));
      if (pr) replace(pr, progressBar(m.progressPercentage, 'workflow progress'), ` ${m.completedTasks ?? 0} of ${m.totalTasks ?? 0} tasks`);
      head.dataset.eventId = String(message.id);
    }
    clearTimeout(reloadTimer);
    reloadTimer = setTimeout(load, 250);
  });

  live.only([`workflow:${workflowId}`]);
  get('/api/views/dashboard?timeframe=today').then((d) => { team = d.team || []; }).catch(() => {});
  await load();
  return () => {
    off();
    clearTimeout(reloadTimer);
  };
}
