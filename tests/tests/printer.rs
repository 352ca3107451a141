//! The daemon and the virtual printer on a pseudo-terminal: tickets print, a printer
//! out of paper, with its cover open or unplugged never stops a ticket, the kiosk is
//! told, and the fault and its recovery are stored events.

use std::time::{Duration, Instant};

use hallq_hardware::virtual_printer::{Paper, PrinterState, VirtualPrinter, VirtualPrinterHandle};
use hallq_tests::{Hall, client, send};
use serde_json::{Value, json};
use serialport::{SerialPort, TTYPort};

/// A virtual serial printer; keep the returned port open for the PTY to stay up.
fn printer_on_pty() -> (VirtualPrinterHandle, TTYPort, String) {
    let (master, slave) = TTYPort::pair().expect("pseudo-terminal pair");
    let path = slave.name().expect("the slave side has a path");
    let printer = VirtualPrinterHandle::serve_stream(VirtualPrinter::new(), master)
        .expect("virtual printer starts");
    (printer, slave, path)
}

fn printed(paper: &Paper, number: &str) -> bool {
    paper.runs().any(|r| r.text.contains(number))
}

fn wait_until(what: &str, timeout: Duration, mut f: impl FnMut() -> bool) {
    let t = Instant::now();
    while !f() {
        assert!(t.elapsed() < timeout, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn a_printer_out_of_paper_never_stops_a_ticket() {
    let (printer, _keep, path) = printer_on_pty();
    let hall = Hall::with_config(&format!(
        "[printer]\npaper = \"58mm\"\nstatus_poll_secs = 1\n\
         [printer.transport]\nkind = \"serial\"\npath = {path:?}\nbaud = 115200\n"
    ));
    let d = hall.start();
    let c = client();
    let issue = |key: &str| -> Value {
        let (s, body) = send(
            c.post(format!("{}/api/v1/tickets", d.url))
                .header("Idempotency-Key", key)
                .send_json(json!({"service": "SB"})),
        );
        assert!(s == 201 || s == 200, "{s} {body}");
        body
    };

    // A ticket prints: its number and its id in the QR code reach the paper.
    let first = issue("p-1");
    assert_eq!(first["print"]["state"], "printing", "{first}");
    let number = first["ticket"]["number"].as_str().unwrap().to_string();
    let id = first["ticket"]["id"].to_string();
    assert!(
        printer.wait_for(Duration::from_secs(5), |p| printed(p, &number)),
        "the virtual printer never received {number}: {}",
        printer.paper().to_text(32)
    );
    assert!(
        printer
            .paper()
            .qr_payloads()
            .contains(&id.clone().into_bytes())
    );
    assert_eq!(printer.stats().unknown, 0);
    assert_eq!(printer.stats().bad_text, 0);

    // A retry of the same request does not print a second paper ticket.
    let again = issue("p-1");
    assert_eq!(again["replayed"], true);
    assert_eq!(again["print"]["state"], "not_printed");

    // Out of paper: the next ticket is issued all the same, and the kiosk is told.
    printer.set_state(PrinterState::PaperOut);
    let second = issue("p-2");
    let second_number = second["ticket"]["number"].as_str().unwrap().to_string();
    assert_ne!(second_number, number);
    assert_eq!(second["print"]["state"], "unavailable", "{second}");
    assert_eq!(second["print"]["code"], "paper_out");
    assert!(
        second["print_message"]
            .as_str()
            .is_some_and(|m| m.contains(&second_number)),
        "{second}"
    );
    assert!(!printed(&printer.paper(), &second_number));
    let (_, status) = send(
        c.get(format!(
            "{}/api/v1/tickets/{}",
            d.url, second["ticket"]["id"]
        ))
        .call(),
    );
    assert_eq!(status["ticket"]["state"], "waiting");
    let faults = hall.events_of("device_fault");
    assert!(
        faults
            .iter()
            .any(|f| f["device"] == "printer" && f["code"] == "paper_out"),
        "{faults:?}"
    );
    let (_, devices) = send(c.get(format!("{}/api/v1/devices", d.url)).call());
    assert_eq!(devices["devices"][0]["health"]["code"], "paper_out");

    // Paper back: the idle poll notices, a recovered event is stored, and a reprint of
    // the ticket that missed its paper goes through.
    printer.set_state(PrinterState::Normal);
    wait_until("device_recovered", Duration::from_secs(10), || {
        !hall.events_of("device_recovered").is_empty()
    });
    let (s, re) = send(
        c.post(format!(
            "{}/api/v1/tickets/{}/reprint",
            d.url, second["ticket"]["id"]
        ))
        .send_empty(),
    );
    assert_eq!(s, 200, "{re}");
    assert_eq!(re["print"]["state"], "printing");
    assert!(printer.wait_for(Duration::from_secs(5), |p| printed(p, &second_number)));
    assert_eq!(hall.events_of("ticket_reprinted").len(), 1);
}

#[test]
fn a_cover_left_open_and_a_roll_near_its_end_are_reported_and_never_stop_a_ticket() {
    let (printer, _keep, path) = printer_on_pty();
    let hall = Hall::with_config(&format!(
        "[printer]\npaper = \"80mm\"\nstatus_poll_secs = 1\n\
         [printer.transport]\nkind = \"serial\"\npath = {path:?}\nbaud = 115200\n"
    ));
    let d = hall.start();
    let c = client();
    let issue = || -> Value {
        let (s, body) = send(
            c.post(format!("{}/api/v1/tickets", d.url))
                .header("Accept-Language", "en")
                .send_json(json!({"service": "SB"})),
        );
        assert_eq!(s, 201, "{body}");
        body
    };
    // The cover is open: the citizen still gets a number, told in words, and the
    // supervisor a fault naming the cause.
    printer.set_state(PrinterState::CoverOpen);
    let t = issue();
    let number = t["ticket"]["number"].as_str().unwrap().to_string();
    assert_eq!(t["print"]["state"], "unavailable", "{t}");
    assert_eq!(t["print"]["code"], "cover_open", "{t}");
    assert!(
        t["print_message"]
            .as_str()
            .is_some_and(|m| m.contains(&number)),
        "{t}"
    );
    assert!(!printed(&printer.paper(), &number));
    wait_until("cover_open fault", Duration::from_secs(10), || {
        hall.events_of("device_fault")
            .iter()
            .any(|f| f["device"] == "printer" && f["code"] == "cover_open")
    });
    // Closed again, but the roll is nearly out: tickets print, and the warning comes
    // before the paper runs out, once.
    printer.set_state(PrinterState::PaperNearEnd);
    let t = issue();
    let number = t["ticket"]["number"].as_str().unwrap().to_string();
    assert_eq!(t["print"]["state"], "printing", "{t}");
    assert!(printer.wait_for(Duration::from_secs(5), |p| printed(p, &number)));
    wait_until("paper_near_end warning", Duration::from_secs(10), || {
        let (_, devices) = send(c.get(format!("{}/api/v1/devices", d.url)).call());
        devices["devices"][0]["health"]["code"] == "paper_near_end"
    });
    std::thread::sleep(Duration::from_secs(2));
    let cover_faults = hall
        .events_of("device_fault")
        .iter()
        .filter(|f| f["code"] == "cover_open")
        .count();
    assert_eq!(cover_faults, 1, "one fault per cause, not one per poll");
}

#[test]
fn an_unplugged_printer_is_a_fault_and_tickets_still_issue() {
    // A serial path that does not exist: the printer never connects.
    let hall = Hall::with_config(
        "[printer]\n[printer.transport]\nkind = \"serial\"\npath = \"/dev/hallq-no-such-printer\"\nbaud = 9600\n",
    );
    let d = hall.start();
    let c = client();
    wait_until("offline fault", Duration::from_secs(10), || {
        !hall.events_of("device_fault").is_empty()
    });
    let (s, body) = send(
        c.post(format!("{}/api/v1/tickets", d.url))
            .send_json(json!({"service": "SB"})),
    );
    assert_eq!(s, 201, "{body}");
    assert_eq!(body["print"]["state"], "unavailable");
    assert_eq!(body["print"]["code"], "offline");
    // Polling an absent printer does not flood the audit log.
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(hall.events_of("device_fault").len(), 1);
}

#[test]
fn a_bad_ticket_template_is_refused_at_start() {
    let hall = Hall::with_config(
        "[printer]\n[printer.transport]\nkind = \"tcp\"\naddr = \"127.0.0.1:9\"\n\
         [printer.ticket]\nfields = [{ name = \"weather\" }]\n",
    );
    let err = hall.config_refusal();
    assert!(
        err.contains("printer.ticket") && err.contains("weather"),
        "{err}"
    );
}
