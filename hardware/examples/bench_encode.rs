//! Print how long encoding work takes on this machine (no criterion: one small
//! program, run in release mode for real figures):
//!
//! `cargo run --release -p hallq-hardware --example bench_encode`

use std::hint::black_box;
use std::time::{Duration, Instant};

use hallq_hardware::escpos::PaperWidth;
use hallq_hardware::layout::{
    ChecklistPrint, MaterialForm, MaterialLine, TicketPrint, TicketTemplate, render_checklist,
};
use hallq_hardware::status::PrinterStatus;
use hallq_hardware::virtual_printer::VirtualPrinter;

fn measure(name: &str, iters: u32, mut f: impl FnMut()) {
    for _ in 0..iters / 10 {
        f();
    }
    let start = Instant::now();
    for _ in 0..iters {
        f();
    }
    let per: Duration = start.elapsed() / iters;
    println!(
        "{name:<40} {:>10.2} µs/op  ({iters} iterations)",
        per.as_secs_f64() * 1e6
    );
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let tpl = TicketTemplate::default().validate(PaperWidth::Mm58)?;
    let ticket = TicketPrint::sample();
    let bytes = tpl.render(&ticket)?;
    println!(
        "ticket job: {} bytes (58 mm, default template)",
        bytes.len()
    );
    measure("encode ticket (layout + ESC/POS)", 20_000, || {
        black_box(tpl.render(black_box(&ticket)).ok());
    });
    let checklist = ChecklistPrint {
        hall_name: "某某县政务服务中心".into(),
        service_name: "不动产转移登记".into(),
        materials: (0..8)
            .map(|i| MaterialLine {
                name: format!("申请材料第{i}项"),
                form: MaterialForm::OriginalAndCopy,
                count: 1,
                note: Some("需本人签字".into()),
            })
            .collect(),
        promised_days: Some(5),
        fees: "不收费".into(),
        window: "3号窗口".into(),
        printed_at: "2026-11-23 09:31".into(),
        ..Default::default()
    };
    measure("encode checklist, 8 materials", 5_000, || {
        black_box(render_checklist(black_box(&checklist), PaperWidth::Mm80).ok());
    });
    measure("virtual printer: decode ticket", 20_000, || {
        black_box(VirtualPrinter::decode(black_box(&bytes)));
    });
    measure("parse 4 status replies", 1_000_000, || {
        black_box(PrinterStatus::from_replies(black_box([0x12, 0x12, 0x12, 0x1E])).ok());
    });
    measure("validate default template", 2_000, || {
        black_box(TicketTemplate::default().validate(PaperWidth::Mm58).ok());
    });
    Ok(())
}
