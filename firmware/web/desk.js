// hallq guide desk (/desk, role desk, supervisor or admin): the member of staff at the
// hall's entrance issues a ticket for a citizen — normal, green channel with its reason,
// or by proxy (代办) — sees whether it printed, reprints it, finds today's appointments
// by code or mobile number and checks them in, watches every queue and its wait, and
// answers the kiosks' help requests. Everything works from the keyboard: digits pick a
// service (or, right after G, the green channel's reason), G green, P proxy, / the
// appointment lookup, Enter confirms, Esc cancels, R reprints. The picture is re-read
// from /api/v1/desk after every event on the live stream.
'use strict';

(() => {
  const { t, el, api, errorText } = HQ;
  HQ.useToken('hallq.token.desk');
  const $ = (id) => document.getElementById(id);

  let data = null;          // /api/v1/desk
  let stream = null;
  // What is being prepared for the citizen in front of the desk.
  const draft = { green: false, proxy: false, reason: null, service: null };
  let last = null;          // the last issue or check-in answer

  function say(text, kind) {
    const m = $('message');
    m.textContent = text || '';
    m.className = 'message ' + (kind || 'info');
    m.dataset.kind = kind || 'info';
  }

  function serviceOf(code) { return data && data.services.find((s) => s.code === code); }
  function reasonOf(code) { return data && data.green_reasons.find((r) => r.code === code); }
  function reasonLabel(recorded) {
    if (!recorded) return '';
    const [code, ...note] = recorded.split(':');
    const r = reasonOf(code);
    return (r ? HQ.name(r.name) : code) + (note.length ? '：' + note.join(':') : '');
  }

  function showLogin(message) {
    HQ.setToken(null);
    $('work').hidden = true;
    $('login').hidden = false;
    $('sign-out').hidden = true;
    $('who').textContent = '';
    $('login-message').textContent = message || '';
    $('login-staff').focus();
  }

  async function signIn(ev) {
    ev.preventDefault();
    $('login-message').textContent = '';
    $('login-submit').disabled = true;
    try {
      const r = await api('POST', '/api/v1/sessions', { staff_id: $('login-staff').value.trim(), pin: $('login-pin').value });
      HQ.setToken(r.token);
      $('login-pin').value = '';
      await start();
    } catch (e) {
      $('login-pin').value = '';
      // Window staff have no desk: the controller says "wrong window", we say why.
      $('login-message').textContent = e.code === 'wrong_window' ? t('err_forbidden') : errorText(e);
      $('login-message').dataset.code = e.code || '';
    } finally {
      $('login-submit').disabled = false;
    }
  }

  async function start() {
    await refresh();
    if (!data) return;
    $('login').hidden = true;
    $('work').hidden = false;
    $('sign-out').hidden = false;
    if (!stream) {
      stream = new HQ.Stream(() => refreshSoon(), onLive);
      stream.start();
      setInterval(refresh, 15000);
    }
    document.body.dataset.ready = 'true';
  }

  async function refresh() {
    if (!HQ.token()) return;
    try {
      data = await api('GET', '/api/v1/desk');
      HQ.syncClock(data.now);
      render();
    } catch (e) {
      if (e.status === 401) showLogin(t('err_sign_in_required'));
      else if (e.status === 403) showLogin(t('err_forbidden'));
      else say(errorText(e), 'error');
    }
  }
  const refreshSoon = HQ.debounce(refresh, 300);

  // ----- rendering -----------------------------------------------------------------
  function render() {
    if (!data) return;
    $('hall').textContent = '· ' + data.hall;
    $('who').textContent = t('signed_in_as', { name: data.staff.name || '', id: data.staff.id });
    renderDraft();
    renderQueue();
    renderHelp();
    renderResult();
  }

  function minutes(n) { return t('minutes', { n }); }

  // Fills a list of buttons keyed by `code`, updating the buttons in place: a refresh
  // (after every event in the hall) never replaces the button under the staff member's
  // pointer or keyboard focus, so no click or focus is lost to it. The list is rebuilt
  // only when its codes change.
  function keyed(container, attr, items, make, update) {
    const have = Array.from(container.children, (c) => c.getAttribute(attr));
    if (have.length !== items.length || items.some((it, i) => it.code !== have[i])) {
      container.replaceChildren(...items.map(make));
    }
    Array.from(container.children).forEach((node, i) => update(node, items[i]));
  }

  function renderDraft() {
    $('mode-green').setAttribute('aria-pressed', String(draft.green));
    $('mode-proxy').setAttribute('aria-pressed', String(draft.proxy));
    document.body.dataset.green = String(draft.green);
    document.body.dataset.picking = String(picking());
    $('reasons-box').hidden = !draft.green;
    keyed($('reasons'), 'data-reason', data.green_reasons, (r, i) => {
      const b = el('button', { type: 'button', class: 'reason', role: 'radio', 'data-reason': r.code },
        el('kbd', {}, String(i + 1)), el('span', { class: 'reason-name' }));
      b.addEventListener('click', () => pickReason(r.code));
      return b;
    }, (b, r) => {
      b.setAttribute('aria-checked', String(draft.reason === r.code));
      b.querySelector('.reason-name').textContent = HQ.name(r.name);
    });
    $('note-box').hidden = draft.reason !== 'other';
    keyed($('services'), 'data-service', data.services, (s, i) => {
      const b = el('button', { type: 'button', class: 'big service', 'data-service': s.code },
        i < 9 ? el('kbd', {}, String(i + 1)) : null,
        el('span', { class: 'svc-name' }),
        el('span', { class: 'svc-meta' }));
      b.addEventListener('click', () => pickService(s.code));
      return b;
    }, (b, s) => {
      b.setAttribute('aria-pressed', String(draft.service === s.code));
      b.setAttribute('aria-label', HQ.name(s.name) + ' · ' + t('waiting_people', { n: s.waiting }));
      b.querySelector('.svc-name').textContent = HQ.name(s.name);
      b.querySelector('.svc-meta').textContent =
        s.prefix + ' · ' + t('waiting_people', { n: s.waiting }) + ' · ' + minutes(s.estimated_wait_minutes);
    });
    const s = draft.service && serviceOf(draft.service);
    $('pending').hidden = !s;
    if (s) {
      const kind = [draft.green ? t('green_channel') + (draft.reason ? '（' + reasonLabel(draft.reason) + '）' : '') : t('desk_normal')];
      if (draft.proxy) kind.push(t('desk_proxy'));
      $('pending-text').textContent = HQ.name(s.name) + ' · ' + kind.join(' · ');
    }
  }

  function renderQueue() {
    $('queue').replaceChildren(...data.services.map((s) => el('tr', { 'data-service': s.code },
      el('td', {}, HQ.name(s.name), ' ', el('small', {}, s.prefix)),
      el('td', { class: 'num waiting' }, s.waiting),
      el('td', { class: 'num' }, s.waiting ? minutes(s.estimated_wait_minutes) : '—'),
      el('td', { class: 'num' }, s.waiting ? HQ.duration(s.longest_wait_secs) : '—'),
      el('td', { class: 'num' }, s.open_windows))));
  }

  function renderHelp() {
    const help = data.help || [];
    $('help-count').textContent = help.length ? '(' + help.length + ')' : '';
    $('help').replaceChildren(...(help.length
      ? help.map((h) => {
        const ack = el('button', { type: 'button', class: 'big primary ack', 'data-kiosk': h.kiosk }, t('help_ack'));
        ack.addEventListener('click', () => acknowledge(h.kiosk, ack));
        return el('li', { class: 'open', 'data-kiosk': h.kiosk },
          el('span', { class: 'when' }, HQ.clockText(h.at)),
          el('span', {}, t('help_line', { kiosk: h.kiosk, screen: t('scr_' + h.screen), t: HQ.duration((HQ.now() - h.at) / 1000) })), ack);
      })
      : [el('li', { class: 'none' }, t('help_none'))]));
  }

  function printText(p, message) {
    if (!p) return '';
    if (p.state === 'printing') return t('desk_printed');
    if (p.state === 'queued') return t('desk_print_queued');
    if (p.state === 'unavailable') return t('desk_not_printed') + (message ? ' · ' + message : ' · ' + p.code);
    return t('desk_not_printed') + ' · ' + t('desk_no_printer');
  }

  function renderResult() {
    const box = $('result-print');
    if (!last) {
      $('result-number').textContent = '—';
      $('result-tags').replaceChildren();
      $('result-detail').textContent = '';
      box.textContent = '';
      $('reprint').hidden = true;
      return;
    }
    const tk = last.ticket;
    $('result-number').textContent = tk.number;
    const tags = [];
    if (tk.class === 'green') tags.push(el('span', { class: 'tag green', 'data-tag': 'green' }, t('green_channel') + (tk.green_reason ? ' · ' + reasonLabel(tk.green_reason) : '')));
    if (tk.class === 'appointment') tags.push(el('span', { class: 'tag', 'data-tag': 'appointment' }, t('scr_checkin') + ' ' + (tk.appointment || '')));
    if (tk.proxy) tags.push(el('span', { class: 'tag proxy', 'data-tag': 'proxy' }, t('desk_proxy')));
    $('result-tags').replaceChildren(...tags);
    $('result-detail').textContent = HQ.name(tk.service_name) + ' · ' + t('ahead', { n: tk.ahead }) + ' · ' + minutes(tk.estimated_wait_minutes);
    box.textContent = printText(last.print, last.print_message);
    const printed = last.print && (last.print.state === 'printing' || last.print.state === 'queued');
    box.dataset.state = last.print ? last.print.state : '';
    box.className = 'result-print ' + (printed ? 'ok' : 'bad');
    $('reprint').hidden = !data || !data.printer;
  }

  // ----- the draft: green, proxy, reason, service -----------------------------------
  /** Right after G, the digits pick the reason rather than a service. */
  function picking() { return draft.green && !draft.reason; }

  function toggleGreen() {
    draft.green = !draft.green;
    if (!draft.green) draft.reason = null;
    say('');
    renderDraft();
    if (draft.green) {
      const first = document.querySelector('#reasons .reason');
      if (first) first.focus();
    }
  }

  function toggleProxy() {
    draft.proxy = !draft.proxy;
    renderDraft();
  }

  function pickReason(code) {
    draft.reason = code;
    say('');
    renderDraft();
    if (code === 'other') $('note').focus();
    else if (draft.service) $('confirm').focus();
  }

  function pickService(code) {
    draft.service = code;
    say('');
    renderDraft();
    $('confirm').focus();
  }

  function reset() {
    draft.green = false;
    draft.proxy = false;
    draft.reason = null;
    draft.service = null;
    $('note').value = '';
    renderDraft();
  }

  function cancel() {
    if (draft.service) draft.service = null;
    else if (draft.reason) draft.reason = null;
    else if (draft.green || draft.proxy) { draft.green = false; draft.proxy = false; }
    say('');
    renderDraft();
  }

  let issuing = false;
  async function confirmIssue() {
    if (!draft.service) { say(t('desk_pick_service'), 'error'); return; }
    if (draft.green && !draft.reason) { say(t('green_reason_required'), 'error'); return; }
    if (issuing) return;
    issuing = true;
    $('confirm').disabled = true;
    const body = { service: draft.service, class: draft.green ? 'green' : 'normal', proxy: draft.proxy };
    if (draft.green) body.green_reason = draft.reason;
    const note = $('note').value.trim();
    if (draft.green && draft.reason === 'other' && note) body.note = note;
    try {
      // One key per press: a retry after a lost answer gives back the same ticket.
      const key = 'desk-' + Date.now().toString(36) + '-' + Math.random().toString(36).slice(2, 10);
      last = await api('POST', '/api/v1/desk/tickets', body, { 'Idempotency-Key': key });
      reset();
      say(t('desk_issued', { n: last.ticket.number }), 'info');
      renderResult();
      refreshSoon();
    } catch (e) {
      if (e.status === 401) { showLogin(t('err_sign_in_required')); return; }
      say(errorText(e), 'error');
      $('message').dataset.code = e.code || '';
      $('message').dataset.field = e.field || '';
    } finally {
      issuing = false;
      $('confirm').disabled = false;
    }
  }

  async function reprint() {
    if (!last) return;
    try {
      const r = await api('POST', '/api/v1/tickets/' + last.ticket.id + '/reprint', {}, { 'X-Kiosk-Id': 'desk' });
      last = { ...last, print: r.print, print_message: r.print_message };
      renderResult();
      say(t('desk_reprinted', { n: r.number }), 'info');
    } catch (e) {
      if (e.status === 401) { showLogin(t('err_sign_in_required')); return; }
      say(errorText(e), 'error');
    }
  }

  // ----- appointments ------------------------------------------------------------------
  function isMobile(text) {
    return /^(\+?86)?1[3-9]\d{9}$/.test(text.replace(/[\s-]/g, ''));
  }

  async function lookup(ev) {
    if (ev) ev.preventDefault();
    const text = $('lookup').value.trim();
    if (!text) { $('lookup').focus(); return; }
    const q = isMobile(text) ? 'mobile=' + encodeURIComponent(text) : 'code=' + encodeURIComponent(text);
    try {
      const r = await api('GET', '/api/v1/desk/appointments?' + q);
      renderFound(r.appointments);
    } catch (e) {
      if (e.status === 401) { showLogin(t('err_sign_in_required')); return; }
      $('found').replaceChildren(el('li', { class: 'none error' }, errorText(e)));
    }
  }

  function renderFound(list) {
    $('found').replaceChildren(...(list.length
      ? list.map((a) => {
        const state = a.state === 'checked_in'
          ? t('ap_checked_in', { n: a.ticket ? a.ticket.number : '' })
          : a.state === 'early' ? t('ap_early', { t: a.opens_local }) : t('ap_' + a.state);
        const li = el('li', { 'data-code': a.code, 'data-state': a.state },
          el('span', { class: 'ap-code' }, a.code),
          el('span', {}, HQ.name(a.service_name) + ' · ' + a.slot_local.slice(11, 16) + (a.mobile ? ' · ' + a.mobile : '')),
          el('span', { class: 'ap-state' }, state));
        if (a.state === 'open') {
          const b = el('button', { type: 'button', class: 'big primary checkin', 'data-code': a.code }, t('desk_check_in'));
          b.addEventListener('click', () => checkIn(a.code, b));
          li.append(b);
        }
        return li;
      })
      : [el('li', { class: 'none' }, t('desk_none_found'))]));
    const first = document.querySelector('#found button.checkin');
    if (first) first.focus();
  }

  async function checkIn(code, button) {
    button.disabled = true;
    try {
      const key = 'desk-ci-' + code + '-' + Date.now().toString(36);
      last = await api('POST', '/api/v1/desk/appointments/' + encodeURIComponent(code) + '/check-in', {}, { 'Idempotency-Key': key });
      say(t('desk_issued', { n: last.ticket.number }), 'info');
      renderResult();
      $('lookup').value = '';
      $('found').replaceChildren();
      refreshSoon();
    } catch (e) {
      if (e.status === 401) { showLogin(t('err_sign_in_required')); return; }
      button.disabled = false;
      say(errorText(e), 'error');
    }
  }

  // ----- help requests --------------------------------------------------------------
  async function acknowledge(kiosk, button) {
    button.disabled = true;
    try {
      await api('POST', '/api/v1/help/' + encodeURIComponent(kiosk) + '/ack', {});
    } catch (e) {
      if (e.status === 401) { showLogin(t('err_sign_in_required')); return; }
      if (e.code !== 'help_not_open') say(errorText(e), 'error');
    }
    await refresh();
  }

  // ----- keyboard -------------------------------------------------------------------
  function onKey(ev) {
    if ($('work').hidden || ev.ctrlKey || ev.metaKey || ev.altKey) return;
    const target = ev.target;
    const typing = target && (target.tagName === 'INPUT' || target.tagName === 'TEXTAREA' || target.tagName === 'SELECT');
    if (ev.key === 'Escape') {
      ev.preventDefault();
      if (typing) target.blur();
      cancel();
      return;
    }
    if (typing) {
      // Enter in the note confirms the ticket; in the lookup box the form submits.
      if (ev.key === 'Enter' && target.id === 'note') { ev.preventDefault(); confirmIssue(); }
      return;
    }
    const k = ev.key;
    if (k === 'Enter') {
      // A focused button other than the confirm button does its own thing.
      if (target && target.tagName === 'BUTTON' && target.id !== 'confirm') return;
      ev.preventDefault();
      confirmIssue();
    } else if (/^[1-9]$/.test(k)) {
      ev.preventDefault();
      const i = Number(k) - 1;
      if (picking()) {
        const r = data.green_reasons[i];
        if (r) pickReason(r.code);
      } else {
        const s = data.services[i];
        if (s) pickService(s.code);
      }
    } else if (k === 'g' || k === 'G') {
      ev.preventDefault();
      toggleGreen();
    } else if (k === 'p' || k === 'P') {
      ev.preventDefault();
      toggleProxy();
    } else if (k === '/') {
      ev.preventDefault();
      $('lookup').focus();
      $('lookup').select();
    } else if (k === 'r' || k === 'R') {
      if (last && !$('reprint').hidden) { ev.preventDefault(); reprint(); }
    }
  }

  function onLive(live) {
    $('offline').hidden = live;
    document.body.classList.toggle('stale', !live);
    if (live) refresh();
  }

  HQ.mountLangSwitch(() => { if (data) render(); });
  $('login').addEventListener('submit', signIn);
  $('sign-out').addEventListener('click', async () => {
    try { await api('DELETE', '/api/v1/sessions/current'); } catch (e) { /* gone anyway */ }
    showLogin();
  });
  $('mode-green').addEventListener('click', toggleGreen);
  $('mode-proxy').addEventListener('click', toggleProxy);
  $('confirm').addEventListener('click', confirmIssue);
  $('cancel').addEventListener('click', cancel);
  $('reprint').addEventListener('click', reprint);
  $('lookup-form').addEventListener('submit', lookup);
  document.addEventListener('keydown', onKey);
  if (HQ.token()) start(); else showLogin();
})();
