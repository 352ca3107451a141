//! What the window screens and the hall board show: pure functions from the queue's
//! state to [`DisplayContent`], the same for every kind of screen.

use std::collections::VecDeque;

use hallq_hardware::window::{Colour, DisplayContent, DisplayLine, Effect};

/// Lines a hall board is drawn for until it says how many it has.
pub const BOARD_ROWS: u16 = 6;

/// What a window's screen is showing, as the queue's state decides it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WindowView {
    /// The window.
    pub window: u32,
    /// Somebody is signed in there.
    pub staffed: bool,
    /// Its staff paused it.
    pub paused: bool,
    /// The number called there, if any.
    pub current: Option<String>,
    /// Its rating pad is armed for the ticket just finished.
    pub rating: bool,
    /// 亮身份: the status line naming who serves there ([`staff_line`]), when the hall
    /// shows it.
    pub staff: Option<String>,
}

/// The screen for a window in `view`'s state: a window nobody is signed in at shows
/// the same 暂停服务 as a paused one, never 欢迎办理 to a citizen nobody will serve.
pub fn window_screen(view: &WindowView) -> DisplayContent {
    let w = view.window;
    match view {
        WindowView { staffed: false, .. } => unstaffed_screen(w),
        WindowView { paused: true, .. } => paused_screen(w),
        WindowView {
            current: Some(n), ..
        } => call_screen(n, w),
        WindowView { rating: true, .. } => rate_screen(w),
        _ => idle_screen(w, view.staff.as_deref()),
    }
}

fn line(text: &str) -> Option<DisplayLine> {
    match DisplayLine::new(text) {
        Ok(l) => Some(l),
        Err(e) => {
            tracing::warn!("cannot show {text:?} on an LED screen: {e}");
            None
        }
    }
}

fn content(lines: Vec<Option<DisplayLine>>) -> DisplayContent {
    DisplayContent {
        lines: lines.into_iter().map(Option::unwrap_or_default).collect(),
        brightness: 8,
    }
}

/// What a window's screen shows when a number is called there.
pub fn call_screen(number: &str, window: u32) -> DisplayContent {
    content(vec![
        line(number).map(|l| l.colour(Colour::Red).effect(Effect::Blink)),
        line(&format!("请到{window}号窗口")).map(|l| l.colour(Colour::Green)),
    ])
}

/// What a window's screen shows while paused.
pub fn paused_screen(window: u32) -> DisplayContent {
    content(vec![
        line("暂停服务").map(|l| l.colour(Colour::Amber)),
        line(&format!("{window}号窗口")),
    ])
}

/// What a window's screen shows while nobody is signed in there: the paused text.
pub fn unstaffed_screen(window: u32) -> DisplayContent {
    paused_screen(window)
}

/// What a window's screen shows with its staff there and nobody called: 欢迎办理 on
/// the status line, or who serves there (亮身份, `staff` from [`staff_line`]).
pub fn idle_screen(window: u32, staff: Option<&str>) -> DisplayContent {
    content(vec![
        line(&format!("{window}号窗口")).map(|l| l.colour(Colour::Green)),
        line(staff.unwrap_or("欢迎办理")),
    ])
}

/// The status line naming a member of staff: "王芳 工号S001". A name the screen cannot
/// show (a character outside GB2312, as some given names have) gives the staff number
/// alone, "工号S001", and so does an account without a name; a staff number it cannot
/// show either gives none (the screen keeps 欢迎办理).
pub fn staff_line(name: Option<&str>, id: &str) -> Option<String> {
    let number = format!("工号{id}");
    let named = name
        .map(str::trim)
        .filter(|n| !n.is_empty())
        .map(|n| format!("{n} {number}"));
    named
        .into_iter()
        .chain([number])
        .find(|text| DisplayLine::new(text).is_ok())
}

/// What a window's screen shows after finish, while the rating pad is armed.
pub fn rate_screen(window: u32) -> DisplayContent {
    content(vec![
        line(&format!("{window}号窗口")).map(|l| l.colour(Colour::Green)),
        line("请您评价"),
    ])
}

/// The hall board line for a call.
pub fn board_call(number: &str, window: u32) -> String {
    format!("请 {number} 号到 {window} 号窗口办理")
}

/// What a hall board of `rows` lines shows: the latest calls first (the newest red and
/// blinking) and, when there is a notice, the notice scrolling on the last line.
pub fn board_screen(calls: &VecDeque<String>, notice: &str, rows: usize) -> DisplayContent {
    let rows = rows.max(1);
    let call_rows = if notice.is_empty() || rows == 1 {
        rows
    } else {
        rows - 1
    };
    let mut lines: Vec<Option<DisplayLine>> = calls
        .iter()
        .take(call_rows)
        .enumerate()
        .map(|(i, t)| {
            line(t).map(|l| {
                if i == 0 {
                    l.colour(Colour::Red).effect(Effect::Blink)
                } else {
                    l.colour(Colour::Amber)
                }
            })
        })
        .collect();
    if call_rows < rows {
        lines.resize(call_rows, None);
        lines.push(line(notice).map(|l| l.colour(Colour::Green).effect(Effect::Scroll)));
    }
    content(lines)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn screens_say_what_the_hall_expects() {
        assert_eq!(board_call("A001", 3), "请 A001 号到 3 号窗口办理");
        assert_eq!(call_screen("A001", 3).texts(), ["A001", "请到3号窗口"]);
        assert_eq!(paused_screen(3).texts()[0], "暂停服务");
        assert_eq!(rate_screen(3).texts()[1], "请您评价");
    }

    #[test]
    fn a_window_nobody_is_signed_in_at_shows_the_paused_text_not_a_welcome() {
        let mut v = WindowView {
            window: 4,
            staffed: false,
            paused: false,
            current: None,
            rating: false,
            staff: None,
        };
        assert_eq!(window_screen(&v).texts(), ["暂停服务", "4号窗口"]);
        v.staffed = true;
        assert_eq!(window_screen(&v).texts(), ["4号窗口", "欢迎办理"]);
        v.rating = true;
        assert_eq!(window_screen(&v).texts()[1], "请您评价");
        v.current = Some("A007".into());
        assert_eq!(window_screen(&v).texts()[0], "A007");
        v.paused = true;
        assert_eq!(window_screen(&v).texts()[0], "暂停服务");
    }

    #[test]
    fn the_status_line_names_who_serves_and_falls_back_to_the_staff_number() {
        assert_eq!(
            staff_line(Some("王芳"), "S001").as_deref(),
            Some("王芳 工号S001")
        );
        // 堃 and 𠮷 are outside GB2312: the screen could not draw the name.
        assert_eq!(
            staff_line(Some("李堃"), "S002").as_deref(),
            Some("工号S002")
        );
        assert_eq!(staff_line(Some("𠮷"), "S003").as_deref(), Some("工号S003"));
        assert_eq!(staff_line(None, "S004").as_deref(), Some("工号S004"));
        assert_eq!(staff_line(Some("  "), "S005").as_deref(), Some("工号S005"));
        assert_eq!(staff_line(Some("王芳"), "S\u{1F600}"), None);
        let v = WindowView {
            window: 2,
            staffed: true,
            paused: false,
            current: None,
            rating: false,
            staff: staff_line(Some("王芳"), "S001"),
        };
        assert_eq!(window_screen(&v).texts(), ["2号窗口", "王芳 工号S001"]);
        assert_eq!(idle_screen(2, None).texts(), ["2号窗口", "欢迎办理"]);
    }

    #[test]
    fn a_board_lists_the_latest_calls_above_its_notice_whatever_its_size() {
        let calls: VecDeque<String> = (1..=8).map(|i| board_call(&format!("A00{i}"), i)).collect();
        let six = board_screen(&calls, "请带身份证", 6);
        assert_eq!(six.lines.len(), 6);
        assert_eq!(six.texts()[0], calls[0]);
        assert_eq!(six.texts()[4], calls[4]);
        assert_eq!(six.texts()[5], "请带身份证");
        assert_eq!(six.lines[5].effect, Effect::Scroll);
        assert_eq!(six.lines[0].effect, Effect::Blink);
        let one_call: VecDeque<String> = calls.iter().take(1).cloned().collect();
        let two = board_screen(&one_call, "请带身份证", 2);
        assert_eq!(two.texts(), [calls[0].as_str(), "请带身份证"]);
        let no_notice = board_screen(&one_call, "", 4);
        assert_eq!(no_notice.texts(), [calls[0].as_str()]);
    }
}
