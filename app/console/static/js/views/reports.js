// The manager's performance and SLA views as charts: SLA compliance per workflow type and day,
// workflows per type, agents' success, and the SLA picture now.
import { get, query } from '../api.js';
import { barChart, lineChart } from '../charts.js';
import { h, replace, label, select, field } from '../dom.js';

const KINDS = { MUNI_LIEN_SEARCH: 'a', HOA_ACQUISITION: 'b', PAYOFF_REQUEST: 'c' };

function pct(rate) {
  return rate === null || rate === undefined ? '—' : `${Math.round(rate * 1000) / 10}%`;
}

export async function reportsView(main) {
  const timeframe = select('timeframe', [['week', 'Last 7 days'], ['month', 'Last 30 days'], ['today', 'Last 24 hours']], 'week');
  const body = h('div');
  replace(main, h('h1', {}, 'Performance and SLA'), field('Timeframe', timeframe), body);
  timeframe.addEventListener('change', load);

  async function load() {
    const [perf, sla] = await Promise.all([
      get(`/api/views/performance${query({ timeframe: timeframe.value })}`),
      get('/api/views/sla?limit=20'),
    ]);
    const types = perf.workflowTypes || [];
    const s = sla.summary || {};
    replace(body,
      h('section', { class: 'cards', 'aria-label': 'SLA now' },
        [['Active clocks', s.active], ['On time', s.onTime], ['At risk', s.atRisk], ['Breached', s.breached],
          ['Compliance', pct(s.complianceRate)]].map(([c, v]) => h('div', { class: 'card' },
          h('span', { class: 'value' }, String(v ?? '—')), h('span', { class: 'caption' }, c)))),
      h('section', {}, h('h2', {}, 'SLA compliance per type and day'),
        h('div', { class: 'legend' }, types.map((t) => h('span', { class: `key line-${KINDS[t.workflowType]}` }, label(t.workflowType)))),
        lineChart(types.map((t) => ({ name: label(t.workflowType), kind: KINDS[t.workflowType],
          points: (t.daily || []).map((d) => ({ x: d.date, y: d.complianceRate })) })), { title: 'SLA compliance per type and day' })),
      h('section', {}, h('h2', {}, 'Workflows per type'),
        barChart(types.map((t) => ({ label: label(t.workflowType), segments: [
          { value: t.completed || 0, kind: 'on-time', caption: 'completed' },
          { value: t.failed || 0, kind: 'breached', caption: 'failed' },
          { value: (t.total || 0) - (t.completed || 0) - (t.failed || 0), kind: 'open', caption: 'open' },
        ] })), { title: 'Workflows per type' }),
        h('div', { class: 'table-wrap' }, h('table', {}, h('thead', {}, h('tr', {}, ['Type', 'Created', 'Completed', 'Failed', 'Avg minutes', 'SLA compliance'].map((c) => h('th', { scope: 'col' }, c)))),
          h('tbody', {}, types.map((t) => h('tr', {}, h('td', {}, label(t.workflowType)), h('td', {}, String(t.total)),
            h('td', {}, String(t.completed)), h('td', {}, String(t.failed)), h('td', {}, String(t.avgCompletionMinutes ?? '—')),
            h('td', {}, pct(t.slaComplianceRate)))))))),
      h('section', {}, h('h2', {}, 'Agents'),
        barChart((perf.agents || []).map((a) => {
          const succeeded = a.successRate === null || a.successRate === undefined ? 0 : Math.round(a.tasks * a.successRate);
          return { label: a.displayName || a.agentName, segments: [
            { value: succeeded, kind: 'on-time', caption: 'succeeded' },
            { value: (a.tasks || 0) - succeeded, kind: 'breached', caption: 'not succeeded' },
          ] };
        }), { title: 'Agent executions' })));
    main.dataset.loadedAt = String(Date.now());
  }
  await load();
}
