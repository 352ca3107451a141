//! The daemon and the virtual printer on a pseudo-terminal: tickets print, a printer
//! out of paper, with its cover open or unplugged never stops a ticket, the kiosk is
//! told, and the fault and its recovery are stored events. With a printer beside each
//! kiosk (`[[printer]]`), each prints only its own kiosk's tickets, a reprint comes out
//! where it is asked for, and one printer's fault shows at its kiosk alone.

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

/// How many times `number` came out of the printer.
fn copies(paper: &Paper, number: &str) -> usize {
    paper.runs().filter(|r| r.text.contains(number)).count()
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

/// A `[[printer]]` on the pseudo-terminal `path`, serving `kiosk`.
fn printer_serving(id: &str, kiosk: &str, path: &str) -> String {
    format!(
        "[[printer]]\nid = {id:?}\nserves = [{kiosk:?}]\npaper = \"80mm\"\nstatus_poll_secs = 1\n\
         [printer.transport]\nkind = \"serial\"\npath = {path:?}\nbaud = 115200\n"
    )
}

#[test]
fn two_kiosks_print_each_on_its_own_printer_and_a_fault_shows_at_its_kiosk_only() {
    let (p1, _keep1, path1) = printer_on_pty();
    let (p2, _keep2, path2) = printer_on_pty();
    let hall = Hall::with_config(&format!(
        "{}\n{}",
        printer_serving("p1", "kiosk-1", &path1),
        printer_serving("p2", "kiosk-2", &path2)
    ));
    // check-config lists both printers, with their device ids and kiosks.
    let out = std::process::Command::new(hallq_tests::hallq_bin())
        .arg("check-config")
        .arg(&hall.config)
        .output()
        .expect("hallq runs");
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{said}");
    assert!(said.contains("2 printers"), "{said}");
    assert!(
        said.contains("printer p1 (device printer-p1)") && said.contains("serves kiosk-1"),
        "{said}"
    );
    assert!(
        said.contains("printer p2 (device printer-p2)") && said.contains("serves kiosk-2"),
        "{said}"
    );

    let d = hall.start();
    let c = client();
    let issue = |kiosk: &str| -> Value {
        let (s, body) = send(
            c.post(format!("{}/api/v1/tickets", d.url))
                .header("X-Kiosk-Id", kiosk)
                .send_json(json!({"service": "SB"})),
        );
        assert_eq!(s, 201, "{body}");
        body
    };
    let kiosk_state = |kiosk: &str| -> Value {
        let (s, body) = send(
            c.get(format!("{}/api/v1/kiosk", d.url))
                .header("X-Kiosk-Id", kiosk)
                .call(),
        );
        assert_eq!(s, 200, "{body}");
        body
    };
    let number = |t: &Value| t["ticket"]["number"].as_str().unwrap().to_string();

    // Two tickets at each kiosk, taken in turn: each prints on its kiosk's printer.
    let mut at1 = Vec::new();
    let mut at2 = Vec::new();
    for _ in 0..2 {
        let t = issue("kiosk-1");
        assert_eq!(t["print"]["state"], "printing", "{t}");
        at1.push(t);
        let t = issue("kiosk-2");
        assert_eq!(t["print"]["state"], "printing", "{t}");
        at2.push(t);
    }
    for (printer, mine) in [(&p1, &at1), (&p2, &at2)] {
        for t in mine.iter() {
            let n = number(t);
            let id = t["ticket"]["id"].to_string().into_bytes();
            assert!(
                printer.wait_for(Duration::from_secs(5), |p| printed(p, &n)
                    && p.qr_payloads().contains(&id)),
                "{n} and its QR code never reached its kiosk's printer: {}",
                printer.paper().to_text(48)
            );
        }
        // Both tickets, cut off the roll.
        assert!(printer.wait_for(Duration::from_secs(5), |p| p.cuts() == 2));
    }
    // … and only there: what each virtual printer received, decoded, has none of the
    // other kiosk's numbers.
    let (paper1, paper2) = (p1.paper(), p2.paper());
    for t in &at1 {
        assert!(!printed(&paper2, &number(t)), "{}", paper2.to_text(48));
    }
    for t in &at2 {
        assert!(!printed(&paper1, &number(t)), "{}", paper1.to_text(48));
    }
    for p in [&p1, &p2] {
        assert_eq!((p.stats().unknown, p.stats().bad_text), (0, 0));
    }

    // A kiosk no printer serves gets its ticket, unprinted, and no printer to show.
    let t = issue("kiosk-3");
    assert_eq!(t["print"]["state"], "not_printed", "{t}");
    assert_eq!(kiosk_state("kiosk-3")["printer"], Value::Null);

    // Kiosk 2 reprints kiosk 1's first ticket: it comes out of printer 2, beside the
    // kiosk that asked, and printer 1 keeps its single copy.
    let first = &at1[0];
    let first_number = number(first);
    let (s, re) = send(
        c.post(format!(
            "{}/api/v1/tickets/{}/reprint",
            d.url, first["ticket"]["id"]
        ))
        .header("X-Kiosk-Id", "kiosk-2")
        .send_empty(),
    );
    assert_eq!(s, 200, "{re}");
    assert_eq!(re["print"]["state"], "printing", "{re}");
    assert!(
        p2.wait_for(Duration::from_secs(5), |p| printed(p, &first_number)),
        "the reprint never reached printer 2: {}",
        p2.paper().to_text(48)
    );
    assert_eq!(copies(&p1.paper(), &first_number), 1);
    let reprints = hall.events_of("ticket_reprinted");
    assert_eq!(reprints.len(), 1, "{reprints:?}");
    assert_eq!(reprints[0]["by"], "kiosk-2");
    assert_eq!(reprints[0]["printer"], "p2");
    // The kiosk with no printer cannot reprint.
    let (s, re) = send(
        c.post(format!(
            "{}/api/v1/tickets/{}/reprint",
            d.url, first["ticket"]["id"]
        ))
        .header("X-Kiosk-Id", "kiosk-3")
        .send_empty(),
    );
    assert_eq!(
        (s, re["error"]["code"].as_str()),
        (409, Some("no_printer")),
        "{re}"
    );

    // Printer 2 runs out of paper: kiosk 2 shows the fault, kiosk 1 does not.
    p2.set_state(PrinterState::PaperOut);
    wait_until("paper_out at kiosk 2", Duration::from_secs(10), || {
        kiosk_state("kiosk-2")["printer"]["health"]["code"] == "paper_out"
    });
    let k2 = kiosk_state("kiosk-2");
    assert_eq!(k2["printer"]["id"], "p2", "{k2}");
    assert_eq!(k2["printer"]["device"], "printer-p2", "{k2}");
    assert_eq!(k2["printer"]["health"]["state"], "fault", "{k2}");
    let k1 = kiosk_state("kiosk-1");
    assert_eq!(k1["printer"]["id"], "p1", "{k1}");
    assert_eq!(k1["printer"]["health"]["state"], "ok", "{k1}");
    // Kiosk 2's ticket commits all the same; the citizen is told the number in words.
    let t = issue("kiosk-2");
    let n = number(&t);
    assert_eq!(t["print"]["state"], "unavailable", "{t}");
    assert_eq!(t["print"]["code"], "paper_out", "{t}");
    assert!(
        t["print_message"].as_str().is_some_and(|m| m.contains(&n)),
        "{t}"
    );
    let (_, status) = send(
        c.get(format!("{}/api/v1/tickets/{}", d.url, t["ticket"]["id"]))
            .call(),
    );
    assert_eq!(status["ticket"]["state"], "waiting", "{status}");
    assert!(!printed(&p2.paper(), &n) && !printed(&p1.paper(), &n));
    // Kiosk 1 prints on.
    let t = issue("kiosk-1");
    assert_eq!(t["print"]["state"], "printing", "{t}");
    let n1 = number(&t);
    assert!(p1.wait_for(Duration::from_secs(5), |p| printed(p, &n1)));
    // The fault is stored under printer 2's own device id, and only there.
    let faults = hall.events_of("device_fault");
    assert!(
        faults
            .iter()
            .any(|f| f["device"] == "printer-p2" && f["code"] == "paper_out"),
        "{faults:?}"
    );
    assert!(
        faults.iter().all(|f| f["device"] != "printer-p1"),
        "{faults:?}"
    );

    // The devices list and the metrics have each printer by its id.
    let devices = || send(c.get(format!("{}/api/v1/devices", d.url)).call()).1;
    // The counters move once a job's last byte is written.
    wait_until("the printers' counters", Duration::from_secs(5), || {
        let d = devices();
        d["printers"][0]["stats"]["printed"] == 3 && d["printers"][1]["stats"]["printed"] == 3
    });
    let devices = devices();
    let printers = devices["printers"].as_array().expect("printers");
    assert_eq!(printers.len(), 2, "{devices}");
    assert_eq!(printers[0]["id"], "p1");
    assert_eq!(printers[0]["serves"], json!(["kiosk-1"]));
    assert_eq!(printers[0]["stats"]["printed"], 3, "{devices}");
    assert_eq!(printers[1]["health"]["code"], "paper_out", "{devices}");
    assert_eq!(printers[1]["stats"]["printed"], 3, "{devices}");
    assert_eq!(printers[1]["stats"]["failed"], 1, "{devices}");
    let metrics = c
        .get(format!("{}/metrics", d.url))
        .call()
        .expect("metrics")
        .body_mut()
        .read_to_string()
        .expect("metrics text");
    for line in [
        "hallq_printer_jobs{printer=\"p1\",outcome=\"printed\"} 3",
        "hallq_printer_jobs{printer=\"p2\",outcome=\"printed\"} 3",
        "hallq_printer_jobs{printer=\"p2\",outcome=\"failed\"} 1",
        "hallq_printer_jobs{printer=\"p1\",outcome=\"failed\"} 0",
        "hallq_device_up{device=\"printer-p2\",code=\"paper_out\"} 0",
    ] {
        assert!(
            metrics.lines().any(|l| l == line),
            "{line} not in\n{metrics}"
        );
    }
}
