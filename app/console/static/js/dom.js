// Building the page: every value goes in as text (textContent, attributes), never as HTML, so a
// title like <img src=x onerror=alert(1)> shows as those characters.

export function h(tag, props = {}, ...children) {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(props || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (key.startsWith('on') && typeof value === 'function') {
      el.addEventListener(key.slice(2).toLowerCase(), value);
    } else if (key === 'class') {
      el.className = value;
    } else if (key === 'dataset') {
      Object.assign(el.dataset, value);
    } else if (key === 'value') {
      el.value = value;
    } else if (key === 'checked' || key === 'disabled' || key === 'hidden' || key === 'selected') {
      el[key] = Boolean(value);
    } else {
      el.setAttribute(key, value === true ? '' : String(value));
    }
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const child of children.flat(Infinity)) {
    if (child === null || child === undefined || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
}

export function replace(el, ...children) {
  el.replaceChildren();
  append(el, children);
  return el;
}

export function text(value) {
  return value === null || value === undefined || value === '' ? '—' : String(value);
}

// Times in the viewer's own time zone.
const dateTime = new Intl.DateTimeFormat(undefined, {
  month: 'short', day: 'numeric', hour: '2-digit', minute: '2-digit', timeZoneName: 'short',
});

export function when(iso) {
  if (!iso) return '—';
  const date = new Date(iso);
  return Number.isNaN(date.getTime()) ? String(iso) : dateTime.format(date);
}

export function timeZone() {
  return Intl.DateTimeFormat().resolvedOptions().timeZone;
}

// Business minutes left, as an operator reads them: "3 h 20 min" or "overdue by 45 min".
export function businessLeft(minutes) {
  if (minutes === null || minutes === undefined) return '—';
  const sign = minutes < 0 ? 'overdue by ' : '';
  const m = Math.abs(Math.round(minutes));
  const days = Math.floor(m / (60 * 8));
  const hours = Math.floor((m % (60 * 8)) / 60);
  const rest = m % 60;
  const parts = [];
  if (days) parts.push(`${days} d`);
  if (hours) parts.push(`${hours} h`);
  if (rest || parts.length === 0) parts.push(`${rest} min`);
  return `${sign}${parts.join(' ')}${minutes < 0 ? '' : ' left'} (business)`;
}

export function label(value) {
  return String(value ?? '').replaceAll('_', ' ').toLowerCase();
}

export function badge(kind, value) {
  return h('span', { class: `badge ${kind}-${String(value || 'none').toLowerCase()}` }, label(value) || '—');
}

export function progressBar(percentage, caption) {
  const value = Math.max(0, Math.min(100, Number(percentage) || 0));
  return h('span', { class: 'progress' },
    h('progress', { max: 100, value, 'aria-label': caption || 'progress' }), h('span', { class: 'pct' }, `${value}%`));
}

export function field(labelText, control, hint) {
  const id = control.id || `f-${Math.random().toString(36).slice(2, 9)}`;
  control.id = id;
  return h('div', { class: 'field' }, h('label', { for: id }, labelText), control,
    hint ? h('small', { class: 'hint' }, hint) : null,
    h('small', { class: 'field-error', id: `${id}-error`, role: 'alert' }));
}

export function select(name, options, current) {
  return h('select', { name }, options.map(([value, caption]) =>
    h('option', { value, selected: String(value) === String(current ?? '') }, caption)));
}

export function shortId(id) {
  return id ? String(id).slice(0, 8) : '—';
}
