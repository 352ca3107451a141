// hallq monthly report (月通报, /supervision/report?month=2026-11; also day=, week=,
// from=&to=): the period's figures laid out for A4 portrait, to print or save as PDF —
// title and period, the hall's figures in a sentence and in numbers, the window and
// staff appraisal tables (考核), the charts, the bad ratings with their reasons, and a
// line to sign. It shares the supervision page's sign-in (the same sessionStorage
// token), so the link from the period section opens it signed in; without a token it
// asks for the supervisor's id and PIN itself.
'use strict';

(() => {
  const { t, api, errorText } = HQ;
  HQ.useToken('hallq.token.supervision');
  const $ = (id) => document.getElementById(id);

  // [zh-CN, zh-TW, en]
  HQ.addTexts({
    r_page: ['月通报', '月通報', 'Monthly report'],
    r_back: ['返回电子监察', '返回電子監察', 'Back to supervision'],
    r_print: ['打印', '列印', 'Print'],
    r_title_month: ['{y}年{m}月窗口服务情况通报', '{y}年{m}月窗口服務情況通報', 'Window service report, {y}-{m}'],
    r_title_period: ['窗口服务情况通报（{from} 至 {to}）', '窗口服務情況通報（{from} 至 {to}）', 'Window service report, {from} to {to}'],
    r_sub: ['{hall} · 统计时段 {from} 至 {to} · 生成于 {t}', '{hall} · 統計時段 {from} 至 {to} · 產生於 {t}', '{hall} · period {from} to {to} · made {t}'],
    r_summary: [
      '本期共取号 {issued} 人次，办结 {served} 件，过号 {no_shows} 个；平均等候 {wait}，平均办理 {service}；评价 {rated} 条，满意率 {sat}，差评 {bad} 条；预警 {warnings} 次，已处理 {handled} 次。',
      '本期共取號 {issued} 人次，辦結 {served} 件，過號 {no_shows} 個；平均等候 {wait}，平均辦理 {service}；評價 {rated} 條，滿意率 {sat}，差評 {bad} 條；預警 {warnings} 次，已處理 {handled} 次。',
      'In this period {issued} tickets were taken and {served} served ({no_shows} no-shows); average wait {wait}, average service {service}; {rated} ratings, satisfaction {sat}, {bad} bad; {warnings} warnings, {handled} handled.',
    ],
    r_h_overview: ['一、总体情况', '一、總體情況', '1. Overview'],
    r_h_windows: ['二、窗口考核', '二、窗口考核', '2. Windows'],
    r_h_staff: ['三、工作人员考核', '三、工作人員考核', '3. Staff'],
    r_h_charts: ['四、图表', '四、圖表', '4. Charts'],
    r_h_bad: ['五、差评及原因', '五、差評及原因', '5. Bad ratings and their reasons'],
    r_made_by: ['制表人：', '製表人：', 'Prepared by: '],
    r_checked_by: ['审核人（签字）：', '審核人（簽字）：', 'Approved (signature): '],
    r_date: ['日期：', '日期：', 'Date: '],
  });

  let data = null;

  /** The period of the address (the first of day, week, month, from+to); this month without one. */
  function period() {
    const p = HQ.params;
    for (const k of ['day', 'week', 'month']) if (p.get(k)) return HQP.query(k, { [k]: p.get(k) });
    if (p.get('from') || p.get('to')) return HQP.query('range', { from: p.get('from') || '', to: p.get('to') || '' });
    return HQP.query('month', { month: HQP.localDay(HQ.now()).slice(0, 7) });
  }

  function showLogin(message) {
    HQ.setToken(null);
    $('report').hidden = true;
    $('print').hidden = true;
    $('login').hidden = false;
    $('login-message').textContent = message || '';
  }

  async function signIn(ev) {
    ev.preventDefault();
    $('login-message').textContent = '';
    try {
      const r = await api('POST', '/api/v1/sessions', { staff_id: $('login-staff').value.trim(), pin: $('login-pin').value });
      HQ.setToken(r.token);
      sessionStorage.setItem('hallq.supervision.staff', JSON.stringify(r.staff));
      $('login-pin').value = '';
      await load();
    } catch (e) {
      $('login-pin').value = '';
      $('login-message').textContent = e.code === 'wrong_window' ? t('err_forbidden') : errorText(e);
    }
  }

  async function load() {
    $('message').textContent = '';
    try {
      data = await HQP.load(period());
    } catch (e) {
      if (e.status === 401) { showLogin(t('err_sign_in_required')); return; }
      if (e.status === 403) { showLogin(t('err_forbidden')); return; }
      $('message').textContent = errorText(e) + (e.field ? ' (' + e.field + ')' : '');
      return;
    }
    $('login').hidden = true;
    $('report').hidden = false;
    $('print').hidden = false;
    render();
    document.body.dataset.ready = 'true';
  }

  function render() {
    if (!data) return;
    const d = data;
    const f = d.hall;
    const month = HQ.params.get('month');
    const title = month && /^\d{4}-\d{2}$/.test(month)
      ? t('r_title_month', { y: month.slice(0, 4), m: String(Number(month.slice(5))) })
      : t('r_title_period', { from: d.from, to: d.to });
    $('hall').textContent = '· ' + d.hall_name;
    $('r-title').textContent = d.hall_name + ' ' + title;
    document.title = d.hall_name + ' ' + title;
    $('r-sub').textContent = t('r_sub', { hall: d.hall_name, from: d.from, to: d.to, t: HQP.stamp(HQ.now()) });
    $('r-summary').textContent = t('r_summary', {
      issued: f.issued, served: f.served, no_shows: f.no_shows, wait: HQP.dur(f.avg_wait_secs), service: HQP.dur(f.avg_service_secs),
      rated: f.rated, sat: HQP.pct(f.satisfaction), bad: f.bad, warnings: f.warnings, handled: f.warnings_handled,
    });
    $('r-hall').replaceChildren(...HQP.figures(f));
    $('r-levels').replaceChildren(...HQP.levels(f));
    $('r-t-windows').replaceChildren(HQP.table('windows', d.windows || [], HQP.APPRAISAL));
    $('r-t-staff').replaceChildren(HQP.table('staff', d.staff || [], HQP.APPRAISAL));
    $('r-chart-list').replaceChildren(...HQP.charts(d));
    $('r-t-bad').replaceChildren(HQP.badTable(d.bad_ratings || [], d.services));
  }

  HQ.mountLangSwitch(render);
  $('login').addEventListener('submit', signIn);
  $('print').addEventListener('click', () => window.print());
  if (HQ.token()) load(); else showLogin();
})();
