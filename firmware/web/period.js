// hallq period figures (统计分析): what the supervision page's period section and the
// printable monthly report (/supervision/report, 月通报) share. It reads
// GET /api/v1/supervision/period?<period> (day=, week=, month= or from=&to=) and builds
// the hall's figures, the tables per window, service, department, member of staff, hour
// and day (sortable by a click on a column's header), the bad ratings with their
// reasons, the charts (charts.js), and one CSV download per table
// (GET /api/v1/supervision/period.csv?<period>&table=…, fetched with the bearer token).
// `HQP.mount()` runs the supervision page's section: the period picker (day, ISO week,
// month, range; the current month first) and its tab beside today's dashboard.
'use strict';

const HQP = (() => {
  const { t, el, api, errorText } = HQ;

  // [zh-CN, zh-TW, en]
  HQ.addTexts({
    tab_today: ['今日监察', '今日監察', 'Today'],
    tab_period: ['统计分析', '統計分析', 'Period figures'],
    p_kind_day: ['日', '日', 'Day'],
    p_kind_week: ['周', '週', 'Week'],
    p_kind_month: ['月', '月', 'Month'],
    p_kind_range: ['时段', '時段', 'Range'],
    p_from: ['自', '自', 'from'],
    p_to: ['至', '至', 'to'],
    p_load: ['查询', '查詢', 'Show'],
    p_report: ['月通报（打印）', '月通報（列印）', 'Monthly report (print)'],
    p_period: ['{from} 至 {to}', '{from} 至 {to}', '{from} to {to}'],
    p_elapsed: ['{n} 毫秒', '{n} 毫秒', '{n} ms'],
    p_loading: ['正在统计…', '正在統計…', 'Counting…'],
    p_need_range: ['请选择起止日期', '請選擇起止日期', 'Choose both days of the range'],
    p_none: ['该时段无数据', '該時段無數據', 'No data in this period'],
    p_hall: ['全厅', '全廳', 'Whole hall'],
    p_windows: ['窗口', '窗口', 'Windows'],
    p_services: ['事项', '事項', 'Services'],
    p_departments: ['部门', '部門', 'Departments'],
    p_staff: ['工作人员', '工作人員', 'Staff'],
    p_hours: ['按时段', '按時段', 'By hour of day'],
    p_days: ['按日', '按日', 'By day'],
    p_bad_ratings: ['差评明细', '差評明細', 'Bad ratings'],
    p_levels: ['评价分布', '評價分佈', 'Ratings by level'],
    p_bad_reasons: ['差评原因', '差評原因', 'Reasons given'],
    p_charts: ['图表', '圖表', 'Charts'],
    p_tables_more: ['按时段、按日明细', '按時段、按日明細', 'Per hour and per day'],
    p_csv: ['CSV', 'CSV', 'CSV'],
    p_csv_label: ['下载{table} CSV', '下載{table} CSV', 'Download {table} as CSV'],
    c_window: ['窗口', '窗口', 'Window'],
    c_staff_id: ['工号', '工號', 'Staff id'],
    c_code: ['编码', '編碼', 'Code'],
    c_department: ['部门', '部門', 'Department'],
    c_hour: ['时段', '時段', 'Hour'],
    c_day: ['日期', '日期', 'Day'],
    c_name: ['名称', '名稱', 'Name'],
    c_issued: ['取号', '取號', 'Issued'],
    c_called: ['呼叫', '呼叫', 'Called'],
    c_served: ['办结', '辦結', 'Served'],
    c_no_shows: ['过号', '過號', 'No-shows'],
    c_transfers: ['转移', '轉移', 'Transfers'],
    c_avg_wait: ['平均等候', '平均等候', 'Avg wait'],
    c_max_wait: ['最长等候', '最長等候', 'Longest wait'],
    c_avg_service: ['平均办理', '平均辦理', 'Avg service'],
    c_max_service: ['最长办理', '最長辦理', 'Longest service'],
    c_over_limit: ['办理超时', '辦理超時', 'Over limit'],
    c_pauses: ['暂停', '暫停', 'Pauses'],
    c_pause_secs: ['暂停时长', '暫停時長', 'Paused'],
    c_signed_in: ['在岗时长', '在崗時長', 'Signed in'],
    c_rated: ['评价', '評價', 'Rated'],
    c_satisfaction: ['满意率', '滿意率', 'Satisfaction'],
    c_bad: ['差评', '差評', 'Bad'],
    c_warnings: ['预警 处理/产生', '預警 處理/產生', 'Warnings handled/raised'],
    c_time: ['时间', '時間', 'Time'],
    c_number: ['号码', '號碼', 'Number'],
    c_level: ['评价', '評價', 'Rating'],
    c_reasons: ['原因', '原因', 'Reasons'],
    c_comment: ['意见', '意見', 'Comment'],
    ch_hours: ['各时段取号人数与平均等候', '各時段取號人數與平均等候', 'Tickets taken and average wait by hour of day'],
    ch_ratings: ['好差评按日分布', '好差評按日分佈', 'Ratings by level, per day'],
    ch_staff: ['工作人员办结量', '工作人員辦結量', 'Served per member of staff'],
    ch_issued: ['取号人数', '取號人數', 'Tickets taken'],
    ch_wait: ['平均等候（分钟）', '平均等候（分鐘）', 'Average wait (min)'],
    ch_count: ['评价数', '評價數', 'Ratings'],
    p_colon: ['：', '：', ': '],
  });

  /** The period API names levels in English; the pages show the standard's names. */
  const LEVEL_NAME = {
    very_satisfied: '非常满意', satisfied: '满意', basically_satisfied: '基本满意', dissatisfied: '不满意', very_dissatisfied: '非常不满意',
  };
  const LEVEL_KEYS = Object.keys(LEVEL_NAME);
  const levelText = (l) => t('lv_' + (LEVEL_NAME[l] || l));

  // ----- formats -----------------------------------------------------------------
  const none = (v) => v === null || v === undefined;
  const count = (n) => (none(n) ? '—' : String(n));
  /** Waits and service times: m:ss (h:mm:ss past an hour). */
  const dur = (secs) => (none(secs) ? '—' : HQ.duration(secs));
  /** Long spans (time signed in, paused): h:mm. */
  function hm(secs) {
    if (none(secs)) return '—';
    const m = Math.round(secs / 60);
    return Math.floor(m / 60) + ':' + String(m % 60).padStart(2, '0');
  }
  const pct = (x) => (none(x) ? '—' : (x * 100).toFixed(1) + '%');
  const warnings = (r) => (r.warnings_handled ?? 0) + '/' + (r.warnings ?? 0);

  /** Every column a table may have: its header, its sort value and its text. */
  const COLUMNS = {
    issued: ['c_issued', (r) => r.issued, (r) => count(r.issued)],
    called: ['c_called', (r) => r.called, (r) => count(r.called)],
    served: ['c_served', (r) => r.served, (r) => count(r.served)],
    no_shows: ['c_no_shows', (r) => r.no_shows, (r) => count(r.no_shows)],
    transfers: ['c_transfers', (r) => r.transfers, (r) => count(r.transfers)],
    avg_wait: ['c_avg_wait', (r) => r.avg_wait_secs, (r) => dur(r.avg_wait_secs)],
    max_wait: ['c_max_wait', (r) => r.max_wait_secs, (r) => dur(r.max_wait_secs)],
    avg_service: ['c_avg_service', (r) => r.avg_service_secs, (r) => dur(r.avg_service_secs)],
    max_service: ['c_max_service', (r) => r.max_service_secs, (r) => dur(r.max_service_secs)],
    over_limit: ['c_over_limit', (r) => r.over_limit, (r) => count(r.over_limit)],
    pauses: ['c_pauses', (r) => r.pauses, (r) => count(r.pauses)],
    pause_secs: ['c_pause_secs', (r) => r.pause_secs, (r) => hm(r.pause_secs)],
    signed_in: ['c_signed_in', (r) => r.signed_in_secs, (r) => hm(r.signed_in_secs)],
    rated: ['c_rated', (r) => r.rated, (r) => count(r.rated)],
    satisfaction: ['c_satisfaction', (r) => r.satisfaction, (r) => pct(r.satisfaction)],
    bad: ['c_bad', (r) => r.bad, (r) => count(r.bad)],
    warnings: ['c_warnings', (r) => r.warnings, warnings],
  };
  for (const l of LEVEL_KEYS) {
    COLUMNS[l] = [null, (r) => (r.ratings || {})[l] || 0, (r) => count((r.ratings || {})[l] || 0), () => levelText(l)];
  }

  const SERVED = ['served', 'no_shows', 'transfers', 'avg_wait', 'max_wait', 'avg_service', 'max_service', 'over_limit'];
  const RATED = ['rated', ...LEVEL_KEYS, 'satisfaction', 'bad', 'warnings'];
  const AT_WINDOW = ['called', ...SERVED, 'pauses', 'pause_secs', 'signed_in', ...RATED];
  /** The tables: the key column's header, whether a name (and department) follows, the columns. */
  const TABLES = {
    windows: { title: 'p_windows', key: 'c_window', name: true, cols: AT_WINDOW },
    staff: { title: 'p_staff', key: 'c_staff_id', name: true, cols: AT_WINDOW },
    services: { title: 'p_services', key: 'c_code', name: true, dept: true, cols: ['issued', ...SERVED, ...RATED] },
    departments: { title: 'p_departments', key: 'c_department', cols: ['issued', ...SERVED, ...RATED] },
    hours: { title: 'p_hours', key: 'c_hour', cols: ['issued', 'avg_wait', 'max_wait'] },
    days: { title: 'p_days', key: 'c_day', cols: ['issued', 'served', 'no_shows', 'avg_wait', 'max_wait', 'avg_service', 'rated', 'satisfaction', 'bad', 'warnings'] },
  };
  /** The monthly report's appraisal columns (考核): what halls rank windows and staff by. */
  const APPRAISAL = ['called', 'served', 'avg_wait', 'avg_service', 'rated', 'satisfaction', 'bad', 'warnings', 'signed_in'];

  function cell(id, r) {
    const [, value, text] = COLUMNS[id];
    const v = value(r);
    return el('td', { class: 'num', 'data-col': id, 'data-value': none(v) ? '' : v }, text(r));
  }

  function header(id) {
    const c = COLUMNS[id];
    return c[0] ? t(c[0]) : c[3]();
  }

  /** Sorts the table's rows by the clicked column; a second click reverses the order. */
  function sortable(table) {
    table.querySelectorAll('thead th').forEach((th, i) => {
      th.tabIndex = 0;
      const go = () => {
        const desc = th.getAttribute('aria-sort') !== 'descending';
        table.querySelectorAll('thead th').forEach((h) => h.removeAttribute('aria-sort'));
        th.setAttribute('aria-sort', desc ? 'descending' : 'ascending');
        const body = table.tBodies[0];
        const rows = [...body.rows];
        const val = (tr) => {
          const c = tr.cells[i];
          const v = c.dataset.value ?? c.textContent;
          return v !== '' && !Number.isNaN(Number(v)) ? Number(v) : v;
        };
        rows.sort((a, b) => {
          const x = val(a);
          const y = val(b);
          const o = typeof x === 'number' && typeof y === 'number' ? x - y : String(x).localeCompare(String(y), 'zh-CN');
          return desc ? -o : o;
        });
        body.append(...rows);
      };
      th.addEventListener('click', go);
      th.addEventListener('keydown', (e) => { if (e.key === 'Enter' || e.key === ' ') { e.preventDefault(); go(); } });
    });
  }

  /** One of the figure tables (`kind` of TABLES), its columns `cols` or the table's own. */
  function table(kind, rows, cols) {
    const spec = TABLES[kind];
    cols = cols || spec.cols;
    const head = [el('th', { 'data-col': 'key' }, t(spec.key))];
    if (spec.name) head.push(el('th', { 'data-col': 'name' }, t('c_name')));
    if (spec.dept) head.push(el('th', { 'data-col': 'department' }, t('c_department')));
    head.push(...cols.map((id) => el('th', { class: 'num', 'data-col': id }, header(id))));
    const body = rows.map((r) => {
      const tds = [el('td', { 'data-col': 'key', 'data-value': r.key }, r.key)];
      if (spec.name) tds.push(el('td', { 'data-col': 'name' }, HQ.name(r.name)));
      if (spec.dept) tds.push(el('td', { 'data-col': 'department' }, r.department || ''));
      tds.push(...cols.map((id) => cell(id, r)));
      return el('tr', { 'data-key': r.key }, ...tds);
    });
    const tbl = el('table', { class: 'grid ptable', 'data-table': kind },
      el('thead', {}, el('tr', {}, ...head)),
      el('tbody', {}, ...(body.length ? body : [el('tr', { class: 'none' }, el('td', { colspan: head.length }, t('p_none')))])));
    if (body.length) sortable(tbl);
    return tbl;
  }

  function two(n) { return String(n).padStart(2, '0'); }
  function stamp(ms) {
    const d = new Date(ms);
    return `${d.getFullYear()}-${two(d.getMonth() + 1)}-${two(d.getDate())} ${two(d.getHours())}:${two(d.getMinutes())}`;
  }

  /** The bad ratings, newest first, with their reasons and comments. */
  function badTable(rows, services) {
    const svc = (code) => {
      const s = (services || []).find((x) => x.key === code);
      return s ? HQ.name(s.name) : code || '';
    };
    const head = ['c_time', 'c_number', 'p_services', 'c_window', 'p_staff', 'c_level', 'c_reasons', 'c_comment'];
    const body = rows.map((r) => el('tr', { 'data-ticket': r.ticket, 'data-level': r.level },
      el('td', { 'data-col': 'at', 'data-value': r.at }, r.at ? stamp(r.at) : r.day),
      el('td', { 'data-col': 'number' }, r.number || ''),
      el('td', { 'data-col': 'service' }, svc(r.service)),
      el('td', { 'data-col': 'window', 'data-value': r.window ?? '' }, none(r.window) ? '—' : r.window),
      el('td', { 'data-col': 'staff' }, r.staff ? (r.staff_name ? r.staff_name + ' ' : '') + r.staff : '—'),
      el('td', { 'data-col': 'level', class: 'bad' }, levelText(r.level)),
      el('td', { 'data-col': 'reasons' }, (r.reasons || []).join('、') || '—'),
      el('td', { 'data-col': 'comment' }, r.comment || '')));
    const tbl = el('table', { class: 'grid ptable bad-ratings', 'data-table': 'bad_ratings' },
      el('thead', {}, el('tr', {}, ...head.map((k) => el('th', {}, t(k))))),
      el('tbody', {}, ...(body.length ? body : [el('tr', { class: 'none' }, el('td', { colspan: head.length }, t('p_none')))])));
    if (body.length) sortable(tbl);
    return tbl;
  }

  /** The hall's figures as cards: the figure's key and raw value in data attributes. */
  function figures(f) {
    const list = [
      ['issued', 'c_issued', count(f.issued)], ['served', 'c_served', count(f.served)],
      ['no_shows', 'c_no_shows', count(f.no_shows)], ['transfers', 'c_transfers', count(f.transfers)],
      ['avg_wait_secs', 'c_avg_wait', dur(f.avg_wait_secs)], ['max_wait_secs', 'c_max_wait', dur(f.max_wait_secs)],
      ['avg_service_secs', 'c_avg_service', dur(f.avg_service_secs)], ['max_service_secs', 'c_max_service', dur(f.max_service_secs)],
      ['over_limit', 'c_over_limit', count(f.over_limit)], ['rated', 'c_rated', count(f.rated)],
      ['satisfaction', 'c_satisfaction', pct(f.satisfaction)], ['bad', 'c_bad', count(f.bad)],
      ['warnings', 'c_warnings', warnings(f)], ['pauses', 'c_pauses', count(f.pauses)],
    ];
    return list.map(([k, label, text]) => el('div', { class: 'figure', 'data-figure': k, 'data-value': none(f[k]) ? '' : f[k] },
      el('div', { class: 'label' }, t(label)), el('div', { class: 'value' }, text)));
  }

  /** Ratings per level and the reasons of the bad ones, as one line each. */
  function levels(f) {
    const r = f.ratings || {};
    const reasons = Object.entries(f.bad_reasons || {}).sort((a, b) => b[1] - a[1]);
    return [
      el('p', { class: 'levels' }, el('strong', {}, t('p_levels') + t('p_colon')),
        ...LEVEL_KEYS.map((l) => el('span', { class: 'level', 'data-level': l }, levelText(l) + ' ', el('b', {}, r[l] || 0)))),
      el('p', { class: 'reasons' }, el('strong', {}, t('p_bad_reasons') + t('p_colon')),
        reasons.length ? reasons.map(([k, n]) => k + ' ' + n).join('、') : '—'),
    ];
  }

  /** The three charts, each a <figure> with its caption, the SVG and an HTML legend. */
  function charts(d) {
    const levelsL = Object.fromEntries(LEVEL_KEYS.map((l) => [l, levelText(l)]));
    const fig = (kind, title, svg, legend) => el('figure', { class: 'chart-box', 'data-chart': kind },
      el('figcaption', {}, title), svg, legend || null);
    return [
      fig('hours', t('ch_hours'), HQC.hours(d.hours || [], { title: t('ch_hours'), none: t('p_none'), left: t('ch_issued'), right: t('ch_wait') }),
        HQC.legend([[HQC.COLOURS.issued, t('ch_issued')], [HQC.COLOURS.wait, t('ch_wait'), true]])),
      fig('ratings', t('ch_ratings'), HQC.ratings(d.days || [], { title: t('ch_ratings'), none: t('p_none'), left: t('ch_count'), levels: levelsL }),
        HQC.legend(HQC.LEVELS.map(([l, c]) => [c, levelsL[l]]))),
      fig('staff', t('ch_staff'), HQC.staff(d.staff || [], { title: t('ch_staff'), none: t('p_none') })),
    ];
  }

  /** The period as the API's query: day=…, week=…, month=…, or from=…&to=…. */
  function query(kind, v) {
    if (kind === 'range') return 'from=' + encodeURIComponent(v.from) + '&to=' + encodeURIComponent(v.to);
    return kind + '=' + encodeURIComponent(v[kind]);
  }

  function load(q) {
    return api('GET', '/api/v1/supervision/period?' + q);
  }

  /** Fetches one table's CSV with the bearer token and hands it to the browser as a download. */
  async function download(q, kind) {
    const r = await fetch('/api/v1/supervision/period.csv?' + q + '&table=' + kind,
      { headers: { Authorization: 'Bearer ' + HQ.token(), 'Accept-Language': HQ.lang() }, cache: 'no-store' });
    if (!r.ok) {
      const body = await r.json().catch(() => null);
      const e = (body && body.error) || {};
      throw new HQ.ApiError(r.status, e.code, e.message || r.statusText, e.field);
    }
    const text = await r.text();
    const cd = /filename="([^"]+)"/.exec(r.headers.get('Content-Disposition') || '');
    const name = cd ? cd[1] : 'hallq-' + kind + '.csv';
    document.body.dataset.lastCsv = text;
    document.body.dataset.lastCsvName = name;
    const url = URL.createObjectURL(new Blob(['\ufeff' + text], { type: 'text/csv;charset=utf-8' }));
    const a = el('a', { href: url, download: name });
    document.body.append(a);
    a.click();
    a.remove();
    setTimeout(() => URL.revokeObjectURL(url), 10000);
  }

  /** The ISO week (YYYY-Www) of a day (YYYY-MM-DD). */
  function isoWeek(day) {
    const d = new Date(day + 'T00:00:00Z');
    const dow = (d.getUTCDay() + 6) % 7;
    d.setUTCDate(d.getUTCDate() - dow + 3); // the Thursday of the week names its year
    const year = d.getUTCFullYear();
    const jan4 = new Date(Date.UTC(year, 0, 4));
    const week = 1 + Math.round(((d - jan4) / 86400000 - 3 + ((jan4.getUTCDay() + 6) % 7)) / 7);
    return year + '-W' + two(week);
  }

  function localDay(ms) {
    const d = new Date(ms);
    return `${d.getFullYear()}-${two(d.getMonth() + 1)}-${two(d.getDate())}`;
  }

  // ----- the supervision page's section --------------------------------------------
  /**
   * Runs the period section of /supervision: `opts.today()` gives the hall's day (for
   * the picker's defaults), `opts.onAuth(e)` handles a 401/403.
   */
  function mount(opts) {
    const $ = (id) => document.getElementById(id);
    let current = null; // { q, data }
    let loading = false;

    function kind() {
      const c = document.querySelector('input[name="period-kind"]:checked');
      return c ? c.value : 'month';
    }
    function showInputs() {
      const k = kind();
      for (const x of ['day', 'week', 'month', 'range']) $('p-in-' + x).hidden = x !== k;
    }
    function defaults() {
      const today = opts.today() || localDay(HQ.now());
      if (!$('p-day').value) $('p-day').value = today;
      if (!$('p-week').value) $('p-week').value = isoWeek(today);
      if (!$('p-month').value) $('p-month').value = today.slice(0, 7);
      if (!$('p-from').value) $('p-from').value = today.slice(0, 8) + '01';
      if (!$('p-to').value) $('p-to').value = today;
    }

    function tab(which) {
      const period = which === 'period';
      $('dash').hidden = period;
      $('period').hidden = !period;
      $('tab-today').setAttribute('aria-selected', String(!period));
      $('tab-period').setAttribute('aria-selected', String(period));
      if (period) {
        defaults();
        if (!current) refresh();
      }
      if (location.hash !== (period ? '#period' : '')) history.replaceState(null, '', period ? '#period' : location.pathname + location.search);
    }

    async function refresh(ev) {
      if (ev) ev.preventDefault();
      if (loading) return;
      const k = kind();
      const v = { day: $('p-day').value, week: $('p-week').value, month: $('p-month').value, from: $('p-from').value, to: $('p-to').value };
      $('p-message').textContent = '';
      if (k === 'range' ? !v.from || !v.to : !v[k]) { $('p-message').textContent = t('p_need_range'); return; }
      const q = query(k, v);
      loading = true;
      document.body.dataset.period = 'loading';
      $('p-status').textContent = t('p_loading');
      try {
        const data = await load(q);
        current = { q, data };
        render();
        document.body.dataset.period = q;
      } catch (e) {
        document.body.dataset.period = 'error';
        $('p-status').textContent = '';
        if (e.status === 401 || e.status === 403) { opts.onAuth(e); return; }
        $('p-message').textContent = errorText(e) + (e.field ? ' (' + e.field + ')' : '');
        $('p-message').dataset.field = e.field || '';
      } finally {
        loading = false;
      }
    }

    function render() {
      if (!current) return;
      const d = current.data;
      $('p-status').textContent = t('p_period', { from: d.from, to: d.to }) + ' · ' + t('p_elapsed', { n: d.elapsed_ms });
      $('p-report').href = '/supervision/report?' + current.q;
      $('p-figures').replaceChildren(...figures(d.hall));
      $('p-levels').replaceChildren(...levels(d.hall));
      $('p-charts').replaceChildren(...charts(d));
      for (const kind of Object.keys(TABLES)) $('p-t-' + kind).replaceChildren(table(kind, d[kind] || []));
      $('p-t-bad_ratings').replaceChildren(badTable(d.bad_ratings || [], d.services));
      document.querySelectorAll('#period button.csv').forEach((b) => {
        b.setAttribute('aria-label', t('p_csv_label', { table: t(b.closest('section').querySelector('h2 [data-i18n]').dataset.i18n) }));
      });
    }

    document.querySelectorAll('input[name="period-kind"]').forEach((r) => r.addEventListener('change', showInputs));
    $('p-form').addEventListener('submit', refresh);
    $('tab-today').addEventListener('click', () => tab('today'));
    $('tab-period').addEventListener('click', () => tab('period'));
    document.querySelectorAll('#period button.csv').forEach((b) => b.addEventListener('click', async () => {
      if (!current) return;
      $('p-message').textContent = '';
      try {
        await download(current.q, b.dataset.table);
      } catch (e) {
        if (e.status === 401 || e.status === 403) { opts.onAuth(e); return; }
        $('p-message').textContent = errorText(e);
      }
    }));
    HQ.onLang(render);
    showInputs();
    return {
      /** After sign-in: the tabs, and the tab the address names (#period) or today's. */
      show() {
        $('tabs').hidden = false;
        tab(location.hash === '#period' ? 'period' : 'today');
      },
      /** At sign-out: nothing of the period stays on screen. */
      hide() {
        $('tabs').hidden = true;
        $('period').hidden = true;
        current = null;
        for (const id of ['p-figures', 'p-levels', 'p-charts', 'p-t-bad_ratings', ...Object.keys(TABLES).map((k) => 'p-t-' + k)]) $(id).replaceChildren();
        $('p-status').textContent = '';
      },
    };
  }

  return {
    LEVEL_KEYS, levelText, count, dur, hm, pct, figures, levels, table, badTable, charts, query, load, download,
    isoWeek, localDay, stamp, mount, APPRAISAL,
  };
})();
