//! The real transports talking to the virtual printer: a pseudo-terminal pair stands in
//! for a serial printer, a loopback TCP listener for a network printer.

use std::io::Write;
use std::net::TcpListener;
use std::time::Duration;

use hallq_hardware::escpos::{CharSize, EscPosWriter, PaperWidth};
use hallq_hardware::layout::{TicketPrint, TicketTemplate};
use hallq_hardware::status::{StatusError, query_status};
use hallq_hardware::transport::{PrinterTransport, SerialTransport, TcpTransport};
use hallq_hardware::virtual_printer::{PrinterState, VirtualPrinter, VirtualPrinterHandle};
use serialport::TTYPort;

fn ticket_bytes(number: &str) -> Vec<u8> {
    let t = TicketPrint {
        hall_name: "某某县政务服务中心".into(),
        number: number.into(),
        service_name: "社保业务".into(),
        waiting_ahead: 0,
        windows: vec!["8号窗口".into()],
        issued_at: "2026-11-23 10:00".into(),
        ticket_id: format!("T-{number}"),
        page_url: None,
        priority: None,
    };
    TicketTemplate::default()
        .validate(PaperWidth::Mm58)
        .unwrap()
        .render(&t)
        .unwrap()
}

fn printed_number(h: &VirtualPrinterHandle, number: &str) -> bool {
    h.wait_for(Duration::from_secs(5), |p| {
        p.runs()
            .any(|r| r.text == number && r.size == CharSize::uniform(4).unwrap())
    })
}

#[test]
fn a_ticket_sent_over_a_pty_is_decoded_and_a_paper_out_status_is_answered() {
    let (master, slave) = TTYPort::pair().expect("pseudo-terminal pair");
    let printer = VirtualPrinterHandle::serve_stream(VirtualPrinter::new(), slave).unwrap();
    let mut port = SerialTransport::from_port(Box::new(master));
    port.set_timeout(Duration::from_millis(50)).unwrap();

    let mut w = EscPosWriter::new(port);
    w.send_bytes(&ticket_bytes("B023")).unwrap();
    w.flush().unwrap();
    assert!(
        printed_number(&printer, "B023"),
        "ticket number not decoded"
    );

    let mut port = w.release();
    let ok = query_status(&mut port, Duration::from_secs(2)).unwrap();
    assert!(ok.ready());

    printer.set_state(PrinterState::PaperOut);
    let s = query_status(&mut port, Duration::from_secs(2)).unwrap();
    assert!(s.paper_out && !s.online && !s.ready(), "{s:?}");

    let vp = printer.stop();
    assert_eq!(vp.paper().qr_payloads(), vec![b"T-B023".to_vec()]);
    assert_eq!(vp.stats().status_queries, 8);
    assert_eq!(vp.stats().unknown, 0);
}

#[test]
fn a_ticket_sent_over_tcp_is_decoded_and_cover_open_is_reported() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let printer = VirtualPrinterHandle::serve_tcp(VirtualPrinter::new(), listener).unwrap();
    let addr = printer.local_addr().unwrap().to_string();
    let mut t = TcpTransport::connect(&addr, Duration::from_secs(2)).unwrap();
    t.write_all(&ticket_bytes("A001")).unwrap();
    assert!(printed_number(&printer, "A001"));
    printer.set_state(PrinterState::CoverOpen);
    let s = query_status(&mut t, Duration::from_secs(2)).unwrap();
    assert!(s.cover_open && !s.ready());
}

#[test]
fn a_silent_serial_printer_times_out() {
    // Nobody serves the other end: the query must end with Timeout, not hang.
    let (master, _slave) = TTYPort::pair().unwrap();
    let mut port = SerialTransport::from_port(Box::new(master));
    port.set_timeout(Duration::from_millis(20)).unwrap();
    let r = query_status(&mut port, Duration::from_millis(100));
    assert!(matches!(r, Err(StatusError::Timeout { .. })), "{r:?}");
}

#[test]
fn a_serial_config_opens_the_pty_by_path_through_the_serialport_crate() {
    use hallq_hardware::transport::{TransportConfig, open};
    use serialport::SerialPort;
    let (master, slave) = TTYPort::pair().unwrap();
    let path = slave.name().expect("slave pty has a path");
    drop(slave);
    let printer = VirtualPrinterHandle::serve_stream(VirtualPrinter::new(), master).unwrap();
    let cfg = TransportConfig::Serial {
        path: path.clone(),
        baud: 115_200,
        hardware_flow_control: false,
    };
    let mut t = open(&cfg, Duration::from_millis(50)).unwrap();
    assert_eq!(t.describe(), format!("serial {path}"));
    t.write_all(&ticket_bytes("C007")).unwrap();
    assert!(printed_number(&printer, "C007"));
    printer.set_state(PrinterState::PaperNearEnd);
    let s = query_status(&mut t, Duration::from_secs(2)).unwrap();
    assert!(s.paper_near_end && s.ready(), "{s:?}");
}
