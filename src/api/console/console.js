// tributary's web console: reads the API every POLL_MS and draws the overview (#/) or one
// pipe (#/pipes/NAME). Everything shown comes from /v1 routes; everything done is a /v1
// command, confirmed first, whose answer or refusal is shown as the API gives it.
//
// Rules kept here: text from the API is only ever set as text (textContent, never HTML),
// so a table name or a reason cannot inject markup; the token lives in this tab's
// sessionStorage and leaves it only as the Authorization header of requests to this origin.
'use strict';

(() => {
  const TOKEN = 'tributary.token';
  const POLL_MS = 2000;
  const HOUR = 3600;
  const main = document.getElementById('main');
  // The page shown (the hash), the next refresh, and which refresh is the latest: only the
  // latest one schedules the next, so a command's own refresh never starts a second loop.
  let route = null;
  let timer = null;
  let generation = 0;

  // ---- small helpers -----------------------------------------------------------------------

  // h('div', {class: 'x', onclick: f}, child, ...): an element; strings become text nodes.
  function h(tag, attrs, ...children) {
    const el = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v === undefined || v === null || v === false) continue;
      if (k.startsWith('on')) el.addEventListener(k.slice(2), v);
      else if (k === 'class') el.className = v;
      else el.setAttribute(k, v === true ? '' : v);
    }
    for (const c of children.flat(Infinity)) {
      if (c === undefined || c === null || c === false) continue;
      el.append(typeof c === 'object' ? c : document.createTextNode(String(c)));
    }
    return el;
  }

  function svg(tag, attrs) {
    const el = document.createElementNS('http://www.w3.org/2000/svg', tag);
    for (const [k, v] of Object.entries(attrs || {})) el.setAttribute(k, v);
    return el;
  }

  function duration(secs) {
    if (secs === null || secs === undefined || !isFinite(secs)) return '–';
    if (secs < 1) return (secs * 1000).toFixed(0) + ' ms';
    if (secs < 60) return secs.toFixed(secs < 10 ? 1 : 0) + ' s';
    const m = Math.floor(secs / 60);
    if (m < 60) return m + ' min ' + Math.floor(secs % 60) + ' s';
    return Math.floor(m / 60) + ' h ' + (m % 60) + ' min';
  }

  function number(n, digits) {
    if (n === null || n === undefined) return '–';
    return n.toLocaleString('en-US', {maximumFractionDigits: digits || 0});
  }

  // A time as the API gives it (RFC 3339, or the state store's "YYYY-MM-DD hh:mm:ss.fff").
  function when(at) {
    if (!at) return '–';
    return at.replace('T', ' ').replace(/\.\d+/, '').replace(/Z$/, ' UTC');
  }

  function ago(at) {
    const t = Date.parse(at);
    return isNaN(t) ? '' : duration(Math.max(0, (Date.now() - t) / 1000)) + ' ago';
  }

  // An isolation reason is "`statement` at position: why" when a binlog statement caused it;
  // a position may carry its GTID: "binlog.000262:238172 (gtid 0-1-7420010)".
  function isolation(reason) {
    const m = /^`([\s\S]*?)` at (\S+(?: \(gtid [^)]*\))?): ([\s\S]*)$/.exec(reason);
    return m ? {statement: m[1], position: m[2], why: m[3]} : {statement: '', position: '', why: reason};
  }

  function isolated(pipe) {
    return Object.entries(pipe.tables).filter(([, t]) => t.error);
  }

  function badge(state) {
    const s = state || 'starting';
    return h('span', {class: 'state state-' + s.toLowerCase(), 'data-state': s}, s);
  }

  // ---- the API -----------------------------------------------------------------------------

  class Unauthorized extends Error {}

  async function api(method, path, body) {
    const headers = {Accept: 'application/json'};
    const token = sessionStorage.getItem(TOKEN);
    if (token) headers.Authorization = 'Bearer ' + token;
    if (method !== 'GET') headers['Content-Type'] = 'application/json';
    const reply = await fetch(path, {
      method, headers, cache: 'no-store',
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    let data = null;
    try { data = await reply.json(); } catch (_) { /* not JSON: shown by status */ }
    if (reply.status === 401) {
      login(data && data.error);
      throw new Unauthorized();
    }
    return {status: reply.status, ok: reply.ok, data};
  }

  const enc = encodeURIComponent;

  // ---- confirmation ------------------------------------------------------------------------

  const dialog = document.getElementById('confirm');
  document.getElementById('confirm-ok').addEventListener('click', () => dialog.close('ok'));
  document.getElementById('confirm-cancel').addEventListener('click', () => dialog.close('cancel'));

  // Asks `question`; with `option`, also offers a checkbox. Resolves {ok, option}; Escape
  // cancels.
  function confirmAction(question, button, option) {
    document.getElementById('confirm-text').textContent = question;
    document.getElementById('confirm-ok').textContent = button;
    const label = document.getElementById('confirm-option');
    const check = document.getElementById('confirm-check');
    label.hidden = !option;
    check.checked = false;
    if (option) label.querySelector('span').textContent = option;
    return new Promise((resolve) => {
      dialog.addEventListener('close', () => {
        resolve({ok: dialog.returnValue === 'ok', option: check.checked});
      }, {once: true});
      dialog.returnValue = '';
      dialog.showModal();
    });
  }

  // Confirms, sends, and shows the pipe's answer (or the API's refusal) in #answer.
  async function act(question, button, method, path, body, option) {
    const choice = await confirmAction(question, button, option);
    if (!choice.ok) return;
    const answer = document.getElementById('answer');
    answer.className = 'answer pending';
    answer.textContent = method + ' ' + path + ' …';
    let reply;
    try {
      reply = await api(method, typeof path === 'function' ? path(choice.option) : path, body);
    } catch (e) {
      if (e instanceof Unauthorized) return;
      answer.className = 'answer refused';
      answer.textContent = 'no answer: ' + e.message;
      return;
    }
    const d = reply.data || {};
    answer.className = 'answer ' + (reply.ok ? 'accepted' : 'refused');
    answer.dataset.status = reply.status;
    answer.textContent = reply.ok
      ? (d.command || '') + ': ' + (d.message || '')
      : 'refused (' + reply.status + '): ' + (d.error || 'no message');
    refresh();
  }

  // ---- pages -------------------------------------------------------------------------------

  // Newest samples by pipe (the overview's changes/s) and a pipe page's hour of samples.
  const newest = {};
  let series = {pipe: null, samples: []};

  async function samples(name, since) {
    const r = await api('GET', '/v1/pipes/' + enc(name) + '/samples?since=' + since);
    return r.ok ? r.data : {samples: [], loading: {}};
  }

  async function overview() {
    const r = await api('GET', '/v1/pipes');
    const pipes = r.data || [];
    for (const p of pipes) {
      const s = await samples(p.name, newest[p.name] ? newest[p.name].at : 0);
      if (s.samples.length) newest[p.name] = s.samples[s.samples.length - 1];
    }
    const attention = [];
    for (const p of pipes) {
      if (p.state === 'Failed') attention.push(h('li', {class: 'bad'}, h('a', {href: '#/pipes/' + enc(p.name)}, p.name), ' failed: ', p.last_error || ''));
      if (p.stalled) attention.push(h('li', {class: 'warn'}, h('a', {href: '#/pipes/' + enc(p.name)}, p.name), ' is stalled: ', p.stalled));
      for (const [table, t] of isolated(p)) {
        attention.push(h('li', {class: 'warn', 'data-isolated': table}, h('a', {href: '#/pipes/' + enc(p.name)}, p.name), ' ', h('code', {}, table), ' is isolated: ', isolation(t.error).why));
      }
    }
    const rows = pipes.map((p) => {
      const n = Object.keys(p.tables).length;
      const iso = isolated(p).length;
      const cls = p.state === 'Failed' ? 'bad' : (p.stalled || iso ? 'warn' : '');
      return h('tr', {class: cls, 'data-pipe': p.name},
        h('td', {}, h('a', {href: '#/pipes/' + enc(p.name)}, p.name)),
        h('td', {}, badge(p.state), p.stalled ? h('span', {class: 'state state-stalled'}, 'stalled') : null),
        h('td', {title: p.since}, ago(p.since)),
        h('td', {class: 'num'}, duration(p.lag_seconds)),
        h('td', {class: 'num'}, newest[p.name] ? number(newest[p.name].changes_per_second, 1) : '–'),
        h('td', {class: 'num tables'}, String(n), iso ? h('span', {class: 'isolated-count'}, ' (' + iso + ' isolated)') : null));
    });
    main.replaceChildren(
      h('h1', {}, 'Pipes'),
      attention.length ? h('ul', {class: 'attention'}, attention) : h('p', {class: 'ok'}, 'Nothing needs attention.'),
      h('table', {class: 'pipes'},
        h('thead', {}, h('tr', {}, ['pipe', 'state', 'since', 'lag', 'changes/s', 'tables'].map((c) => h('th', {}, c)))),
        h('tbody', {}, rows)));
  }

  // The pipe page's frame: built once per visit, so the add-table field and the last answer
  // survive the refreshes that redraw #pipe-live.
  function pipeFrame(name) {
    const path = '/v1/pipes/' + enc(name);
    const input = h('input', {id: 'add-table', placeholder: 'db.table', autocomplete: 'off'});
    const widen = h('input', {type: 'checkbox', id: 'widen'});
    main.replaceChildren(
      h('h1', {}, name, ' ', h('span', {id: 'pipe-state'})),
      h('div', {class: 'actions'},
        h('button', {id: 'pause', onclick: () => act('Pause pipe ' + name + '? Its committed changes are flushed first.', 'Pause', 'POST', path + '/pause')}, 'Pause'),
        h('button', {id: 'resume', onclick: () => act('Resume pipe ' + name + ' from its checkpoint?', 'Resume', 'POST', path + '/resume')}, 'Resume'),
        h('button', {id: 'resync', class: 'danger', onclick: () => act('Resync pipe ' + name + '? Every table is reloaded into a copy and swapped in.', 'Resync', 'POST', path + '/resync')}, 'Resync'),
        h('span', {class: 'add'}, input, h('label', {}, widen, ' outside the selection'),
          h('button', {id: 'add', onclick: () => {
            const table = input.value.trim();
            act('Add ' + table + ' to pipe ' + name + '? It is created, loaded, then replicated.', 'Add', 'POST', path + '/tables', {table, widen_selection: widen.checked});
          }}, 'Add table'))),
      h('p', {id: 'answer', class: 'answer', 'aria-live': 'polite'}),
      h('div', {id: 'pipe-live'}, h('p', {class: 'muted'}, 'Loading…')));
  }

  async function pipePage(name) {
    const r = await api('GET', '/v1/pipes/' + enc(name));
    if (!r.ok) {
      document.getElementById('pipe-live').replaceChildren(h('p', {class: 'bad'}, (r.data && r.data.error) || 'status ' + r.status));
      return;
    }
    const p = r.data;
    if (series.pipe !== name) series = {pipe: name, samples: []};
    const last = series.samples.length ? series.samples[series.samples.length - 1].at : 0;
    const s = await samples(name, last);
    const now = Date.now() / 1000;
    series.samples = series.samples.concat(s.samples).filter((x) => x.at > now - HOUR);
    const cps = series.samples.length ? series.samples[series.samples.length - 1].changes_per_second : null;
    document.getElementById('pipe-state').replaceChildren(badge(p.state), p.stalled ? h('span', {class: 'state state-stalled'}, 'stalled') : '');

    const facts = [
      ['since', when(p.since) + ' (' + ago(p.since) + ')'],
      ['mode', p.mode],
      ['lag', duration(p.lag_seconds)],
      ['changes/s', number(cps, 1)],
      ['changes applied', number(p.events_applied)],
      ['position', p.position || '–'],
    ];
    const problems = [];
    if (p.stalled) problems.push(h('p', {class: 'warn'}, 'Stalled: ', p.stalled));
    if (p.last_error) problems.push(h('p', {class: p.state === 'Failed' ? 'bad' : 'muted'}, 'Last error: ', p.last_error));

    const dpath = '/v1/pipes/' + enc(name) + '/tables/';
    const tables = Object.entries(p.tables).map(([table, t]) => {
      const eta = s.loading[table];
      const pct = t.done ? 100 : (t.rows_estimated ? Math.min(99, Math.floor(100 * t.rows_done / t.rows_estimated)) : null);
      const phase = t.error ? 'isolated' : (t.done ? 'loaded' : 'loading');
      return h('tr', {'data-table': table, class: t.error ? 'warn' : ''},
        h('td', {}, h('code', {}, table), t.outside_selection ? h('span', {class: 'muted'}, ' (outside selection)') : null),
        h('td', {}, h('span', {class: 'phase phase-' + phase}, phase)),
        // An isolated table that never loaded has no progress to show.
        h('td', {class: 'progress'}, t.error && !t.done && !t.rows_estimated ? '–' : [
          h('progress', {max: 100, value: pct === null ? 0 : pct}), ' ', pct === null ? '?' : pct + '%',
          h('span', {class: 'muted'}, ' ' + number(t.rows_done) + (t.done ? '' : ' / ' + (t.rows_estimated ? '~' + number(t.rows_estimated) : '?')) + ' rows')]),
        h('td', {class: 'num'}, t.done ? '' : (eta ? duration(eta.eta_seconds) + ' at ' + number(eta.rows_per_second) + ' rows/s' : '–')),
        h('td', {class: 'row-actions'},
          h('button', {class: 'resync-table', onclick: () => act('Reload ' + table + ' into a copy and swap it in?', 'Resync table', 'POST', dpath + enc(table) + '/resync')}, 'Resync'),
          h('button', {class: 'remove-table danger', onclick: () => act('Stop replicating ' + table + '?', 'Remove', 'DELETE', (drop) => dpath + enc(table) + (drop ? '?drop=true' : ''), undefined, 'also drop its target table')}, 'Remove')));
    });
    const iso = isolated(p).map(([table, t]) => {
      const i = isolation(t.error);
      return h('tr', {'data-isolated': table},
        h('td', {}, h('code', {}, table)),
        h('td', {}, i.statement ? h('code', {}, i.statement) : '–'),
        h('td', {}, i.position || '–'),
        h('td', {class: 'reason'}, i.why));
    });
    const history = (p.history || []).map((t) => h('tr', {},
      h('td', {}, when(t.at)), h('td', {}, t.from_state || '–', ' → ', badge(t.to_state)), h('td', {class: 'reason'}, t.reason)));

    const pts = (key) => series.samples.map((x) => [x.at, x[key]]);
    document.getElementById('pipe-live').replaceChildren(...[
      h('dl', {class: 'facts'}, facts.map(([k, v]) => h('div', {}, h('dt', {}, k), h('dd', {}, v)))),
      problems,
      h('div', {class: 'charts'},
        chart('Lag', 's', pts('lag_seconds'), now),
        chart('Changes per second', '/s', pts('changes_per_second'), now)),
      h('h2', {}, 'Tables'),
      h('table', {class: 'tables'},
        h('thead', {}, h('tr', {}, ['table', 'phase', 'snapshot', 'ETA', ''].map((c) => h('th', {}, c)))),
        h('tbody', {}, tables)),
      iso.length ? [h('h2', {}, 'Isolated tables'),
        h('table', {class: 'isolated'},
          h('thead', {}, h('tr', {}, ['table', 'statement', 'position', 'reason'].map((c) => h('th', {}, c)))),
          h('tbody', {}, iso))] : null,
      h('h2', {}, 'History'),
      h('table', {class: 'history'},
        h('thead', {}, h('tr', {}, ['at', 'transition', 'reason'].map((c) => h('th', {}, c)))),
        h('tbody', {}, history)),
    ].flat(Infinity).filter(Boolean));
  }

  // A line chart of `points` ([unix seconds, value or null], oldest first) up to `now`, over
  // the hour or, when the samples are younger (the daemon started since), over their span.
  function chart(title, unit, points, now) {
    const W = 600, H = 150, L = 44, B = 18, T = 8;
    const values = points.filter(([, v]) => v !== null && v !== undefined);
    const max = Math.max(1, ...values.map(([, v]) => v)) * 1.1;
    const span = Math.min(HOUR, Math.max(60, points.length ? now - points[0][0] : HOUR));
    const x = (t) => L + (W - L) * (t - (now - span)) / span;
    const y = (v) => T + (H - T - B) * (1 - v / max);
    const g = svg('svg', {viewBox: '0 0 ' + W + ' ' + H, class: 'chart', role: 'img', 'aria-label': title});
    g.append(svg('line', {x1: L, y1: y(0), x2: W, y2: y(0), class: 'axis'}));
    for (const [v, label] of [[max / 1.1, number(max / 1.1, 1) + ' ' + unit], [0, '0']]) {
      const t = svg('text', {x: L - 4, y: y(v) + 4, 'text-anchor': 'end', class: 'tick'});
      t.textContent = label;
      g.append(t, svg('line', {x1: L, y1: y(v), x2: W, y2: y(v), class: 'grid'}));
    }
    for (const before of [span, span / 2, 0]) {
      const t = svg('text', {x: x(now - before), y: H - 4, 'text-anchor': before === span ? 'start' : (before ? 'middle' : 'end'), class: 'tick'});
      t.textContent = before ? '−' + (before >= 120 ? Math.round(before / 60) + ' min' : duration(before)) : 'now';
      g.append(t);
    }
    // One line per run of known values: a gap (not replicating) stays a gap.
    let run = [];
    const flush = () => {
      if (run.length > 1) g.append(svg('polyline', {points: run.join(' '), class: 'line'}));
      else if (run.length === 1) g.append(svg('circle', {cx: run[0].split(',')[0], cy: run[0].split(',')[1], r: 1.5, class: 'dot'}));
      run = [];
    };
    for (const [t, v] of points) {
      if (v === null || v === undefined) flush();
      else run.push(x(t).toFixed(1) + ',' + y(v).toFixed(1));
    }
    flush();
    const latest = values.length ? values[values.length - 1][1] : null;
    return h('figure', {class: 'chart-box'},
      h('figcaption', {}, title, h('span', {class: 'muted'}, ' now ' + (latest === null ? '–' : number(latest, 2) + ' ' + unit))), g);
  }

  // ---- the token ---------------------------------------------------------------------------

  function login(why) {
    stop();
    const input = h('input', {type: 'password', id: 'token', autocomplete: 'current-password', placeholder: 'api token'});
    const go = () => {
      sessionStorage.setItem(TOKEN, input.value.trim());
      route = null;
      refresh();
    };
    input.addEventListener('keydown', (e) => { if (e.key === 'Enter') go(); });
    main.replaceChildren(h('section', {class: 'login'},
      h('h1', {}, 'API token'),
      h('p', {}, 'This daemon\'s API needs its token (api.token or api.token_file). It stays in this browser tab only and is sent to this daemon alone, as a bearer token.'),
      why && sessionStorage.getItem(TOKEN) ? h('p', {class: 'bad'}, why) : null,
      input, ' ', h('button', {id: 'login', onclick: go}, 'Open the console')));
    input.focus();
  }

  document.getElementById('forget').addEventListener('click', () => {
    sessionStorage.removeItem(TOKEN);
    login();
  });

  // ---- refresh loop ------------------------------------------------------------------------

  // Cancels the next refresh, and the one an answer in flight would schedule.
  function stop() {
    clearTimeout(timer);
    timer = null;
    generation++;
  }

  async function refresh() {
    stop();
    const mine = generation;
    const current = location.hash.replace(/^#/, '') || '/';
    const m = /^\/pipes\/(.+)$/.exec(current);
    if (current !== route) {
      route = current;
      document.getElementById('crumbs').replaceChildren(m ? h('span', {}, '/ ', decodeURIComponent(m[1])) : '');
      if (m) pipeFrame(decodeURIComponent(m[1]));
    }
    try {
      if (m) await pipePage(decodeURIComponent(m[1]));
      else await overview();
      document.getElementById('forget').hidden = !sessionStorage.getItem(TOKEN);
      document.getElementById('refreshed').textContent = 'updated ' + new Date().toLocaleTimeString();
      document.getElementById('refreshed').className = 'muted';
    } catch (e) {
      if (e instanceof Unauthorized) return;
      document.getElementById('refreshed').textContent = 'cannot reach the daemon: ' + e.message;
      document.getElementById('refreshed').className = 'bad';
    }
    if (mine === generation) timer = setTimeout(refresh, POLL_MS);
  }

  window.addEventListener('hashchange', () => refresh());
  refresh();
})();
