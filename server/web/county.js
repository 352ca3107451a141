// The county dashboard (县域电子监察): every hall of the signed-in person's region, live;
// drill down region → hall → window. A client of the hall server's JSON API; the bearer
// token stays in sessionStorage and goes in a header, never a cookie. Texts in three
// languages. Every value from the server is set as text, never as markup.
'use strict';

(() => {
  const LANGS = ['zh-CN', 'zh-TW', 'en'];
  const LANG_LABEL = { 'zh-CN': '简体', 'zh-TW': '繁體', en: 'EN' };
  // [zh-CN, zh-TW, en]
  const T = {
    title: ['县域电子监察', '縣域電子監察', 'County supervision'],
    sign_in_title: ['监察人员登录', '監察人員登入', 'Supervisor sign-in'],
    login: ['账号', '帳號', 'Login'],
    password: ['密码', '密碼', 'Password'],
    sign_in: ['登录', '登入', 'Sign in'],
    sign_out: ['退出', '登出', 'Sign out'],
    offline: ['无法连接平台，正在重试…', '無法連線平台，正在重試…', 'Cannot reach the server — retrying…'],
    err_invalid_credentials: ['账号或密码错误', '帳號或密碼錯誤', 'Wrong login or password'],
    err_account_locked: ['密码错误次数过多，账号已锁定至 {t}', '密碼錯誤次數過多，帳號已鎖定至 {t}', 'Too many wrong passwords: locked until {t}'],
    err_other: ['登录失败：{m}', '登入失敗：{m}', 'Sign-in failed: {m}'],
    sub_regions: ['下级区域', '下級區域', 'Regions below'],
    halls: ['大厅', '大廳', 'Halls'],
    hall: ['大厅', '大廳', 'Hall'],
    region: ['区域', '區域', 'Region'],
    halls_online: ['大厅在线', '大廳在線', 'Halls online'],
    waiting: ['等候', '等候', 'Waiting'],
    windows_open: ['开放窗口', '開放窗口', 'Windows open'],
    longest_wait: ['最长等候', '最長等候', 'Longest wait'],
    open_warnings: ['未处理预警', '未處理預警', 'Open warnings'],
    device_faults: ['设备故障', '設備故障', 'Device faults'],
    backlog: ['待上报', '待上報', 'Not yet reported'],
    link: ['连接', '連線', 'Link'],
    l_online: ['在线', '在線', 'online'],
    l_partial: ['部分在线', '部分在線', 'partly online'],
    l_offline: ['离线', '離線', 'offline'],
    l_never: ['未接入', '未接入', 'never connected'],
    windows: ['窗口', '窗口', 'Windows'],
    window: ['窗口', '窗口', 'Window'],
    window_n: ['{n} 号窗口', '{n} 號窗口', 'Window {n}'],
    state: ['状态', '狀態', 'State'],
    staff: ['工号', '工號', 'Staff no.'],
    current: ['当前号码', '當前號碼', 'Current ticket'],
    since: ['持续', '持續', 'For'],
    services: ['事项', '事項', 'Services'],
    service: ['事项', '事項', 'Service'],
    issued: ['今日取号', '今日取號', 'Issued today'],
    estimated: ['预计等候', '預計等候', 'Estimated wait'],
    minutes: ['{n} 分钟', '{n} 分鐘', '{n} min'],
    devices: ['设备', '設備', 'Devices'],
    controllers: ['叫号控制器', '叫號控制器', 'Controllers'],
    controller: ['控制器', '控制器', 'Controller'],
    last_seen: ['最近状态', '最近狀態', 'Last state'],
    config_version: ['配置版本', '配置版本', 'Setup version'],
    version: ['软件版本', '軟體版本', 'Software'],
    updated: ['更新于', '更新於', 'Updated'],
    st_absent: ['无人值守', '無人值守', 'Unstaffed'],
    st_paused: ['暂停服务', '暫停服務', 'Paused'],
    st_idle: ['空闲', '空閒', 'Idle'],
    st_called: ['呼叫中', '呼叫中', 'Calling'],
    st_serving: ['办理中', '辦理中', 'Serving'],
    kiosk_locked: ['取号机已锁定：{m}', '取號機已鎖定：{m}', 'Kiosks locked: {m}'],
    notice: ['公告：{m}', '公告：{m}', 'Notice: {m}'],
    none: ['无', '無', 'None'],
    escalated: ['已上报', '已上報', 'escalated'],
    w_wait_alarm: ['超时等候', '超時等候', 'Long wait'],
    w_service_over_time: ['办理超时', '辦理超時', 'Service over time'],
    w_queue_alarm: ['排队过长', '排隊過長', 'Long queue'],
    w_pause_alarm: ['暂停过久', '暫停過久', 'Paused too long'],
    w_unmanned_alarm: ['窗口空岗', '窗口空崗', 'Window unmanned'],
    w_device_fault: ['设备故障', '設備故障', 'Device fault'],
    hall_count: ['{n} 个大厅', '{n} 個大廳', '{n} halls'],
    role_viewer: ['查看', '查看', 'viewer'],
    role_supervisor: ['监察', '監察', 'supervisor'],
    role_admin: ['管理员', '管理員', 'admin'],
    period_title: ['办件与评价', '辦件與評價', 'Service and ratings'],
    rank: ['排名', '排名', 'Rank'],
    issued_n: ['取号', '取號', 'Tickets'],
    served: ['办结', '辦結', 'Served'],
    avg_wait: ['平均等候', '平均等候', 'Avg. wait'],
    satisfaction: ['满意率', '滿意率', 'Satisfaction'],
    bad: ['差评', '差評', 'Bad ratings'],
    no_show_rate: ['过号率', '過號率', 'No-show rate'],
    // The period view and appraisal.
    p_kind: ['统计时段', '統計時段', 'Period'],
    p_kind_month: ['按月', '按月', 'A month'],
    p_kind_range: ['按日期', '按日期', 'Days from … to'],
    p_month: ['月份', '月份', 'Month'],
    p_from: ['起始日', '起始日', 'From'],
    p_to: ['截止日', '截止日', 'To'],
    p_show: ['查询', '查詢', 'Show'],
    p_span: ['{from} 至 {to}', '{from} 至 {to}', '{from} to {to}'],
    p_need: ['请选择日期', '請選擇日期', 'Choose a day'],
    p_need_month: ['请选择月份', '請選擇月份', 'Choose a month'],
    p_err_month: ['月份无效', '月份無效', 'Not a month'],
    p_err_from: ['起始日无效', '起始日無效', 'Not a valid first day'],
    p_err_to: ['截止日须不早于起始日，且最长 366 天', '截止日須不早於起始日，且最長 366 天', 'The last day must not be before the first, and 366 days at most'],
    p_err_other: ['查询失败：{m}', '查詢失敗：{m}', 'Could not show the period: {m}'],
    p_regions: ['下级区域考核', '下級區域考核', 'Regions below, ranked'],
    p_halls: ['大厅排名', '大廳排名', 'Halls, ranked'],
    p_windows: ['按窗口', '按窗口', 'Per window'],
    p_staff: ['按工作人员（工号）', '按工作人員（工號）', 'Per member of staff (staff no.)'],
    p_services: ['按事项', '按事項', 'Per service'],
    p_hours: ['按时段', '按時段', 'Per hour of day'],
    p_days: ['按日', '按日', 'Per day'],
    p_bad_ratings: ['差评及整改', '差評及整改', 'Bad ratings and their follow-ups'],
    p_csv: ['下载 CSV', '下載 CSV', 'CSV'],
    p_csv_label: ['下载“{table}” CSV', '下載「{table}」CSV', 'Download “{table}” as CSV'],
    p_none: ['该时段无数据', '該時段無數據', 'Nothing in this period'],
    p_halls_n: ['大厅数', '大廳數', 'Halls'],
    p_name: ['名称', '名稱', 'Name'],
    p_code: ['编码', '編碼', 'Code'],
    p_hour: ['时段', '時段', 'Hour'],
    p_day: ['日期', '日期', 'Day'],
    p_called: ['呼叫', '呼叫', 'Called'],
    p_no_shows: ['过号', '過號', 'No-shows'],
    p_transfers: ['转移', '轉移', 'Transfers'],
    p_max_wait: ['最长等候', '最長等候', 'Longest wait'],
    p_avg_service: ['平均办理', '平均辦理', 'Avg. service'],
    p_max_service: ['最长办理', '最長辦理', 'Longest service'],
    p_pauses: ['暂停', '暫停', 'Pauses'],
    p_signed_in: ['在岗时长', '在崗時長', 'Signed in'],
    p_rated: ['评价数', '評價數', 'Ratings'],
    p_bad_rate: ['差评率', '差評率', 'Bad-rating rate'],
    p_fu_opened: ['需整改', '需整改', 'Follow-ups'],
    p_fu_closed: ['整改办结', '整改辦結', 'Follow-ups closed'],
    p_fu_overdue: ['整改逾期', '整改逾期', 'Follow-ups overdue'],
    p_warnings: ['预警', '預警', 'Warnings'],
    p_warnings_handled: ['预警已处理', '預警已處理', 'Warnings handled'],
    p_rated_at: ['评价时间', '評價時間', 'Rated at'],
    p_number: ['号码', '號碼', 'Ticket'],
    p_level: ['评价', '評價', 'Rating'],
    p_reasons: ['差评原因', '差評原因', 'Reasons'],
    p_fu_state: ['整改状态', '整改狀態', 'Follow-up'],
    p_levels: ['评价分布', '評價分佈', 'Ratings by level'],
    p_colon: ['：', '：', ': '],
    p_secs: ['（秒）', '（秒）', ' (s)'],
    p_pct: ['（%）', '（%）', ' (%)'],
    lv_very_satisfied: ['非常满意', '非常滿意', 'Very satisfied'],
    lv_satisfied: ['满意', '滿意', 'Satisfied'],
    lv_basically_satisfied: ['基本满意', '基本滿意', 'Fairly satisfied'],
    lv_dissatisfied: ['不满意', '不滿意', 'Dissatisfied'],
    lv_very_dissatisfied: ['非常不满意', '非常不滿意', 'Very dissatisfied'],
    follow_ups: ['差评整改', '差評整改', 'Bad-rating follow-ups'],
    due: ['期限', '期限', 'due'],
    overdue: ['已逾期', '已逾期', 'overdue'],
    fu_open: ['待受理', '待受理', 'open'],
    fu_received: ['已受理', '已受理', 'received'],
    fu_rectified: ['已整改', '已整改', 'rectified'],
    fu_visited: ['已回访', '已回訪', 'visited'],
    fu_closed: ['已办结', '已辦結', 'closed'],
    note: ['说明', '說明', 'Note'],
    send_step: ['提交', '提交', 'Send'],
    step_sent: ['已下发，等待大厅确认', '已下發，等待大廳確認', 'Sent; waiting for the hall'],
    act_title_region: ['向{r}全部大厅下发', '向{r}全部大廳下發', 'Send to every hall of {r}'],
    act_title_hall: ['向本大厅下发', '向本大廳下發', 'Send to this hall'],
    lock_message: ['锁定提示（显示给群众）', '鎖定提示（顯示給民眾）', 'Message shown to citizens'],
    lock: ['锁定取号机', '鎖定取號機', 'Lock kiosks'],
    unlock: ['解锁取号机', '解鎖取號機', 'Unlock kiosks'],
    notice_text: ['公告内容', '公告內容', 'Notice'],
    notice_minutes: ['显示分钟（空＝直到撤下）', '顯示分鐘（空＝直到撤下）', 'Minutes (empty: until cleared)'],
    show_notice: ['发布公告', '發布公告', 'Show notice'],
    clear_notice: ['撤下公告', '撤下公告', 'Clear notice'],
    sent_to: ['已下发到 {n} 台控制器', '已下發到 {n} 台控制器', 'Sent to {n} controller(s)'],
    pushes: ['下发记录', '下發記錄', 'Sent from above'],
    answered: ['{a}/{n} 已执行', '{a}/{n} 已執行', '{a}/{n} done'],
    refused: ['{n} 台拒绝：{m}', '{n} 台拒絕：{m}', '{n} refused: {m}'],
    c_lock_kiosk: ['锁定取号机', '鎖定取號機', 'Lock kiosks'],
    c_unlock_kiosk: ['解锁取号机', '解鎖取號機', 'Unlock kiosks'],
    c_show_notice: ['发布公告', '發布公告', 'Notice'],
    c_clear_notice: ['撤下公告', '撤下公告', 'Notice cleared'],
    c_setup: ['大厅配置', '大廳配置', 'Queue setup'],
    c_follow_up: ['差评整改', '差評整改', 'Follow-up step'],
  };
  let lang = localStorage.getItem('hallq-lang');
  if (!LANGS.includes(lang)) lang = 'zh-CN';
  const t = (key, vars = {}) => {
    const row = T[key];
    let s = row ? row[LANGS.indexOf(lang)] : key;
    for (const [k, v] of Object.entries(vars)) s = s.replace(`{${k}}`, v);
    return s;
  };
  const $ = (id) => document.getElementById(id);
  const el = (tag, attrs = {}, ...kids) => {
    const e = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs)) {
      if (k === 'class') e.className = v;
      else if (k === 'text') e.textContent = v;
      else if (k.startsWith('on')) e.addEventListener(k.slice(2), v);
      else e.setAttribute(k, v);
    }
    for (const k of kids) e.append(k);
    return e;
  };
  const dur = (secs) => {
    if (secs == null || secs < 0) return '—';
    const m = Math.floor(secs / 60);
    const s = secs % 60;
    if (m < 60) return `${m}:${String(s).padStart(2, '0')}`;
    return `${Math.floor(m / 60)}:${String(m % 60).padStart(2, '0')}:${String(s).padStart(2, '0')}`;
  };
  const clock = (ms) => (ms ? new Date(ms).toLocaleTimeString(lang, { hour12: false }) : '—');
  const name3 = (n, fallback) => {
    if (!n) return fallback;
    if (typeof n === 'string') return n;
    return n[lang] || n['zh-CN'] || fallback;
  };

  let token = sessionStorage.getItem('hallq-county-token');
  let me = null;
  let last = null;
  let timer = null;

  async function api(path, opts = {}) {
    const headers = { 'Content-Type': 'application/json' };
    if (token) headers.Authorization = `Bearer ${token}`;
    const res = await fetch(path, { ...opts, headers });
    if (res.status === 401 && path !== '/api/v1/session') {
      signedOut();
      throw new Error('sign_in_required');
    }
    const body = res.status === 204 ? null : await res.json();
    if (!res.ok) {
      const e = new Error(body && body.message ? body.message : res.statusText);
      e.body = body;
      e.status = res.status;
      throw e;
    }
    return body;
  }

  function applyLang() {
    document.documentElement.lang = lang;
    for (const e of document.querySelectorAll('[data-i18n]')) e.textContent = t(e.dataset.i18n);
    document.title = `${t('title')} · hallq`;
    const box = $('langs');
    box.replaceChildren(...LANGS.map((l) => el('button', {
      type: 'button', 'data-lang': l, 'aria-pressed': String(l === lang), text: LANG_LABEL[l],
      onclick: () => { lang = l; localStorage.setItem('hallq-lang', l); applyLang(); render(); },
    })));
    showWho();
  }

  function showWho() {
    if (!me) { $('who').textContent = ''; $('scope').textContent = ''; return; }
    $('who').textContent = `${me.account.name}（${t(`role_${me.account.role}`)}）`;
    $('scope').textContent = me.region_name ? `· ${me.region_name}` : '';
  }

  function signedOut() {
    token = null; me = null; last = null;
    sessionStorage.removeItem('hallq-county-token');
    clearInterval(timer); timer = null;
    for (const id of ['region-view', 'hall-view', 'crumbs', 'sign-out', 'shared']) $(id).hidden = true;
    $('login').hidden = false;
    showWho();
  }

  async function signedIn() {
    me = await api('/api/v1/session');
    $('login').hidden = true;
    $('sign-out').hidden = false;
    $('crumbs').hidden = false;
    showWho();
    await refresh();
    clearInterval(timer);
    timer = setInterval(refresh, 5000);
  }

  $('login').addEventListener('submit', async (ev) => {
    ev.preventDefault();
    $('login-message').textContent = '';
    try {
      const r = await api('/api/v1/session', {
        method: 'POST',
        body: JSON.stringify({ login: $('login-name').value.trim(), password: $('login-password').value }),
      });
      token = r.token;
      sessionStorage.setItem('hallq-county-token', token);
      $('login-password').value = '';
      await signedIn();
    } catch (e) {
      const b = e.body || {};
      let m;
      if (b.error === 'invalid_credentials') m = t('err_invalid_credentials');
      else if (b.error === 'account_locked') m = t('err_account_locked', { t: clock(b.until) });
      else m = t('err_other', { m: e.message });
      $('login-message').textContent = m;
    }
  });
  $('sign-out').addEventListener('click', async () => {
    try { await api('/api/v1/session', { method: 'DELETE' }); } catch (_) { /* signed out anyway */ }
    signedOut();
  });
  window.addEventListener('hashchange', () => refresh());

  // Where the page is: '#r/<code>' a region, '#h/<id>' a hall, '' the person's region.
  const place = () => {
    const h = location.hash.slice(1);
    if (h.startsWith('h/')) return { hall: decodeURIComponent(h.slice(2)) };
    if (h.startsWith('r/')) return { region: decodeURIComponent(h.slice(2)) };
    return { region: me ? me.account.region : null };
  };

  // The period (the month by default), the follow-ups and the pushes of where the page
  // is; a failed one keeps what was shown.
  const month = () => {
    const d = new Date();
    return `${d.getFullYear()}-${String(d.getMonth() + 1).padStart(2, '0')}`;
  };
  async function extras(p) {
    const region = p.hall ? null : (p.region || me.account.region);
    const q = (path) => api(path).catch(() => undefined);
    const periodFor = periodPath(p);
    const [period, fu, pushes] = await Promise.all([
      q(periodFor),
      q(region ? `/api/v1/follow-ups?region=${encodeURIComponent(region)}` : '/api/v1/follow-ups'),
      q(p.hall ? `/api/v1/pushes?hall=${encodeURIComponent(p.hall)}` : '/api/v1/pushes'),
    ]);
    return { period, periodFor, fu, pushes };
  }
  let more = {};

  async function refresh() {
    if (!token) return;
    const p = place();
    try {
      const [main, x] = await Promise.all([
        p.hall ? api(`/api/v1/halls/${encodeURIComponent(p.hall)}`).then((hall) => ({ hall }))
          : api('/api/v1/halls').then((county) => ({ county })),
        extras(p),
      ]);
      last = main;
      more = x;
      $('offline').hidden = true;
      $('updated').textContent = clock(Date.now());
    } catch (e) {
      if (e.message === 'sign_in_required') return;
      if (e.status === 404) { location.hash = ''; return; }
      $('offline').hidden = false;
      return;
    }
    render();
  }

  function crumbs(path) {
    const nav = $('crumbs');
    const parts = [];
    path.forEach((r, i) => {
      if (i > 0) parts.push(el('span', { class: 'sep', text: '›' }));
      parts.push(el('a', { href: `#r/${r.code}`, 'data-region': r.code, text: r.name }));
    });
    nav.replaceChildren(...parts);
  }

  function regionPath(code, regions) {
    const by = new Map(regions.map((r) => [r.code, r]));
    const out = [];
    let r = by.get(code);
    while (r) { out.unshift(r); r = r.parent ? by.get(r.parent) : null; }
    return out;
  }

  const linkState = (h) => {
    if (!h.controllers.length) return 'never';
    if (h.online === h.controllers.length) return 'online';
    return h.online > 0 ? 'partial' : 'offline';
  };
  const badge = (state) => el('span', { class: `badge ${state}`, 'data-link': state, text: t(`l_${state}`) });
  const cell = (text, cls = 'num') => el('td', { class: cls, text: String(text) });
  const alertCell = (n) => el('td', { class: n > 0 ? 'num alert' : 'num', text: String(n) });
  const figure = (key, value, alert = false) =>
    el('div', { class: alert ? 'figure alert' : 'figure', 'data-figure': key },
      el('div', { class: 'n', text: String(value) }), el('div', { class: 'k', text: t(key) }));

  function render() {
    if (!last || !me) return;
    if (last.hall) renderHall(last.hall);
    else renderRegion(last.county);
    renderShared();
    renderSetup();
  }

  const mayAct = () => me && me.account.role !== 'viewer';
  const pct = (x) => (x == null ? '—' : `${(x * 100).toFixed(1)}%`);
  // Where a push from the form goes: the hall shown, or the region shown.
  let target = null;

  function renderShared() {
    $('shared').hidden = false;
    const p = place();
    renderPeriod(p);
    if (more.fu) renderFollowUps(more.fu, p.hall);
    if (more.pushes) renderPushes(more.pushes.pushes || []);
    $('act').hidden = !mayAct();
    if (p.hall && last.hall) {
      target = { path: `/api/v1/halls/${encodeURIComponent(p.hall)}/pushes` };
      $('act-title').textContent = t('act_title_hall');
    } else if (last.county) {
      const code = p.region || me.account.region;
      const r = last.county.regions.find((x) => x.code === code);
      target = { path: `/api/v1/regions/${encodeURIComponent(code)}/pushes` };
      $('act-title').textContent = t('act_title_region', { r: r ? r.name : code });
    }
  }

  // ----- The period view and appraisal -----------------------------------------------
  // A month or any days (GET /api/v1/period): the region's figures, its child regions and
  // its halls ranked, each child region a link down; for a hall, its tables per window,
  // staff number, service, hour and day and its bad ratings with their follow-ups. Every
  // table downloads as CSV (RFC 4180, UTF-8 with a BOM, CRLF), as shown, made here.
  const PERIOD_KEY = 'hallq-county-period';
  let periodChoice = (() => {
    try {
      const v = JSON.parse(sessionStorage.getItem(PERIOD_KEY));
      if (v && (v.month || (v.from && v.to))) return v;
    } catch (_) { /* none kept */ }
    return null;
  })();
  const periodQuery = (c) => {
    const v = c || periodChoice || { month: month() };
    return v.month ? `month=${encodeURIComponent(v.month)}` : `from=${encodeURIComponent(v.from)}&to=${encodeURIComponent(v.to)}`;
  };
  function periodPath(p, choice) {
    const where = p.hall ? `hall=${encodeURIComponent(p.hall)}` : `region=${encodeURIComponent(p.region || me.account.region)}`;
    return `/api/v1/period?${periodQuery(choice)}&${where}`;
  }
  // What the view shows: the answer to `path`, from the 5-s refresh or the picker.
  let periodData = null;
  let periodShown = '';
  let periodTables = {};

  const LEVELS = ['very_satisfied', 'satisfied', 'basically_satisfied', 'dissatisfied', 'very_dissatisfied'];
  const LEVEL_BY_NAME = { 非常满意: 'very_satisfied', 满意: 'satisfied', 基本满意: 'basically_satisfied', 不满意: 'dissatisfied', 非常不满意: 'very_dissatisfied' };
  const levelName = (n) => (LEVEL_BY_NAME[n] ? t(`lv_${LEVEL_BY_NAME[n]}`) : n || '');
  const share = (a, b) => (b > 0 ? a / b : null);
  const hm = (secs) => {
    const m = Math.round(secs / 60);
    return `${Math.floor(m / 60)}:${String(m % 60).padStart(2, '0')}`;
  };
  const two = (n) => String(n).padStart(2, '0');
  const stamp = (ms) => {
    if (!ms) return '';
    const d = new Date(ms);
    return `${d.getFullYear()}-${two(d.getMonth() + 1)}-${two(d.getDate())} ${two(d.getHours())}:${two(d.getMinutes())}`;
  };
  const fuOf = (r, k) => (r.follow_ups ? r.follow_ups[k] : null);
  // Columns: [header text key, kind, value]. Kinds: t text, n count, d seconds (m:ss),
  // h seconds (h:mm), p a share (%). The CSV has the value itself: seconds, percent.
  const PC = {
    rank: ['rank', 'n', (r) => r.rank],
    region: ['region', 't', (r) => r.name],
    hall: ['hall', 't', (r) => r.name],
    halls: ['p_halls_n', 'n', (r) => r.halls],
    window: ['window', 't', (r) => r.key],
    staff: ['staff', 't', (r) => r.key],
    code: ['p_code', 't', (r) => r.key],
    name: ['p_name', 't', (r) => r.name || ''],
    hour: ['p_hour', 't', (r) => `${r.key}:00`],
    day: ['p_day', 't', (r) => r.key],
    issued: ['issued_n', 'n', (r) => r.issued],
    called: ['p_called', 'n', (r) => r.called],
    served: ['served', 'n', (r) => r.served],
    no_shows: ['p_no_shows', 'n', (r) => r.no_shows],
    transfers: ['p_transfers', 'n', (r) => r.transfers],
    avg_wait: ['avg_wait', 'd', (r) => r.avg_wait_secs],
    max_wait: ['p_max_wait', 'd', (r) => r.max_wait_secs],
    avg_service: ['p_avg_service', 'd', (r) => r.avg_service_secs],
    max_service: ['p_max_service', 'd', (r) => r.max_service_secs],
    pauses: ['p_pauses', 'n', (r) => r.pauses],
    signed_in: ['p_signed_in', 'h', (r) => r.signed_in_secs],
    rated: ['p_rated', 'n', (r) => r.rated],
    satisfaction: ['satisfaction', 'p', (r) => r.satisfaction],
    bad: ['bad', 'n', (r) => r.bad],
    bad_rate: ['p_bad_rate', 'p', (r) => share(r.bad, r.rated)],
    no_show_rate: ['no_show_rate', 'p', (r) => share(r.no_shows, r.served + r.no_shows)],
    fu_opened: ['p_fu_opened', 'n', (r) => fuOf(r, 'opened')],
    fu_closed: ['p_fu_closed', 'n', (r) => fuOf(r, 'closed')],
    fu_overdue: ['p_fu_overdue', 'n', (r) => fuOf(r, 'overdue')],
    warnings: ['p_warnings', 'n', (r) => r.warnings],
    warnings_handled: ['p_warnings_handled', 'n', (r) => r.warnings_handled],
    rated_at: ['p_rated_at', 't', (r) => stamp(r.rated_at)],
    number: ['p_number', 't', (r) => r.number],
    b_service: ['service', 't', (r) => r.service_name || r.service || ''],
    b_window: ['window', 't', (r) => (r.window == null ? '' : String(r.window))],
    b_staff: ['staff', 't', (r) => r.staff || ''],
    level: ['p_level', 't', (r) => levelName(r.level)],
    reasons: ['p_reasons', 't', (r) => (r.reasons || []).join('、')],
    fu_state: ['p_fu_state', 't', (r) => t(`fu_${r.state}`) + (r.overdue ? ` · ${t('overdue')}` : '')],
  };
  const AT_WINDOW = ['called', 'served', 'no_shows', 'transfers', 'avg_wait', 'avg_service', 'max_service', 'pauses',
    'signed_in', 'rated', 'satisfaction', 'bad', 'fu_opened', 'fu_closed', 'fu_overdue'];
  const APPRAISED = ['issued', 'served', 'avg_wait', 'no_show_rate', 'rated', 'satisfaction', 'bad', 'bad_rate',
    'fu_opened', 'fu_closed', 'fu_overdue', 'warnings', 'warnings_handled'];
  // Each table: its element, its title's text key, its columns, and where a row leads.
  const P_TABLES = {
    regions: { id: 'p-regions', title: 'p_regions', cols: ['rank', 'region', 'halls', ...APPRAISED], link: 'region', to: (r) => `r/${r.code}`, data: (r) => ({ 'data-region': r.code }) },
    // The halls' first eight columns as they always were (rank, hall, tickets, served,
    // wait, satisfaction, bad, no-shows).
    halls: { id: 'period', title: 'p_halls', cols: ['rank', 'hall', 'issued', 'served', 'avg_wait', 'satisfaction', 'bad', 'no_show_rate', 'rated', 'bad_rate', 'fu_opened', 'fu_closed', 'fu_overdue', 'warnings', 'warnings_handled'], link: 'hall', to: (r) => `h/${r.id}`, data: (r) => ({ 'data-hall': r.id }) },
    windows: { id: 'p-windows', title: 'p_windows', cols: ['window', 'name', ...AT_WINDOW] },
    staff: { id: 'p-staff', title: 'p_staff', cols: ['staff', ...AT_WINDOW] },
    services: { id: 'p-services', title: 'p_services', cols: ['code', 'name', 'issued', 'served', 'no_shows', 'transfers', 'avg_wait', 'max_wait', 'avg_service', 'rated', 'satisfaction', 'bad', 'fu_opened', 'fu_closed', 'fu_overdue'] },
    hours: { id: 'p-hours', title: 'p_hours', cols: ['hour', 'issued', 'avg_wait', 'max_wait'] },
    days: { id: 'p-days', title: 'p_days', cols: ['day', 'issued', 'served', 'no_shows', 'avg_wait', 'max_wait', 'avg_service', 'rated', 'satisfaction', 'bad', 'warnings', 'warnings_handled'] },
    bad_ratings: { id: 'p-bad', title: 'p_bad_ratings', cols: ['rated_at', 'number', 'b_service', 'b_window', 'b_staff', 'level', 'reasons', 'fu_state'], data: (r) => ({ 'data-ticket': `${r.controller_id}/${r.ticket}`, 'data-state': r.state }) },
  };
  const NUMERIC = new Set(['n', 'd', 'h', 'p']);
  function shownValue(kind, v) {
    if (v == null || v === '') return kind === 't' ? '' : '—';
    if (kind === 'd') return dur(v);
    if (kind === 'h') return hm(v);
    if (kind === 'p') return pct(v);
    return String(v);
  }
  const csvValue = (kind, v) => {
    if (v == null) return '';
    return kind === 'p' ? (v * 100).toFixed(1) : String(v);
  };
  function colHead(id, csv) {
    const [key, kind] = PC[id];
    if (!csv) return t(key);
    if (kind === 'd' || kind === 'h') return t(key) + t('p_secs');
    return kind === 'p' ? t(key) + t('p_pct') : t(key);
  }

  function fillTable(kind, rows) {
    const spec = P_TABLES[kind];
    const table = $(spec.id);
    periodTables[kind] = rows;
    table.tHead.replaceChildren(el('tr', {}, ...spec.cols.map((c) =>
      el('th', { scope: 'col', class: NUMERIC.has(PC[c][1]) ? 'num' : '', 'data-col': c, text: colHead(c) }))));
    table.tBodies[0].replaceChildren(...(rows.length ? rows.map((r) => {
      const attrs = { 'data-key': r.key ?? r.id ?? r.code ?? '', ...(spec.data ? spec.data(r) : {}) };
      if (spec.to) {
        attrs.class = 'go';
        attrs.onclick = (ev) => { if (!ev.target.closest('a')) location.hash = spec.to(r); };
      }
      return el('tr', attrs, ...spec.cols.map((c) => {
        const [, k, get] = PC[c];
        const v = get(r);
        const cls = [NUMERIC.has(k) ? 'num' : '', c === 'bad' && v > 0 ? 'alert' : ''].filter(Boolean).join(' ');
        const td = el('td', { class: cls, 'data-col': c, 'data-value': v == null ? '' : String(v) });
        if (c === spec.link) td.append(el('a', { href: `#${spec.to(r)}`, text: shownValue(k, v) }));
        else td.textContent = shownValue(k, v);
        return td;
      }));
    }) : [el('tr', { class: 'none' }, el('td', { colspan: String(spec.cols.length), class: 'empty', text: t('p_none') }))]));
  }

  // One figure of the region or hall shown, its raw value in data-value.
  function periodFigure(id, r, text, alert = false) {
    const [key, kind, get] = PC[id];
    const v = get(r);
    return el('div', { class: alert ? 'figure alert' : 'figure', 'data-p-figure': id, 'data-value': v == null ? '' : String(v) },
      el('div', { class: 'n', text: text || shownValue(kind, v) }), el('div', { class: 'k', text: t(key) }));
  }

  function periodFigures(r, rank) {
    const overdue = fuOf(r, 'overdue') || 0;
    const cards = [
      ...(rank ? [el('div', { class: 'figure', 'data-p-figure': 'rank', 'data-value': String(rank.rank) },
        el('div', { class: 'n', text: `${rank.rank}/${rank.of}` }), el('div', { class: 'k', text: t('rank') }))] : []),
      ...['issued', 'served', 'avg_wait', 'avg_service', 'no_show_rate', 'rated', 'satisfaction'].map((c) => periodFigure(c, r)),
      periodFigure('bad', r, null, r.bad > 0),
      periodFigure('fu_opened', r),
      periodFigure('fu_closed', r),
      periodFigure('fu_overdue', r, null, overdue > 0),
    ];
    $('p-figures').replaceChildren(...cards);
    const counts = r.ratings || {};
    const reasons = Object.entries(r.bad_reasons || {}).sort((a, b) => b[1] - a[1]);
    $('p-levels').replaceChildren(
      el('strong', { text: t('p_levels') + t('p_colon') }),
      ...LEVELS.map((l) => el('span', { class: 'level', 'data-level': l }, `${t(`lv_${l}`)} `, el('b', { text: String(counts[l] || 0) }))),
      el('span', { class: 'reasons', 'data-reasons': '' }, el('strong', { text: t('p_reasons') + t('p_colon') }),
        reasons.length ? reasons.map(([k, n]) => `${k} ${n}`).join('、') : '—'));
  }

  function renderPeriod(p) {
    const want = periodPath(p);
    if (more.period && more.periodFor === want) periodData = { path: want, v: more.period };
    $('p-region').hidden = Boolean(p.hall);
    $('p-hall').hidden = !p.hall;
    const v = periodData && periodData.path === want ? periodData.v : null;
    if (!v) return;
    // The hall's window and service names, from its controllers' state.
    const live = p.hall && last.hall && last.hall.hall.id === p.hall ? last.hall : null;
    const windowNames = new Map(((live && live.windows) || []).map((w) => [String(w.number), w.name || '']));
    const serviceNames = new Map(((live && live.services) || []).map((x) => [x.code, name3(x.name, x.code)]));
    const key = JSON.stringify([lang, want, { ...v, elapsed_ms: 0 }, [...windowNames], [...serviceNames]]);
    if (key === periodShown) return;
    periodShown = key;
    const panel = $('period-panel');
    panel.dataset.from = v.from;
    panel.dataset.to = v.to;
    panel.dataset.scope = p.hall ? `hall:${p.hall}` : `region:${p.region || me.account.region}`;
    $('period-span').textContent = t('p_span', { from: v.from, to: v.to });
    periodTables = {};
    if (p.hall) {
      const h = v.halls.find((x) => x.id === p.hall);
      const d = v.detail || {};
      const ranked = (v.ranking || []).find((x) => x.hall === p.hall);
      if (h) periodFigures(h, ranked ? { rank: ranked.rank, of: v.ranking.length } : null);
      const named = (names) => (r) => ({ ...r, name: names.get(r.key) || '' });
      fillTable('windows', (d.windows || []).map(named(windowNames)));
      fillTable('staff', d.staff || []);
      fillTable('services', (d.services || []).map(named(serviceNames)));
      fillTable('hours', d.hours || []);
      fillTable('days', d.days || []);
      fillTable('bad_ratings', (d.bad_ratings || []).map((r) => ({ ...r, service_name: serviceNames.get(r.service) })));
    } else {
      const code = p.region || me.account.region;
      const here = v.regions.find((r) => r.code === code);
      if (here) periodFigures(here, null);
      const children = v.regions.filter((r) => r.parent === code).sort((a, b) => a.rank - b.rank || a.code.localeCompare(b.code));
      $('p-regions-box').hidden = children.length === 0;
      fillTable('regions', children);
      const byId = new Map(v.halls.map((h) => [h.id, h]));
      const rows = (v.ranking || []).map((r) => ({ ...byId.get(r.hall), rank: r.rank })).filter((h) => h.id);
      for (const h of v.halls) if (!rows.some((x) => x.id === h.id)) rows.push({ ...h, rank: null });
      fillTable('halls', rows);
    }
    for (const b of panel.querySelectorAll('button.csv')) {
      b.setAttribute('aria-label', t('p_csv_label', { table: t(P_TABLES[b.dataset.table].title) }));
    }
  }

  const csvField = (s) => (/[",\r\n]/.test(s) ? `"${s.replace(/"/g, '""')}"` : s);
  // The table as shown (its columns, in the page's language) as RFC 4180 CSV with a BOM
  // for Excel.
  function csvOf(kind) {
    const spec = P_TABLES[kind];
    const lines = [spec.cols.map((c) => csvField(colHead(c, true)))];
    for (const r of periodTables[kind] || []) {
      lines.push(spec.cols.map((c) => csvField(csvValue(PC[c][1], PC[c][2](r)))));
    }
    return `\ufeff${lines.map((l) => l.join(',')).join('\r\n')}\r\n`;
  }
  for (const b of $('period-panel').querySelectorAll('button.csv')) {
    b.addEventListener('click', () => {
      if (!periodData) return;
      const v = periodData.v;
      const p = place();
      const scope = p.hall || p.region || me.account.region;
      const url = URL.createObjectURL(new Blob([csvOf(b.dataset.table)], { type: 'text/csv;charset=utf-8' }));
      const a = el('a', { href: url, download: `hallq-${scope}-${v.from}_${v.to}-${b.dataset.table}.csv`, hidden: '' });
      document.body.append(a);
      a.click();
      a.remove();
      setTimeout(() => URL.revokeObjectURL(url), 10000);
    });
  }

  // The picker: the choice kept for the session; a field left empty is named here, the
  // rest (a day after the last, more than 366 days, not a date) by the API, next to the
  // field it names.
  function pickerKind() {
    const range = $('pk-range').checked;
    $('pf-month').hidden = range;
    $('pf-from').hidden = !range;
    $('pf-to').hidden = !range;
    return range ? 'range' : 'month';
  }
  function clearPeriodErrors() {
    for (const f of ['month', 'from', 'to']) {
      $(`p-${f}`).removeAttribute('aria-invalid');
      $(`p-${f}-error`).replaceChildren();
    }
    $('p-message').textContent = '';
  }
  function periodError(field, text, detail) {
    $(`p-${field}`).setAttribute('aria-invalid', 'true');
    $(`p-${field}-error`).replaceChildren(document.createTextNode(text),
      ...(detail ? [el('span', { class: 'detail', lang: 'en', text: ` (${detail})` })] : []));
    $(`p-${field}`).focus();
  }
  {
    const now = new Date();
    const today = `${now.getFullYear()}-${two(now.getMonth() + 1)}-${two(now.getDate())}`;
    const c = periodChoice || {};
    $('p-month').value = c.month || month();
    $('p-from').value = c.from || `${today.slice(0, 8)}01`;
    $('p-to').value = c.to || today;
    $(c.from ? 'pk-range' : 'pk-month').checked = true;
    pickerKind();
  }
  for (const r of document.querySelectorAll('input[name="period-kind"]')) {
    r.addEventListener('change', () => { pickerKind(); clearPeriodErrors(); });
  }
  $('period-form').addEventListener('submit', async (ev) => {
    ev.preventDefault();
    clearPeriodErrors();
    const choice = pickerKind() === 'month' ? { month: $('p-month').value } : { from: $('p-from').value, to: $('p-to').value };
    if (choice.month === '') { periodError('month', t('p_need_month')); return; }
    for (const f of ['from', 'to']) if (choice[f] === '') { periodError(f, t('p_need')); return; }
    const path = periodPath(place(), choice);
    try {
      const v = await api(path);
      periodChoice = choice;
      sessionStorage.setItem(PERIOD_KEY, JSON.stringify(choice));
      periodData = { path, v };
      render();
    } catch (e) {
      if (e.message === 'sign_in_required') return;
      const field = e.body && e.body.field;
      if (e.status === 400 && ['month', 'from', 'to'].includes(field)) periodError(field, t(`p_err_${field}`), e.message);
      else $('p-message').textContent = t('p_err_other', { m: e.body && e.body.field ? `${e.body.field}: ${e.message}` : e.message });
    }
  });

  const STEPS = ['received', 'rectified', 'visited', 'closed'];
  let shownFollowUps = '';
  function renderFollowUps(v, hall) {
    const list = (v.follow_ups || []).filter((f) => !hall || f.hall_id === hall);
    const key = JSON.stringify([lang, list]);
    // Not while someone is entering a step, nor when nothing changed.
    if (key === shownFollowUps || $('follow-ups').contains(document.activeElement)) return;
    shownFollowUps = key;
    $('fu-count').textContent = list.length ? String(list.length) : '';
    $('follow-ups').replaceChildren(...(list.length ? list.map((f) => {
      const li = el('li', { 'data-follow-up': `${f.controller_id}/${f.ticket}`, 'data-state': f.state, class: f.overdue ? 'overdue' : '' },
        el('span', { class: 'when', text: f.due_day ? `${t('due')} ${f.due_day}` : '—' }),
        el('strong', { text: f.number }),
        document.createTextNode(`  ${[f.hall_name, f.service, f.level, (f.reasons || []).join('、')].filter(Boolean).join(' · ')}`),
        el('span', { class: 'state', text: t(`fu_${f.state}`) + (f.overdue ? ` · ${t('overdue')}` : '') }));
      if (mayAct()) {
        const next = STEPS[Math.min(STEPS.indexOf(f.state) + 1, STEPS.length - 1)];
        const step = el('select', { class: 'step', 'aria-label': t('state') },
          ...STEPS.map((s) => el('option', { value: s, text: t(`fu_${s}`) })));
        step.value = next;
        const note = el('input', { class: 'note', maxlength: '500', placeholder: t('note'), 'aria-label': t('note') });
        const msg = el('span', { class: 'message' });
        const send = el('button', { type: 'button', class: 'send-step', text: t('send_step') });
        send.addEventListener('click', async () => {
          msg.className = 'message';
          try {
            await api(`/api/v1/follow-ups/${encodeURIComponent(f.controller_id)}/${f.ticket}/steps`, {
              method: 'POST', body: JSON.stringify({ step: step.value, note: note.value.trim() }),
            });
            msg.className = 'message ok';
            msg.textContent = t('step_sent');
            send.blur();
          } catch (e) {
            msg.textContent = e.body && e.body.field ? `${e.body.field}: ${e.message}` : e.message;
          }
        });
        li.append(el('div', { class: 'step-form' }, step, note, send, msg));
      }
      return li;
    }) : [el('li', { class: 'empty', text: t('none') })]));
  }

  // A push's scope (`region:<code>`, `hall:<id>`, `follow-up:<controller>/<ticket>`) by name.
  function scopeName(scope) {
    const [kind, id] = [scope.slice(0, scope.indexOf(':')), scope.slice(scope.indexOf(':') + 1)];
    if (kind === 'region') {
      const r = (me.regions || []).find((x) => x.code === id);
      return r ? r.name : id;
    }
    if (kind === 'hall') {
      if (last.hall && last.hall.hall.id === id) return last.hall.hall.name;
      const h = last.county && last.county.halls.find((x) => x.id === id);
      return h ? h.name : id;
    }
    return id;
  }

  function renderPushes(list) {
    $('pushes').replaceChildren(...(list.length ? list.slice(0, 20).map((p) => {
      const n = p.targets.length;
      const detail = p.body.message || p.body.text || (p.body.step ? t(`fu_${p.body.step}`) : '');
      const refusedBy = p.targets.filter((x) => x.ok === false);
      const answer = refusedBy.length
        ? el('span', { class: 'answer refused', text: t('refused', { n: refusedBy.length, m: refusedBy.map((x) => x.reason || '').join('；') }) })
        : el('span', { class: 'answer', text: t('answered', { a: p.answered, n }) });
      return el('li', { 'data-push': p.id, 'data-command': p.command, 'data-answered': `${p.answered}/${n}`, 'data-refused': String(p.refused) },
        el('span', { class: 'when', text: clock(p.at) }), el('strong', { text: t(`c_${p.command}`) }),
        document.createTextNode(`  ${[scopeName(p.scope), detail, p.by].filter(Boolean).join(' · ')}`), answer);
    }) : [el('li', { class: 'empty', text: t('none') })]));
  }

  async function push(body) {
    if (!target) return;
    const msg = $('act-message');
    msg.className = 'message';
    msg.textContent = '';
    try {
      const r = await api(target.path, { method: 'POST', body: JSON.stringify(body) });
      msg.className = 'message ok';
      msg.textContent = t('sent_to', { n: r.targets.length });
      refresh();
    } catch (e) {
      msg.textContent = e.body && e.body.field ? `${e.body.field}: ${e.message}` : e.message;
    }
  }
  $('lock').addEventListener('click', () => push({ command: 'lock_kiosk', message: $('lock-message').value.trim() }));
  $('unlock').addEventListener('click', () => push({ command: 'unlock_kiosk' }));
  $('show-notice').addEventListener('click', () => {
    const body = { command: 'show_notice', text: $('notice-text').value.trim() };
    const m = $('notice-minutes').value.trim();
    if (m) body.minutes = Number(m);
    push(body);
  });
  $('clear-notice').addEventListener('click', () => push({ command: 'clear_notice' }));

  function renderRegion(c) {
    $('hall-view').hidden = true;
    $('region-view').hidden = false;
    const code = place().region || c.region;
    const here = c.regions.find((r) => r.code === code) || c.regions.find((r) => r.code === c.region);
    if (!here) return;
    crumbs(regionPath(here.code, c.regions));
    $('region-figures').replaceChildren(
      figure('halls_online', `${here.halls_online}/${here.halls}`, here.halls_online < here.halls),
      figure('waiting', here.waiting),
      figure('windows_open', here.windows_staffed),
      figure('longest_wait', dur(here.longest_wait_secs)),
      figure('open_warnings', here.open_warnings, here.open_warnings > 0),
      figure('device_faults', here.device_faults, here.device_faults > 0),
      figure('backlog', here.backlog),
    );
    const children = c.regions.filter((r) => r.parent === here.code);
    $('regions-panel').hidden = children.length === 0;
    $('regions').tBodies[0].replaceChildren(...children.map((r) => el('tr', {
      class: 'go', 'data-region': r.code, onclick: () => { location.hash = `r/${r.code}`; },
    }, cell(r.name, ''), cell(`${r.halls_online}/${r.halls}`), cell(r.waiting), cell(r.windows_staffed),
    cell(dur(r.longest_wait_secs)), alertCell(r.open_warnings), alertCell(r.device_faults), cell(r.backlog))));
    const names = new Map(c.regions.map((r) => [r.code, r.name]));
    const inside = (h) => {
      for (let r = h.region; r; r = (c.regions.find((x) => x.code === r) || {}).parent) if (r === here.code) return true;
      return false;
    };
    const halls = c.halls.filter(inside).sort((a, b) =>
      b.open_warnings - a.open_warnings || b.longest_wait_secs - a.longest_wait_secs || a.name.localeCompare(b.name));
    $('halls').tBodies[0].replaceChildren(...halls.map((h) => el('tr', {
      class: 'go', 'data-hall': h.id, onclick: () => { location.hash = `h/${h.id}`; },
    }, cell(h.name, ''), cell(names.get(h.region) || '', ''), el('td', {}, badge(linkState(h))),
    cell(h.waiting), cell(h.windows_staffed), cell(dur(h.longest_wait_secs)), alertCell(h.open_warnings),
    alertCell(h.device_faults), cell(h.backlog))));
  }

  function renderHall(d) {
    $('region-view').hidden = true;
    $('hall-view').hidden = false;
    const h = d.hall;
    crumbs(d.path);
    const nav = $('crumbs');
    nav.append(el('span', { class: 'sep', text: '›' }), el('span', { text: h.name }));
    $('hall-name').textContent = h.name;
    $('hall-link').replaceWith(Object.assign(badge(linkState(h)), { id: 'hall-link' }));
    const banners = [];
    if (d.kiosk && d.kiosk.locked) banners.push(el('div', { class: 'banner locked', text: t('kiosk_locked', { m: d.kiosk.message || '' }) }));
    if (d.notice && d.notice.text) banners.push(el('div', { class: 'banner notice', text: t('notice', { m: d.notice.text }) }));
    $('hall-banners').replaceChildren(...banners);
    $('hall-figures').replaceChildren(
      figure('waiting', h.waiting),
      figure('windows_open', h.windows_staffed),
      figure('longest_wait', dur(h.longest_wait_secs)),
      figure('open_warnings', h.open_warnings, h.open_warnings > 0),
      figure('device_faults', h.device_faults, h.device_faults > 0),
      figure('backlog', h.backlog),
    );
    const now = Date.now();
    $('windows').tBodies[0].replaceChildren(...d.windows.map((w) => {
      const since = w.current ? w.current.since : w.paused ? w.paused.since : w.staff ? w.staff.since : null;
      return el('tr', { 'data-window': w.number, 'data-state': w.state },
        cell(w.name ? `${w.number} · ${w.name}` : t('window_n', { n: w.number }), ''),
        el('td', { class: `st-${w.state}`, text: t(`st_${w.state}`) + (w.paused && w.paused.reason ? `（${w.paused.reason}）` : '') }),
        cell(w.staff ? w.staff.id : '—', ''),
        cell(w.current ? w.current.number : '—', 'ticket'),
        cell(since ? dur(Math.floor((now - since) / 1000)) : '—'),
        cell((w.services || []).join(' '), ''));
    }));
    $('services').tBodies[0].replaceChildren(...d.services.map((s) => el('tr', { 'data-service': s.code },
      cell(name3(s.name, s.code), ''), cell(s.waiting), cell(s.issued), cell(s.open_windows),
      cell(dur(s.longest_wait_secs)), cell(s.estimated_wait_minutes == null ? '—' : t('minutes', { n: s.estimated_wait_minutes }))))); 
    $('warn-count').textContent = d.warnings.length ? String(d.warnings.length) : '';
    $('warnings').replaceChildren(...(d.warnings.length ? d.warnings.map((w) => {
      const x = w.detail || {};
      const where = [x.window ? t('window_n', { n: x.window }) : null, x.service, x.number, x.device, x.code]
        .filter(Boolean).join(' · ');
      const li = el('li', { 'data-warning': `${w.controller_id}/${w.seq}`, 'data-type': w.type },
        el('span', { class: 'when', text: clock(w.at) }), el('strong', { text: t(`w_${w.type}`) }),
        document.createTextNode(where ? `  ${where}` : ''));
      if (w.escalated_at) { li.classList.add('escalated'); li.dataset.escalated = t('escalated'); }
      return li;
    }) : [el('li', { class: 'empty', text: t('none') })]));
    const faulty = d.devices.filter((x) => !x.health || x.health.state !== 'ok');
    $('devices').replaceChildren(...(faulty.length ? faulty.map((x) => el('li', { 'data-device': x.device },
      el('span', { class: 'when', text: clock(x.since) }), el('strong', { text: x.device }),
      document.createTextNode(`  ${x.health ? x.health.state : ''}`))) : [el('li', { class: 'empty', text: t('none') })]));
    $('controllers').tBodies[0].replaceChildren(...d.controllers.map((c) => el('tr', { 'data-controller': c.controller_id },
      cell(c.controller_id, ''), el('td', {}, badge(c.status === 'online' ? 'online' : 'offline')),
      cell(clock(c.at), ''), cell(c.backlog ? c.backlog.undelivered : '—'), cell(c.config_version == null ? '—' : c.config_version),
      cell(c.version || '—', ''))));
  }

  // ---- The setup editor (排队配置) ------------------------------------------------------
  // A hall's queue setup in force, as its controllers publish it (GET
  // /api/v1/halls/{id}/setup), edited here and pushed to the hall or to every hall of a
  // region (POST …/pushes, command "setup"; the server gives each controller the next
  // version). The server reads it with the controllers' own rules and names the key of a
  // mistake (queue.services[1].prefix): the message shows next to that field. Each
  // controller's answer and the version in force come back below it. A viewer sees the
  // setup read-only, without the push buttons.
  Object.assign(T, {
    su_title: ['排队配置', '排隊配置', 'Queue setup'],
    su_none: ['本大厅的控制器尚未上报配置', '本大廳的控制器尚未上報配置', 'No controller of this hall has reported its setup yet'],
    su_version: ['生效版本 {v}', '生效版本 {v}', 'version {v} in force'],
    su_file: ['控制器本地配置', '控制器本地配置', "the controller's own file"],
    su_changed: ['大厅的配置已更新，您的修改基于旧版本', '大廳的配置已更新，您的修改基於舊版本', 'The setup in force has changed since you started editing'],
    su_reload: ['载入最新配置', '載入最新配置', 'Load the latest'],
    su_rules: ['叫号规则', '叫號規則', 'Calling rules'],
    su_hours: ['办公时间', '辦公時間', 'Opening hours'],
    su_recall_limit: ['重呼次数上限', '重呼次數上限', 'Recalls allowed'],
    su_no_show: ['过号处理', '過號處理', 'No-show'],
    su_ns_requeue_once: ['首次过号重新排队', '首次過號重新排隊', 'Back of the queue once'],
    su_ns_drop: ['过号作废', '過號作廢', 'The ticket ends'],
    su_per_citizen: ['每人每日取号上限', '每人每日取號上限', 'Tickets per citizen a day'],
    su_pause_alarm: ['暂停预警（分钟）', '暫停預警（分鐘）', 'Pause warning (min)'],
    su_unmanned_alarm: ['空岗预警（分钟）', '空崗預警（分鐘）', 'Unmanned warning (min)'],
    su_weekdays: ['工作日', '工作日', 'Weekdays'],
    su_saturday: ['周六', '週六', 'Saturday'],
    su_sunday: ['周日', '週日', 'Sunday'],
    su_hours_hint: ['如 09:00-12:00, 13:30-17:30', '如 09:00-12:00, 13:30-17:30', 'e.g. 09:00-12:00, 13:30-17:30'],
    su_holidays: ['节假日', '節假日', 'Holidays'],
    su_workdays: ['调休工作日', '調休工作日', 'Make-up working days'],
    su_dates_hint: ['如 2026-10-01, 2026-10-02', '如 2026-10-01, 2026-10-02', 'e.g. 2026-10-01, 2026-10-02'],
    su_stop_before: ['闭厅前停止取号（分钟）', '閉廳前停止取號（分鐘）', 'Stop issuing before closing (min)'],
    su_always_open: ['全天开放', '全天開放', 'Always open'],
    su_code: ['事项编码', '事項編碼', 'Code'],
    su_prefix: ['号码字头', '號碼字頭', 'Prefix'],
    su_name_zh_cn: ['名称（简体）', '名稱（簡體）', 'Name (Simplified)'],
    su_name_zh_tw: ['名称（繁體）', '名稱（繁體）', 'Name (Traditional)'],
    su_name_en: ['名称（英文）', '名稱（英文）', 'Name (English)'],
    su_department: ['部门', '部門', 'Department'],
    su_daily_cap: ['每日限号', '每日限號', 'Daily cap'],
    su_quota_minutes: ['分时段（分钟）', '分時段（分鐘）', 'Quota slice (min)'],
    su_quota_max: ['每时段限号', '每時段限號', 'Tickets per slice'],
    su_wait_alarm: ['等候预警（分钟）', '等候預警（分鐘）', 'Wait warning (min)'],
    su_queue_alarm: ['排队预警（人）', '排隊預警（人）', 'Queue warning (people)'],
    su_time_limit: ['办理时限（分钟）', '辦理時限（分鐘）', 'Service time limit (min)'],
    su_expected: ['预计办理（分钟）', '預計辦理（分鐘）', 'Usual service time (min)'],
    su_cap_n: ['每日限号 {n}', '每日限號 {n}', '{n} a day'],
    su_quota_n: ['每 {m} 分钟 {n} 号', '每 {m} 分鐘 {n} 號', '{n} per {m} min'],
    su_add_service: ['添加事项', '新增事項', 'Add a service'],
    su_remove_service: ['删除事项 {c}', '刪除事項 {c}', 'Remove service {c}'],
    su_number: ['窗口号', '窗口號', 'Number'],
    su_w_name: ['窗口名称', '窗口名稱', 'Name'],
    su_kind: ['类型', '類型', 'Kind'],
    su_k_resident: ['常驻窗口', '常駐窗口', 'Resident'],
    su_k_comprehensive: ['综合窗口', '綜合窗口', 'Comprehensive'],
    su_location: ['位置', '位置', 'Location'],
    su_green: ['绿色通道', '綠色通道', 'Green channel'],
    su_w_open: ['办公时间内应有人值守', '辦公時間內應有人值守', 'Staffed in office hours'],
    su_serves: ['办理事项', '辦理事項', 'Serves'],
    su_add_window: ['添加窗口', '新增窗口', 'Add a window'],
    su_remove_window: ['删除 {n} 号窗口', '刪除 {n} 號窗口', 'Remove window {n}'],
    su_push_hall: ['推送到本大厅', '推送到本大廳', 'Push to this hall'],
    su_region: ['区域', '區域', 'Region'],
    su_push_region: ['推送到{r}全部大厅', '推送到{r}全部大廳', 'Push to every hall of {r}'],
    su_discard: ['放弃修改', '放棄修改', 'Discard changes'],
    su_bad: ['配置有误：{k}：{m}', '配置有誤：{k}：{m}', 'Not valid: {k}: {m}'],
    su_pushed: ['已下发到 {n} 台控制器（版本 {v}），执行结果见下表', '已下發到 {n} 台控制器（版本 {v}），執行結果見下表', 'Sent to {n} controller(s) (version {v}); their answers are below'],
    su_answers: ['各控制器的配置', '各控制器的配置', 'At each controller'],
    su_in_force: ['生效版本', '生效版本', 'In force'],
    su_sent: ['下发版本', '下發版本', 'Sent'],
    su_answer: ['执行结果', '執行結果', 'Answer'],
    su_a_pending: ['等待执行', '等待執行', 'waiting'],
    su_a_ok: ['已生效', '已生效', 'applied'],
    su_a_refused: ['拒绝：{m}', '拒絕：{m}', 'refused: {m}'],
  });

  // The editor's state: the hall, what the server last said, the setup the edit started
  // from (`base`), the edited queue (`draft`) and guides, and whether it was changed.
  const su = { hall: null, data: null, loadedAt: 0, loading: false, base: null, draft: null, guide: null, dirty: false, rev: 0, built: '', error: null, open: new WeakSet() };
  const clone = (x) => JSON.parse(JSON.stringify(x));
  // A path under the queue (['services', 1, 'prefix']) as the server names it.
  const keyOf = (path) => `queue${path.map((k) => (typeof k === 'number' ? `[${k}]` : `.${k}`)).join('')}`;
  const getAt = (o, path) => path.reduce((x, k) => (x == null ? undefined : x[k]), o);
  const setAt = (o, path, v) => {
    let x = o;
    for (const k of path.slice(0, -1)) {
      if (x[k] == null || typeof x[k] !== 'object') x[k] = {};
      x = x[k];
    }
    if (v === undefined) delete x[path[path.length - 1]];
    else x[path[path.length - 1]] = v;
  };
  const splitList = (v) => v.split(/[,，;；\s]+/).filter(Boolean);
  // A whole number typed, or the text as typed (the server names what is wrong with it);
  // nothing when empty.
  const wholeOrText = (v) => {
    const s = v.trim();
    if (s === '') return undefined;
    return /^-?\d+$/.test(s) ? Number(s) : s;
  };

  async function loadSetup(hall) {
    su.loading = true;
    try {
      su.data = await api(`/api/v1/halls/${encodeURIComponent(hall)}/setup`);
    } catch (e) {
      if (e.status === 404 && e.body && e.body.field === 'setup') su.data = { setups: [] };
    } finally {
      su.loading = false;
      su.loadedAt = Date.now();
    }
    if (su.hall === hall && last && last.hall) renderSetupNow();
  }

  function renderSetup() {
    const p = place();
    if (!p.hall || !last || !last.hall) return;
    if (su.hall !== p.hall || su.login !== me.account.login) {
      Object.assign(su, { hall: p.hall, login: me.account.login, data: null, loadedAt: 0, base: null, draft: null, guide: null, dirty: false, built: '', error: null });
      $('su-message').textContent = '';
    }
    if (!su.loading && Date.now() - su.loadedAt > 4000) loadSetup(p.hall);
    renderSetupNow();
  }

  function renderSetupNow() {
    const setups = su.data ? su.data.setups : null;
    const first = setups && setups[0];
    $('su-none').hidden = !setups || Boolean(first);
    $('su-form').hidden = !first;
    if (first) {
      // The edit starts from the newest version in force among the hall's controllers.
      const changed = !su.base || su.base.version !== first.version
        || JSON.stringify(su.base.queue) !== JSON.stringify(first.queue);
      if (changed && !su.dirty) {
        su.base = clone(first);
        su.draft = clone(first.queue);
        su.guide = first.guide ? clone(first.guide) : null;
        su.rev += 1;
        su.error = null;
      }
      $('su-changed').hidden = !(changed && su.dirty);
      $('su-version').textContent = `· ${su.base.version == null ? t('su_file') : t('su_version', { v: su.base.version })}`;
      $('su-version').dataset.version = su.base.version == null ? '' : String(su.base.version);
      const key = `${lang}|${mayAct()}|${su.rev}`;
      if (su.built !== key) {
        su.built = key;
        buildSetupForm();
      }
    } else {
      $('su-changed').hidden = true;
      $('su-version').textContent = '';
    }
    renderSetupAnswers();
  }

  // One labelled control bound to the draft at `path`, with the place for its error.
  // `kind`: text, whole (a whole number, empty leaves it out), list (comma separated),
  // check, or select with `options` [[value, label key]].
  function suField(path, labelKey, kind = 'text', extra = {}) {
    const key = keyOf(path);
    const id = `su-${key.replace(/[^A-Za-z0-9]+/g, '-')}`;
    const cur = getAt(su.draft, path);
    let input;
    if (kind === 'select') {
      input = el('select', { id }, ...extra.options.map(([v, k]) => el('option', { value: v, text: t(k) })));
      input.value = cur == null ? extra.options[0][0] : cur;
    } else if (kind === 'check') {
      input = el('input', { id, type: 'checkbox' });
      input.checked = cur == null ? Boolean(extra.default) : Boolean(cur);
    } else {
      input = el('input', { id, type: 'text' });
      if (kind === 'whole') input.setAttribute('inputmode', 'numeric');
      if (extra.hint) input.setAttribute('placeholder', t(extra.hint));
      if (extra.max) input.setAttribute('maxlength', String(extra.max));
      input.value = cur == null ? '' : kind === 'list' ? cur.join(', ') : String(cur);
    }
    input.dataset.key = key;
    const read = () => {
      if (kind === 'check') return input.checked;
      if (kind === 'select') return input.value;
      if (kind === 'whole') return wholeOrText(input.value);
      if (kind === 'list') return splitList(input.value);
      return input.value.trim();
    };
    input.addEventListener(kind === 'check' || kind === 'select' ? 'change' : 'input', () => {
      setAt(su.draft, path, read());
      su.dirty = true;
      clearFieldError(input);
      if (extra.onchange) extra.onchange(input);
    });
    if (extra.oncommit) input.addEventListener('change', () => extra.oncommit(input));
    const error = el('span', { class: 'field-error', id: `${id}-error` });
    const label = el('label', { for: id, text: t(labelKey) });
    return el('div', { class: kind === 'check' ? 'su-field check' : 'su-field' },
      ...(kind === 'check' ? [input, label] : [label, input]), error);
  }

  function clearFieldError(input) {
    input.removeAttribute('aria-invalid');
    input.removeAttribute('aria-describedby');
    const e = document.getElementById(`${input.id}-error`);
    if (e) e.textContent = '';
  }

  // Shows the server's message next to the field it names: the one whose key is the
  // longest start of it (queue.calendar.weekdays[1] → the weekdays field), else the first
  // inside it (queue.services[0].quota → its slice); focus goes there when `focus`.
  function showSetupError(field, message, focus = true) {
    const inputs = [...$('su-form').querySelectorAll('[data-key]')];
    const starts = (k, of) => of === k || of.startsWith(`${k}.`) || of.startsWith(`${k}[`);
    let best = null;
    for (const i of inputs) if (starts(i.dataset.key, field) && (!best || i.dataset.key.length > best.dataset.key.length)) best = i;
    if (!best) best = inputs.find((i) => starts(field, i.dataset.key)) || null;
    if (!best) return false;
    const box = best.closest('details');
    if (box) box.open = true;
    best.setAttribute('aria-invalid', 'true');
    best.setAttribute('aria-describedby', `${best.id}-error`);
    document.getElementById(`${best.id}-error`).textContent = message;
    if (focus) best.focus();
    return true;
  }

  function buildSetupForm() {
    const q = su.draft;
    $('su-fields').disabled = !mayAct();
    const rules = [
      suField(['recall_limit'], 'su_recall_limit', 'whole'),
      suField(['no_show'], 'su_no_show', 'select', { options: [['requeue_once', 'su_ns_requeue_once'], ['drop', 'su_ns_drop']] }),
      suField(['per_citizen_daily_limit'], 'su_per_citizen', 'whole'),
      suField(['pause_alarm_minutes'], 'su_pause_alarm', 'whole'),
      suField(['unmanned_alarm_minutes'], 'su_unmanned_alarm', 'whole'),
    ];
    $('su-rules').replaceChildren(el('legend', { text: t('su_rules') }), el('div', { class: 'su-grid' }, ...rules));
    const hours = [
      suField(['calendar', 'weekdays'], 'su_weekdays', 'list', { hint: 'su_hours_hint' }),
      suField(['calendar', 'saturday'], 'su_saturday', 'list', { hint: 'su_hours_hint' }),
      suField(['calendar', 'sunday'], 'su_sunday', 'list', { hint: 'su_hours_hint' }),
      suField(['calendar', 'holidays'], 'su_holidays', 'list', { hint: 'su_dates_hint' }),
      suField(['calendar', 'workdays'], 'su_workdays', 'list', { hint: 'su_dates_hint' }),
      suField(['calendar', 'stop_issuing_minutes_before_close'], 'su_stop_before', 'whole'),
      suField(['calendar', 'always_open'], 'su_always_open', 'check'),
    ];
    $('su-hours').replaceChildren(el('legend', { text: t('su_hours') }), el('div', { class: 'su-grid' }, ...hours));
    const services = (q.services || []).map((s, i) => serviceCard(s, i));
    const addService = el('button', { type: 'button', id: 'su-add-service', class: 'su-add', text: t('su_add_service') });
    addService.addEventListener('click', () => {
      q.services = q.services || [];
      q.services.push({ code: '', prefix: '', name: { 'zh-CN': '', 'zh-TW': '', en: '' }, department: '', expected_minutes: 8 });
      su.open.add(q.services[q.services.length - 1]);
      su.dirty = true;
      rebuildAndFocus(`queue.services[${q.services.length - 1}].code`);
    });
    $('su-service-list').replaceChildren(...services, ...(mayAct() ? [addService] : []));
    buildWindows();
    $('su-actions').replaceChildren(...(mayAct() ? setupActions() : []));
    if (su.error) showSetupError(su.error.field, su.error.message, false);
  }

  // A service or window as a card that opens to edit it, its summary kept up to date;
  // which cards are open survives a rebuild (another language, a card added).
  function card(item, attrs, summary) {
    const sum = el('summary');
    const show = () => sum.replaceChildren(...summary());
    show();
    const box = el('details', { class: 'su-card', ...attrs }, sum);
    box.open = su.open.has(item);
    box.addEventListener('toggle', () => { if (box.open) su.open.add(item); else su.open.delete(item); });
    box.addEventListener('input', show);
    box.addEventListener('change', show);
    return box;
  }
  const facts = (...xs) => el('span', { class: 'muted', text: xs.filter(Boolean).join(' · ') });

  function serviceCard(s, i) {
    const at = (...k) => ['services', i, ...k];
    const box = card(s, { 'data-service': s.code || '' }, () => [
      el('strong', { text: [s.code || '—', s.prefix].filter(Boolean).join(' · ') }),
      document.createTextNode(`  ${name3(s.name, '')}  `),
      facts(s.daily_cap != null && s.daily_cap !== '' ? t('su_cap_n', { n: s.daily_cap }) : '',
        s.quota && s.quota.max != null ? t('su_quota_n', { m: s.quota.minutes, n: s.quota.max }) : ''),
    ]);
    box.append(el('div', { class: 'su-grid' },
      suField(at('code'), 'su_code', 'text', { max: 32, oncommit: (input) => renameService(box, input.value.trim()) }),
      suField(at('prefix'), 'su_prefix', 'text', { max: 3 }),
      suField(at('name', 'zh-CN'), 'su_name_zh_cn'),
      suField(at('name', 'zh-TW'), 'su_name_zh_tw'),
      suField(at('name', 'en'), 'su_name_en'),
      suField(at('department'), 'su_department'),
      suField(at('daily_cap'), 'su_daily_cap', 'whole'),
      suField(at('quota', 'minutes'), 'su_quota_minutes', 'whole'),
      suField(at('quota', 'max'), 'su_quota_max', 'whole'),
      suField(at('wait_alarm_minutes'), 'su_wait_alarm', 'whole'),
      suField(at('queue_alarm'), 'su_queue_alarm', 'whole'),
      suField(at('time_limit_minutes'), 'su_time_limit', 'whole'),
      suField(at('expected_minutes'), 'su_expected', 'whole')));
    if (mayAct()) {
      const remove = el('button', { type: 'button', class: 'su-remove', text: t('su_remove_service', { c: s.code || '' }) });
      remove.addEventListener('click', () => {
        const code = su.draft.services[i].code;
        su.draft.services.splice(i, 1);
        for (const w of su.draft.windows || []) w.services = (w.services || []).filter((x) => x.code !== code);
        su.dirty = true;
        rebuildAndFocus(null, 'su-add-service');
      });
      box.append(remove);
    }
    return box;
  }

  // A service's code changed: the windows that serve it and its guide follow.
  function renameService(box, code) {
    const old = box.dataset.service;
    box.dataset.service = code;
    if (old && old !== code) {
      for (const w of su.draft.windows || []) for (const x of w.services || []) if (x.code === old) x.code = code;
      if (su.guide && su.guide[old] && !su.guide[code]) { su.guide[code] = su.guide[old]; delete su.guide[old]; }
    }
    buildWindows();
  }

  function buildWindows() {
    const q = su.draft;
    const codes = (q.services || []).map((s) => s.code).filter(Boolean);
    const cards = (q.windows || []).map((w, i) => {
      const at = (...k) => ['windows', i, ...k];
      const box = card(w, { 'data-window': String(w.number) }, () => [
        el('strong', { text: t('window_n', { n: w.number }) }),
        document.createTextNode(`  ${[w.name, w.location].filter(Boolean).join(' · ')}  `),
        facts((w.services || []).map((x) => x.code).join(' '), w.green_channel ? t('su_green') : ''),
      ]);
      const serves = el('fieldset', { class: 'su-serves' }, el('legend', { text: t('su_serves') }),
        ...codes.map((code) => {
          const id = `su-w${i}-serves-${code.replace(/[^A-Za-z0-9]+/g, '-')}`;
          const tick = el('input', { id, type: 'checkbox', 'data-serves': code });
          tick.checked = (w.services || []).some((x) => x.code === code);
          tick.addEventListener('change', () => {
            w.services = w.services || [];
            if (tick.checked) { if (!w.services.some((x) => x.code === code)) w.services.push({ code }); }
            else w.services = w.services.filter((x) => x.code !== code);
            su.dirty = true;
          });
          return el('span', { class: 'su-check' }, tick, el('label', { for: id, text: code }));
        }));
      serves.dataset.key = keyOf(at('services'));
      serves.id = `su-${keyOf(at('services')).replace(/[^A-Za-z0-9]+/g, '-')}`;
      serves.tabIndex = -1;
      box.append(el('div', { class: 'su-grid' },
        suField(at('number'), 'su_number', 'whole'),
        suField(at('name'), 'su_w_name'),
        suField(at('kind'), 'su_kind', 'select', { options: [['resident', 'su_k_resident'], ['comprehensive', 'su_k_comprehensive']] }),
        suField(at('location'), 'su_location'),
        suField(at('green_channel'), 'su_green', 'check'),
        suField(at('open'), 'su_w_open', 'check', { default: true })),
      serves, el('span', { class: 'field-error', id: `${serves.id}-error` }));
      if (mayAct()) {
        const remove = el('button', { type: 'button', class: 'su-remove', text: t('su_remove_window', { n: w.number }) });
        remove.addEventListener('click', () => {
          su.draft.windows.splice(i, 1);
          su.dirty = true;
          rebuildAndFocus(null, 'su-add-window');
        });
        box.append(remove);
      }
      return box;
    });
    const add = el('button', { type: 'button', id: 'su-add-window', class: 'su-add', text: t('su_add_window') });
    add.addEventListener('click', () => {
      q.windows = q.windows || [];
      const n = q.windows.reduce((m, w) => Math.max(m, Number(w.number) || 0), 0) + 1;
      q.windows.push({ number: n, name: '', services: [] });
      su.open.add(q.windows[q.windows.length - 1]);
      su.dirty = true;
      rebuildAndFocus(`queue.windows[${q.windows.length - 1}].name`);
    });
    $('su-window-list').replaceChildren(...cards, ...(mayAct() ? [add] : []));
  }

  function rebuildAndFocus(key, id) {
    su.rev += 1;
    su.error = null;
    renderSetupNow();
    const target = key ? $('su-form').querySelector(`[data-key="${key}"]`) : $(id);
    if (target) target.focus();
  }

  // Push to the hall, or to every hall of a region on the way down to it (the caller's own
  // and those below; the hall's own chosen first).
  function setupActions() {
    const path = last.hall.path || [];
    const hall = el('button', { type: 'button', id: 'su-push-hall', class: 'primary', text: t('su_push_hall') });
    hall.addEventListener('click', () => pushSetup(`/api/v1/halls/${encodeURIComponent(su.hall)}/pushes`));
    const toRegion = [];
    if (path.length) {
      const region = el('select', { id: 'su-region' },
        ...path.map((r) => el('option', { value: r.code, text: r.name })));
      region.value = path[path.length - 1].code;
      const button = el('button', { type: 'button', id: 'su-push-region' });
      const name = () => { button.textContent = t('su_push_region', { r: region.selectedOptions[0].textContent }); };
      name();
      region.addEventListener('change', name);
      button.addEventListener('click', () => pushSetup(`/api/v1/regions/${encodeURIComponent(region.value)}/pushes`));
      toRegion.push(el('label', { for: 'su-region', class: 'su-region', text: t('su_region') }), region, button);
    }
    const discard = el('button', { type: 'button', id: 'su-discard', text: t('su_discard') });
    discard.addEventListener('click', () => {
      su.dirty = false;
      su.base = null;
      $('su-message').textContent = '';
      renderSetupNow();
    });
    return [hall, ...toRegion, discard];
  }

  // The draft as pushed: a quota left empty is no quota; the guides of the services kept.
  function setupBody() {
    const queue = clone(su.draft);
    for (const s of queue.services || []) {
      if (s.quota && Object.keys(s.quota).length === 0) delete s.quota;
    }
    const body = { command: 'setup', queue };
    if (su.guide) {
      const codes = new Set((queue.services || []).map((s) => s.code));
      body.guide = Object.fromEntries(Object.entries(su.guide).filter(([c]) => codes.has(c)));
    }
    return body;
  }

  async function pushSetup(path) {
    const msg = $('su-message');
    msg.className = 'message';
    msg.textContent = '';
    for (const i of $('su-form').querySelectorAll('[aria-invalid]')) clearFieldError(i);
    su.error = null;
    try {
      const r = await api(path, { method: 'POST', body: JSON.stringify(setupBody()) });
      su.dirty = false;
      msg.className = 'message ok';
      msg.textContent = t('su_pushed', { n: r.targets.length, v: [...new Set(r.targets.map((x) => x.version))].join(', ') });
      refresh();
    } catch (e) {
      const b = e.body || {};
      if (b.field) {
        su.error = { field: b.field, message: b.message };
        msg.textContent = t('su_bad', { k: b.field, m: b.message });
        showSetupError(b.field, b.message);
      } else {
        msg.textContent = e.message;
      }
    }
  }

  // Each controller of the hall: the version in force it published, the last setup sent
  // to it and its answer.
  function renderSetupAnswers() {
    const setups = (su.data && su.data.setups) || [];
    const ids = [...new Set([...setups.map((x) => x.controller_id), ...(last.hall.controllers || []).map((c) => c.controller_id)])].sort();
    const sent = ((more.pushes && more.pushes.pushes) || []).filter((p) => p.command === 'setup');
    $('su-answers').tBodies[0].replaceChildren(...ids.map((id) => {
      const s = setups.find((x) => x.controller_id === id);
      const push = sent.find((p) => p.targets.some((x) => x.controller_id === id));
      const target = push && push.targets.find((x) => x.controller_id === id);
      const answer = !target ? '' : target.ok == null ? 'pending' : target.ok ? 'ok' : 'refused';
      const text = !target ? '—' : answer === 'refused' ? t('su_a_refused', { m: target.reason || '' }) : t(`su_a_${answer}`);
      return el('tr', { 'data-controller': id, 'data-in-force': s && s.version != null ? String(s.version) : '', 'data-sent': target ? String(target.version) : '', 'data-answer': answer },
        cell(id, ''), cell(s ? (s.version == null ? t('su_file') : s.version) : '—'), cell(target ? target.version : '—'),
        el('td', { class: answer === 'refused' ? 'answer refused' : 'answer', text }));
    }));
  }
  $('su-form').addEventListener('submit', (ev) => ev.preventDefault());
  $('su-reload').addEventListener('click', () => {
    su.dirty = false;
    su.base = null;
    renderSetupNow();
  });
  // ---- end of the setup editor ----------------------------------------------------------

  applyLang();
  if (token) signedIn().catch(() => signedOut());
  else signedOut();
})();
