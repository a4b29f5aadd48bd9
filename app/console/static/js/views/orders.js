// What a client user sees: their own orders (RLS decides which), a new order form built from the
// API's own schema (the OpenAPI document: WorkflowCreate and the payload schema of each type),
// and each order's status, progress, expected completion, client-visible messages (and sending
// one) and deliverable documents. Nothing here asks for HIL notes, costs or audit.
import { get, post, query, fieldErrors } from '../api.js';
import { live } from '../live.js';
import { h, replace, when, badge, label, progressBar, field, select, shortId, timeZone } from '../dom.js';

// How an order's state reads to the client: a workflow a person is looking after is still in
// progress to them.
const CLIENT_STATUS = { BLOCKED: 'IN_PROGRESS', AWAITING_REVIEW: 'IN_PROGRESS' };

function orderStatus(status) {
  return badge('status', CLIENT_STATUS[status] || status);
}

let openapi = null;

async function spec() {
  openapi ||= await get('/api/openapi.json');
  return openapi;
}

function resolve(document, ref) {
  return ref.replace(/^#\//, '').split('/').reduce((node, key) => node?.[key], document);
}

export async function ordersView(main) {
  const body = h('tbody');
  const status = h('p', { class: 'status-line', role: 'status', 'aria-live': 'polite' });
  let reloadTimer = null;
  replace(main, h('div', { class: 'view-head' }, h('h1', {}, 'Your orders'), h('a', { class: 'button', href: '#/orders/new' }, 'New order'),
    h('small', {}, `Times in ${timeZone()}.`)), status,
  h('div', { class: 'table-wrap' }, h('table', { class: 'orders', id: 'orders' },
    h('thead', {}, h('tr', {}, ['Order', 'Type', 'Status', 'Progress', 'Expected', 'Placed'].map((c) => h('th', { scope: 'col' }, c)))),
    body)));

  function row(w) {
    return h('tr', { dataset: { workflowId: w.id } },
      h('td', {}, h('a', { href: `#/orders/${w.id}` }, w.title || label(w.type))),
      h('td', {}, label(w.type)),
      h('td', { class: 'wf-status' }, orderStatus(w.status)),
      h('td', { class: 'wf-progress' }, progressBar(w.progress?.progressPercentage, `progress of ${w.title || w.id}`)),
      h('td', {}, when(w.dueDate)),
      h('td', {}, when(w.createdAt)));
  }

  async function load() {
    try {
      const data = await get('/api/workflows?limit=100');
      const rows = (data.workflows || []).map(row);
      replace(body, rows.length ? rows : h('tr', {}, h('td', { colspan: 6, class: 'empty' }, 'No orders yet.')));
      main.dataset.loadedAt = String(Date.now());
    } catch (error) {
      status.textContent = error.message;
    }
  }

  const off = live.on((message) => {
    if (message.type === 'reload') return load();
    if (message.type !== 'workflow_status_changed') return;
    const tr = body.querySelector(`tr[data-workflow-id="${CSS.escape(message.workflowId)}"]`);
    if (tr) {
      replace(tr.querySelector('.wf-status'), orderStatus(message.status));
      replace(tr.querySelector('.wf-progress'), progressBar(message.metadata?.progressPercentage, 'progress'));
      tr.dataset.eventId = String(message.id);
    }
    clearTimeout(reloadTimer);
    reloadTimer = setTimeout(load, 250);
  });
  live.only(['workflows']);
  await load();
  return () => { off(); clearTimeout(reloadTimer); };
}

// One input for a property of the schema.
function control(name, prop, required) {
  if (prop.type === 'array' && prop.items?.enum) {
    const box = h('fieldset', { class: 'choices', dataset: { name, kind: 'array' } },
      h('legend', {}, `${label(name)}${required ? ' (required)' : ''}`),
      prop.items.enum.map((value) => h('label', {}, h('input', { type: 'checkbox', value }), ` ${label(value)}`)),
      h('small', { class: 'field-error', role: 'alert' }));
    return box;
  }
  let input;
  if (prop.enum) {
    input = select(name, [['', required ? 'Choose…' : '—'], ...prop.enum.map((v) => [v, label(v)])], prop.default);
  } else if (prop.type === 'boolean') {
    input = h('input', { type: 'checkbox', name });
  } else if (prop.type === 'number' || prop.type === 'integer') {
    input = h('input', { type: 'number', name, step: prop.type === 'integer' ? '1' : '0.01', min: prop.minimum, max: prop.maximum });
  } else if (prop.format === 'date') {
    input = h('input', { type: 'date', name });
  } else {
    input = h('input', { type: 'text', name, maxlength: prop.maxLength });
  }
  input.dataset.name = name;
  input.dataset.kind = prop.type === 'boolean' ? 'boolean' : (prop.type === 'number' || prop.type === 'integer') ? 'number' : 'text';
  if (required) input.required = true;
  return field(`${label(name)}${required ? ' (required)' : ''}`, input);
}

function readControls(container) {
  const out = {};
  for (const el of container.querySelectorAll('[data-name]')) {
    const name = el.dataset.name;
    if (el.dataset.kind === 'array') {
      const chosen = [...el.querySelectorAll('input:checked')].map((i) => i.value);
      if (chosen.length) out[name] = chosen;
    } else if (el.dataset.kind === 'boolean') {
      if (el.checked) out[name] = true;
    } else if (el.value !== '') {
      out[name] = el.dataset.kind === 'number' ? Number(el.value) : el.value;
    }
  }
  return out;
}

export async function newOrderView(main) {
  const document_ = await spec();
  const create = document_.components.schemas.WorkflowCreate;
  const refs = create.properties.payload['x-payload-schemas'] || {};
  const types = create.properties.type.enum;
  const typeSelect = select('type', types.map((t) => [t, label(t)]), types.at(-1));
  const title = h('input', { type: 'text', name: 'title', maxlength: create.properties.title?.maxLength });
  const priority = select('priority', create.properties.priority.enum.map((p) => [p, label(p)]), create.properties.priority.default);
  const payloadBox = h('div', { class: 'payload' });
  const error = h('p', { class: 'error', role: 'alert' });

  function renderPayload() {
    const schema = resolve(document_, refs[typeSelect.value]);
    const required = new Set(schema.required || []);
    replace(payloadBox, Object.entries(schema.properties).map(([name, prop]) => control(name, prop, required.has(name))));
  }
  typeSelect.addEventListener('change', renderPayload);
  renderPayload();

  const form = h('form', {
    class: 'order-form', 'aria-label': 'New order', novalidate: true,
    onsubmit: async (event) => {
      event.preventDefault();
      error.textContent = '';
      for (const el of form.querySelectorAll('.field-error')) el.textContent = '';
      const body = { type: typeSelect.value, priority: priority.value, payload: readControls(payloadBox) };
      if (title.value.trim()) body.title = title.value.trim();
      try {
        const created = await post('/api/workflows', body);
        location.hash = `#/orders/${created.id}`;
      } catch (e) {
        // The API's own messages, next to the field they are about.
        const lines = fieldErrors(e.details);
        error.textContent = e.message;
        for (const [path, message] of lines) {
          const name = path.replace(/^json\./, '').replace(/^payload\./, '');
          const target = form.querySelector(`[data-name="${CSS.escape(name)}"]`);
          const slot = target?.closest('.field, fieldset')?.querySelector('.field-error');
          if (slot) slot.textContent = message;
          else error.append(h('span', { class: 'line' }, `${name}: ${message}`));
        }
      }
    },
  },
  field('Type of order', typeSelect), field('Title (optional)', title), field('Priority', priority),
  h('h2', {}, 'Details'), payloadBox, error, h('button', { type: 'submit' }, 'Place order'));
  replace(main, h('h1', {}, 'New order'), form);
  typeSelect.focus();
}

export async function orderView(main, workflowId) {
  let reloadTimer = null;
  const head = h('section', { class: 'wf-head' });
  const messages = h('div');
  const docs = h('div');
  const status = h('p', { class: 'status-line', role: 'status', 'aria-live': 'polite' });
  const text = h('textarea', { name: 'message', rows: 3, required: true });
  const sendError = h('p', { class: 'error', role: 'alert' });
  const send = h('form', {
    'aria-label': 'Send a message about this order',
    onsubmit: async (event) => {
      event.preventDefault();
      sendError.textContent = '';
      try {
        await post('/webhooks/inbound/client-message', { workflowId, message: text.value });
        text.value = '';
        status.textContent = 'Message sent.';
        load();
      } catch (e) {
        sendError.textContent = [e.message, ...fieldErrors(e.details).map(([n, m]) => `${n}: ${m}`)].join(' — ');
      }
    },
  }, field('Your message', text), sendError, h('button', { type: 'submit' }, 'Send'));

  replace(main, h('p', {}, h('a', { href: '#/orders' }, '← Orders')), head, status,
    h('div', { class: 'columns' },
      h('section', {}, h('h2', {}, 'Messages'), messages, send),
      h('section', {}, h('h2', {}, 'Documents'), docs)));

  async function load() {
    try {
      const [w, c] = await Promise.all([
        get(`/api/workflows/${workflowId}?include=documents`),
        get(`/api/communications${query({ workflowId, isClientVisible: true, limit: 100 })}`),
      ]);
      const p = w.progress || {};
      replace(head, h('h1', {}, w.title || label(w.type)),
        h('dl', { class: 'facts' },
          h('dt', {}, 'Type'), h('dd', {}, label(w.type)),
          h('dt', {}, 'Status'), h('dd', { id: 'order-status' }, orderStatus(w.status)),
          h('dt', {}, 'Progress'), h('dd', { id: 'order-progress' }, progressBar(p.progressPercentage, 'order progress'),
            ` ${p.completedTasks ?? 0} of ${p.totalTasks ?? 0} steps`),
          h('dt', {}, 'Expected completion'), h('dd', {}, when(w.dueDate)),
          h('dt', {}, 'Placed'), h('dd', {}, when(w.createdAt)),
          h('dt', {}, 'Reference'), h('dd', {}, h('code', {}, shortId(w.id)))));
      const list = (c.communications || []).filter((m) => m.isClientVisible);
      replace(messages, list.length ? h('ul', { class: 'comms' }, list.map((m) => h('li', { class: 'client-visible' },
        h('strong', {}, m.direction === 'INBOUND' ? 'You' : 'Rexera'), ' ', h('small', {}, when(m.sentAt || m.createdAt)),
        m.subject ? h('div', {}, m.subject) : null, h('p', { class: 'body' }, m.body || '')))) : h('p', { class: 'empty' }, 'No messages yet.'));
      const documents = w.documents || [];
      replace(docs, documents.length ? h('ul', {}, documents.map((d) => h('li', {}, h('strong', {}, d.filename), ' ',
        badge('status', d.status), ' ', h('small', {}, label(d.documentType))))) : h('p', { class: 'empty' }, 'No documents delivered yet.'));
      main.dataset.loadedAt = String(Date.now());
    } catch (error) {
      if (error.status === 404) replace(main, h('h1', {}, 'Order not found'), h('p', {}, error.message));
      else status.textContent = error.message;
    }
  }

  const off = live.on((message) => {
    if (message.type === 'reload') return load();
    if (message.workflowId !== workflowId) return;
    if (message.type === 'workflow_status_changed') {
      const m = message.metadata || {};
      const s = head.querySelector('#order-status');
      const pr = head.querySelector('#order-progress');
      if (s) replace(s, orderStatus(message.status));
      if (pr) replace(pr, progressBar(m.progressPercentage, 'order progress'), ` ${m.completedTasks ?? 0} of ${m.totalTasks ?? 0} steps`);
      head.dataset.eventId = String(message.id);
    }
    clearTimeout(reloadTimer);
    reloadTimer = setTimeout(load, 250);
  });
  live.only([`workflow:${workflowId}`]);
  await load();
  return () => { off(); clearTimeout(reloadTimer); };
}
