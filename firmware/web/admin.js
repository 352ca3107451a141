// hallq staff accounts (/admin, admin role only): every account with its state (active,
// disabled, locked until …), and the changes an admin makes: add (the PIN typed by the
// person, never shown back), disable and enable, reset the PIN, unlock, change roles and
// windows, remove (the id is never given again). The controller commits each change
// with its audit event naming the admin; this page only asks and shows.
'use strict';

(() => {
  const { t, el, api, errorText } = HQ;
  HQ.useToken('hallq.token.admin');
  const $ = (id) => document.getElementById(id);
  const ROLES = ['staff', 'desk', 'supervisor', 'admin'];

  let me = null;
  let accounts = [];
  let editing = null;

  function say(text, kind) {
    $('message').textContent = text || '';
    $('message').className = 'message ' + (kind || 'info');
    $('message').dataset.kind = kind || 'info';
  }

  function failure(e) {
    if (e.status === 401) return showLogin(t('err_sign_in_required'));
    let text = errorText(e);
    if (e.field) text = t('adm_bad_field', { field: e.field }) + ' ' + text;
    say(text, 'error');
    $('message').dataset.code = e.code || '';
  }

  function showLogin(message) {
    HQ.setToken(null);
    me = null;
    $('desk').hidden = true;
    $('login').hidden = false;
    $('sign-out').hidden = true;
    $('who').textContent = '';
    $('login-message').textContent = message || '';
    $('login-staff').focus();
  }

  async function signIn(ev) {
    ev.preventDefault();
    $('login-message').textContent = '';
    $('login-message').dataset.code = '';
    try {
      const r = await api('POST', '/api/v1/sessions', { staff_id: $('login-staff').value.trim(), pin: $('login-pin').value });
      $('login-pin').value = '';
      if (!(r.staff.roles || []).includes('admin')) {
        // Signed in, but not an admin: end that session at once and say why.
        HQ.setToken(r.token);
        try { await api('DELETE', '/api/v1/sessions/current'); } catch (e) { /* ends anyway */ }
        HQ.setToken(null);
        $('login-message').textContent = t('err_admin_required');
        $('login-message').dataset.code = 'admin_required';
        return;
      }
      HQ.setToken(r.token);
      sessionStorage.setItem('hallq.admin.staff', JSON.stringify(r.staff));
      await start();
    } catch (e) {
      $('login-pin').value = '';
      const code = e.code === 'wrong_window' ? 'admin_required' : e.code;
      $('login-message').textContent = code === 'admin_required' ? t('err_admin_required') : errorText(e);
      $('login-message').dataset.code = code || '';
    }
  }

  async function start() {
    me = JSON.parse(sessionStorage.getItem('hallq.admin.staff') || '{}');
    await refresh();
    if (!HQ.token()) return;
    $('who').textContent = me.id ? t('signed_in_as', { name: me.name || '', id: me.id }) : '';
    $('login').hidden = true;
    $('desk').hidden = false;
    $('sign-out').hidden = false;
  }

  async function refresh() {
    if (!HQ.token()) return;
    try {
      const r = await api('GET', '/api/v1/staff');
      accounts = r.accounts;
      render();
    } catch (e) {
      if (e.status === 403) showLogin(t('err_admin_required'));
      else failure(e);
    }
  }

  function windowsText(ws) { return ws.map((w) => w.window + ':' + w.role).join(', '); }

  /** "1:A, 2:B" (or "1 2:b") → [{window: 1, role: 'A'}, …]; null if unreadable. */
  function parseWindows(text) {
    const out = [];
    for (const part of text.split(/[\s,，、;]+/).filter(Boolean)) {
      const m = /^(\d{1,4})(?::([ABab]))?$/.exec(part);
      if (!m) return null;
      out.push({ window: Number(m[1]), role: (m[2] || 'A').toUpperCase() });
    }
    return out;
  }

  function stateCell(a) {
    const badge = el('span', { class: 'state ' + a.state }, t('adm_st_' + a.state));
    if (a.state === 'locked' && a.locked_until) return [badge, ' ', t('adm_until', { t: HQ.clockText(a.locked_until) })];
    return [badge];
  }

  function button(label, action, a, cls) {
    const b = el('button', { type: 'button', class: cls, 'data-action': action, 'data-id': a.id, 'aria-label': t(label) + ' ' + a.id }, t(label));
    b.addEventListener('click', () => act(action, a));
    return b;
  }

  function render() {
    $('count').textContent = '(' + accounts.length + ')';
    $('accounts').replaceChildren(...accounts.map((a) => {
      const self = me && a.id === me.id;
      const buttons = [];
      if (a.state === 'disabled') buttons.push(button('adm_enable', 'enable', a));
      else if (!self) buttons.push(button('adm_disable', 'disable', a));
      if (a.state === 'locked') buttons.push(button('adm_unlock', 'unlock', a));
      buttons.push(button('adm_reset_pin', 'reset-pin', a));
      buttons.push(button('adm_edit', 'edit', a));
      if (!self) buttons.push(button('adm_remove', 'remove', a, 'danger'));
      return el('tr', { 'data-id': a.id, 'data-state': a.state, class: a.state },
        el('td', {}, a.id), el('td', {}, a.name),
        el('td', {}, a.roles.map((r) => t('adm_role_' + r)).join('、')),
        el('td', {}, windowsText(a.windows) || '—'),
        el('td', { class: 'state-cell' }, stateCell(a)),
        el('td', { class: 'actions' }, buttons));
    }));
  }

  function roleBoxes(box, prefix, checked) {
    box.querySelectorAll('label').forEach((l) => l.remove());
    for (const r of ROLES) {
      const input = el('input', { type: 'checkbox', id: prefix + '-' + r, value: r, checked: checked.includes(r) });
      box.append(el('label', { for: prefix + '-' + r }, input, t('adm_role_' + r)));
    }
  }

  function chosenRoles(box) { return [...box.querySelectorAll('input:checked')].map((i) => i.value); }

  async function change(method, path, body, doneKey, id) {
    try {
      await api(method, path, body);
      say(t(doneKey, { id }), 'info');
      await refresh();
      return true;
    } catch (e) {
      failure(e);
      return false;
    }
  }

  function act(action, a) {
    const path = '/api/v1/staff/' + encodeURIComponent(a.id);
    if (action === 'disable') return change('POST', path + '/disable', {}, 'adm_done_disabled', a.id);
    if (action === 'enable') return change('POST', path + '/enable', {}, 'adm_done_enabled', a.id);
    if (action === 'unlock') return change('POST', path + '/unlock', {}, 'adm_done_unlocked', a.id);
    editing = a;
    if (action === 'reset-pin') {
      $('pin-title').textContent = t('adm_reset_pin_for', { id: a.id, name: a.name });
      $('pin-input').value = '';
      $('pin-dialog').showModal();
      $('pin-input').focus();
    } else if (action === 'edit') {
      $('edit-title').textContent = t('adm_edit_for', { id: a.id, name: a.name });
      roleBoxes($('edit-roles'), 'edit-role', a.roles);
      $('edit-windows').value = windowsText(a.windows);
      $('edit-dialog').showModal();
    } else if (action === 'remove') {
      $('confirm-title').textContent = t('adm_remove_for', { id: a.id, name: a.name });
      $('confirm-dialog').showModal();
      $('confirm-cancel').focus();
    }
    return null;
  }

  async function add(ev) {
    ev.preventDefault();
    const windows = parseWindows($('add-windows').value);
    if (!windows) { say(t('adm_bad_windows'), 'error'); $('add-windows').focus(); return; }
    const id = $('add-id').value.trim();
    const body = { id, name: $('add-name').value.trim(), pin: $('add-pin').value, roles: chosenRoles($('add-roles')), windows };
    // The PIN leaves the field at once, whatever the answer: it is never shown again.
    $('add-pin').value = '';
    if (await change('POST', '/api/v1/staff', body, 'adm_done_added', id)) {
      $('add').reset();
      roleBoxes($('add-roles'), 'add-role', ['staff']);
      $('add-id').focus();
    }
  }

  async function resetPin(ev) {
    ev.preventDefault();
    const pin = $('pin-input').value;
    $('pin-input').value = '';
    $('pin-dialog').close();
    await change('POST', '/api/v1/staff/' + encodeURIComponent(editing.id) + '/reset-pin', { pin }, 'adm_done_pin_reset', editing.id);
  }

  async function edit(ev) {
    ev.preventDefault();
    const windows = parseWindows($('edit-windows').value);
    if (!windows) { say(t('adm_bad_windows'), 'error'); return; }
    $('edit-dialog').close();
    await change('PATCH', '/api/v1/staff/' + encodeURIComponent(editing.id), { roles: chosenRoles($('edit-roles')), windows }, 'adm_done_changed', editing.id);
  }

  async function remove(ev) {
    ev.preventDefault();
    $('confirm-dialog').close();
    await change('DELETE', '/api/v1/staff/' + encodeURIComponent(editing.id), undefined, 'adm_done_removed', editing.id);
  }

  HQ.mountLangSwitch(() => {
    render();
    roleBoxes($('add-roles'), 'add-role', chosenRoles($('add-roles')));
  });
  roleBoxes($('add-roles'), 'add-role', ['staff']);
  $('login').addEventListener('submit', signIn);
  $('add').addEventListener('submit', add);
  $('pin-form').addEventListener('submit', resetPin);
  $('edit-form').addEventListener('submit', edit);
  $('confirm-form').addEventListener('submit', remove);
  $('pin-cancel').addEventListener('click', () => { $('pin-input').value = ''; $('pin-dialog').close(); });
  $('edit-cancel').addEventListener('click', () => $('edit-dialog').close());
  $('confirm-cancel').addEventListener('click', () => $('confirm-dialog').close());
  $('sign-out').addEventListener('click', async () => {
    try { await api('DELETE', '/api/v1/sessions/current'); } catch (e) { /* gone anyway */ }
    showLogin();
  });
  if (HQ.token()) start(); else showLogin();
})();
