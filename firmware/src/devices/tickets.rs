//! From a committed ticket to what the printer prints, and the words a kiosk shows when
//! it cannot print. Kept apart from the API so that reprints, check-ins and issues lay
//! a ticket out the same way.

use hallq_engine::{Lang, LocalClock, Setup, Ticket};
use hallq_hardware::layout::TicketPrint;

use super::printer::PrintOutcome;

/// The printed ticket: hall, number, service in the working language, people ahead,
/// the windows that serve it under the setup in force, local issue time, the ticket id,
/// and the citizen's status page for the QR code when the hall has one (`page_url`).
pub fn ticket_print(
    hall_name: &str,
    setup: &Setup,
    t: &Ticket,
    ahead: u32,
    page_url: Option<String>,
) -> TicketPrint {
    let service_name = setup
        .services
        .iter()
        .find(|s| s.code == t.service)
        .map(|s| s.name.zh_cn.clone())
        .unwrap_or_else(|| t.service.clone());
    let windows = match t.reserved_window {
        Some(w) => vec![format!("{w}号窗口")],
        None => setup
            .windows
            .iter()
            .filter(|w| w.services.iter().any(|s| s.code == t.service))
            .map(|w| format!("{}号窗口", w.number))
            .collect(),
    };
    TicketPrint {
        hall_name: hall_name.to_string(),
        number: t.number.clone(),
        service_name,
        waiting_ahead: ahead,
        windows,
        issued_at: LocalClock::new(setup.utc_offset_minutes)
            .local(t.issued_at)
            .format("%Y-%m-%d %H:%M")
            .to_string(),
        ticket_id: t.id.0.to_string(),
        page_url,
        // 绿色通道 on every green ticket, however the template is laid out.
        priority: (t.class == hallq_engine::Class::Green).then(|| "绿色通道".to_string()),
    }
}

/// What the kiosk says about the paper ticket, in the citizen's language.
pub fn print_message(outcome: &PrintOutcome, number: &str, lang: Lang) -> Option<String> {
    match outcome {
        PrintOutcome::Unavailable { .. } => Some(match lang {
            Lang::ZhCn => format!("打印机暂不可用，您的号码是 {number}，请留意叫号"),
            Lang::ZhTw => format!("印表機暫不可用，您的號碼是 {number}，請留意叫號"),
            Lang::En => {
                format!(
                    "The printer is unavailable. Your number is {number}; please listen for it."
                )
            }
        }),
        _ => None,
    }
}
