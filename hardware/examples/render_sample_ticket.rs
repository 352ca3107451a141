//! Render a sample queue ticket (and a material checklist) through the virtual printer
//! to PNG files, so people can see what the printer will produce.
//!
//! `cargo run -p hallq-hardware --example render_sample_ticket [OUT_DIR]`
//! (default: the workspace's `docs/`). Needs a CJK font: fonts-wqy-microhei or
//! fonts-noto-cjk on Debian, or `HALLQ_CJK_FONT=/path/to/font`.

use std::path::PathBuf;

use hallq_hardware::escpos::PaperWidth;
use hallq_hardware::layout::{
    ChecklistPrint, MaterialForm, MaterialLine, TicketPrint, TicketTemplate, render_checklist,
};
use hallq_hardware::virtual_printer::{CjkFont, VirtualPrinter};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let out = std::env::args_os()
        .nth(1)
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../docs"));
    std::fs::create_dir_all(&out)?;
    let font = CjkFont::find()?;

    let template = TicketTemplate {
        header: vec!["欢迎您来办事".into()],
        qr_url: Some("https://zwfw.example.gov.cn/q/{id}".into()),
        footer: vec!["过号请重新取号".into(), "请留意叫号屏幕及语音提示".into()],
        ..TicketTemplate::default()
    };
    let ticket = TicketPrint::sample();
    let bytes = template.validate(PaperWidth::Mm58)?.render(&ticket)?;
    let (paper, _) = VirtualPrinter::decode(&bytes);
    let path = out.join("sample-ticket.png");
    paper.render(&font, PaperWidth::Mm58).write_png(&path)?;
    println!(
        "wrote {} ({} ESC/POS bytes, font {})",
        path.display(),
        bytes.len(),
        font.path().display()
    );

    let checklist = ChecklistPrint {
        hall_name: "某某县政务服务中心".into(),
        service_name: "不动产转移登记（二手房买卖）".into(),
        service_code: Some("11370000MB0000000X".into()),
        materials: vec![
            MaterialLine {
                name: "不动产登记申请书".into(),
                form: MaterialForm::Original,
                count: 1,
                note: None,
            },
            MaterialLine {
                name: "申请人身份证明".into(),
                form: MaterialForm::OriginalAndCopy,
                count: 1,
                note: Some("夫妻双方均需提供".into()),
            },
            MaterialLine {
                name: "不动产权属证书".into(),
                form: MaterialForm::Original,
                count: 1,
                note: None,
            },
            MaterialLine {
                name: "存量房买卖合同".into(),
                form: MaterialForm::Copy,
                count: 2,
                note: Some("须网签备案".into()),
            },
        ],
        promised_days: Some(5),
        statutory_days: Some(30),
        fees: "住宅每件80元".into(),
        window: "二楼 3号、5号窗口".into(),
        phone: Some("0531-12345678".into()),
        printed_at: "2026-11-23 09:31".into(),
    };
    let bytes = render_checklist(&checklist, PaperWidth::Mm80)?;
    let (paper, _) = VirtualPrinter::decode(&bytes);
    let path = out.join("sample-checklist.png");
    paper.render(&font, PaperWidth::Mm80).write_png(&path)?;
    println!("wrote {}", path.display());
    Ok(())
}
