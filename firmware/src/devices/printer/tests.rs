//! The printers' unit tests.

use super::*;
use hallq_hardware::transport::TransportConfig;

#[test]
fn status_maps_to_health_by_severity() {
    let mut s = PrinterStatus {
        online: true,
        ..Default::default()
    };
    assert_eq!(health_of(&s), Health::Ok);
    s.paper_near_end = true;
    assert_eq!(health_of(&s).code(), "paper_near_end");
    assert!(health_of(&s).usable());
    s.paper_out = true;
    s.online = false;
    assert_eq!(health_of(&s).code(), "paper_out");
    assert!(!health_of(&s).usable());
}

#[test]
fn channels_match_by_prefix() {
    let c = PrinterConfig::with_transport(TransportConfig::Tcp {
        addr: "127.0.0.1:9100".into(),
    });
    assert!(c.prints("kiosk"));
    assert!(c.prints("kiosk-2"));
    assert!(!c.prints("wechat"));
    assert_eq!((c.name(), c.device().as_str()), ("printer", "printer"));
}

fn nowhere() -> TransportConfig {
    // Port 9 on loopback: nothing listens, the thread only fails to connect.
    TransportConfig::Tcp {
        addr: "127.0.0.1:9".into(),
    }
}

#[test]
fn a_printer_of_several_serves_exactly_its_kiosks() {
    let c = PrinterConfig::serving("p1", &["kiosk-1", "desk"], nowhere());
    assert!(c.prints("kiosk-1"));
    assert!(c.prints("desk"));
    assert!(!c.prints("kiosk-10"), "ids match exactly, not by prefix");
    assert!(!c.prints("kiosk"));
    assert_eq!((c.name(), c.device().as_str()), ("p1", "printer-p1"));
}

fn several(list: Vec<PrinterConfig>) -> Result<(), (String, String)> {
    PrintersConfig::Several(list).check(None)
}

#[test]
fn several_printers_refuse_a_kiosk_served_twice_and_a_duplicate_id() {
    assert_eq!(
        several(vec![
            PrinterConfig::serving("p1", &["kiosk-1"], nowhere()),
            PrinterConfig::serving("p2", &["kiosk-2", "desk"], nowhere()),
        ]),
        Ok(())
    );
    let (key, message) = several(vec![
        PrinterConfig::serving("p1", &["kiosk-1"], nowhere()),
        PrinterConfig::serving("p2", &["kiosk-2", "kiosk-1"], nowhere()),
    ])
    .unwrap_err();
    assert_eq!(key, "printer[1].serves");
    assert!(
        message.contains("\"kiosk-1\"") && message.contains("\"p1\""),
        "{message}"
    );
    let (key, message) = several(vec![
        PrinterConfig::serving("p1", &["kiosk-1"], nowhere()),
        PrinterConfig::serving("p1", &["kiosk-2"], nowhere()),
    ])
    .unwrap_err();
    assert_eq!(key, "printer[1].id", "{message}");
}

#[test]
fn each_form_keeps_its_own_keys() {
    let mut no_id = PrinterConfig::serving("p1", &["kiosk-1"], nowhere());
    no_id.id = None;
    assert_eq!(several(vec![no_id]).unwrap_err().0, "printer[0].id");
    let bad_id = PrinterConfig::serving("p 1", &["kiosk-1"], nowhere());
    assert_eq!(several(vec![bad_id]).unwrap_err().0, "printer[0].id");
    let mut prefixes = PrinterConfig::serving("p1", &["kiosk-1"], nowhere());
    prefixes.channels = Some(vec!["kiosk".into()]);
    assert_eq!(
        several(vec![prefixes]).unwrap_err().0,
        "printer[0].channels"
    );
    let idle = PrinterConfig::serving("p1", &[], nowhere());
    assert_eq!(several(vec![idle]).unwrap_err().0, "printer[0].serves");
    let mut single = PrinterConfig::with_transport(nowhere());
    assert_eq!(PrintersConfig::Single(single.clone()).check(None), Ok(()));
    single.id = Some("p1".into());
    assert_eq!(
        PrintersConfig::Single(single.clone())
            .check(None)
            .unwrap_err()
            .0,
        "printer.id"
    );
    single.id = None;
    single.serves = vec!["kiosk-1".into()];
    assert_eq!(
        PrintersConfig::Single(single.clone())
            .check(None)
            .unwrap_err()
            .0,
        "printer.serves"
    );
    single.serves.clear();
    single.channels = Some(Vec::new());
    assert_eq!(
        PrintersConfig::Single(single).check(None).unwrap_err().0,
        "printer.channels"
    );
}

#[test]
fn when_the_hall_declares_its_kiosks_a_printer_serves_only_those() {
    let list = PrintersConfig::Several(vec![PrinterConfig::serving(
        "p1",
        &["kiosk-1", "kiosk-9"],
        nowhere(),
    )]);
    let known = [
        "kiosk-1".to_string(),
        "kiosk-2".to_string(),
        "desk".to_string(),
    ];
    let (key, message) = list.check(Some(&known)).unwrap_err();
    assert_eq!(key, "printer[0].serves");
    assert!(message.contains("\"kiosk-9\""), "{message}");
    let ok = PrintersConfig::Several(vec![PrinterConfig::serving(
        "p1",
        &["kiosk-1", "desk"],
        nowhere(),
    )]);
    assert_eq!(ok.check(Some(&known)), Ok(()));
}

#[test]
fn a_ticket_prints_where_it_was_taken_and_a_reprint_where_it_is_asked() {
    let devices = Devices::default();
    let several = Printers::start(
        &PrintersConfig::Several(vec![
            PrinterConfig::serving("p1", &["kiosk-1"], nowhere()),
            PrinterConfig::serving("p2", &["kiosk-2", "desk"], nowhere()),
        ]),
        &devices,
    )
    .unwrap();
    let name = |p: Option<&Printer>| p.map(|p| p.name().to_string());
    assert_eq!(name(several.for_ticket("kiosk-1")).as_deref(), Some("p1"));
    assert_eq!(name(several.for_ticket("kiosk-2")).as_deref(), Some("p2"));
    assert_eq!(name(several.for_ticket("desk")).as_deref(), Some("p2"));
    assert_eq!(name(several.for_ticket("kiosk-3")), None);
    assert_eq!(name(several.at("kiosk-2")).as_deref(), Some("p2"));
    assert_eq!(
        name(several.at("kiosk-3")),
        None,
        "a kiosk without a printer"
    );
    assert_eq!(
        name(several.for_reprint_of("wechat")).as_deref(),
        Some("p1")
    );
    assert_eq!(
        several.iter().map(Printer::device).collect::<Vec<_>>(),
        ["printer-p1", "printer-p2"]
    );
    // The single [printer] prints its channels, and serves any kiosk that asks.
    let single = Printers::start(
        &PrintersConfig::Single(PrinterConfig::with_transport(nowhere())),
        &devices,
    )
    .unwrap();
    assert!(single.for_ticket("kiosk-7").is_some());
    assert!(single.for_ticket("phone").is_none());
    assert_eq!(single.at("7").map(Printer::device), Some("printer"));
    assert!(Printers::default().at("kiosk-1").is_none());
}
