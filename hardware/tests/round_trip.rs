//! Encoder → virtual printer → PNG, read back the way a person (or a phone) would:
//! the QR is decoded from the pixels and every CJK character cell must hold ink.

use hallq_hardware::escpos::PaperWidth;
use hallq_hardware::layout::{
    ChecklistPrint, MaterialForm, MaterialLine, TicketPrint, TicketTemplate, render_checklist,
};
use hallq_hardware::virtual_printer::{CjkFont, Rendered, VirtualPrinter};

fn font() -> CjkFont {
    match CjkFont::find() {
        Ok(f) => f,
        Err(e) => panic!("{e} — the render tests need a CJK font (Debian: fonts-wqy-microhei)"),
    }
}

fn ticket() -> TicketPrint {
    TicketPrint::sample()
}

fn decode_qrs(r: &Rendered) -> Vec<String> {
    let mut img =
        rqrr::PreparedImage::prepare_from_greyscale(r.width as usize, r.height as usize, |x, y| {
            r.pixel(x as u32, y as u32)
        });
    img.detect_grids()
        .into_iter()
        .filter_map(|g| g.decode().ok().map(|(_, s)| s))
        .collect()
}

fn assert_cjk_cells_inked(r: &Rendered) {
    assert!(
        r.missing_glyphs.is_empty(),
        "font lacks {:?}",
        r.missing_glyphs
    );
    let cjk: Vec<_> = r.glyphs.iter().filter(|g| !g.ch.is_ascii()).collect();
    assert!(!cjk.is_empty(), "no CJK glyph was drawn");
    for g in cjk {
        let dark = r.dark_pixels_in(g.x, g.y, g.w, g.h);
        // An ideograph at 24×24 covers well over 20 dots, punctuation (、：) a few;
        // a blank cell covers none.
        let min = if g.ch.is_alphanumeric() { 20 } else { 3 };
        assert!(
            dark >= min,
            "glyph {:?} at ({}, {}) has only {dark} dark pixels",
            g.ch,
            g.x,
            g.y
        );
    }
}

#[test]
fn a_ticket_renders_with_a_readable_qr_and_inked_chinese() {
    for paper in [PaperWidth::Mm58, PaperWidth::Mm80] {
        let bytes = TicketTemplate::default()
            .validate(paper)
            .unwrap()
            .render(&ticket())
            .unwrap();
        let (doc, stats) = VirtualPrinter::decode(&bytes);
        assert_eq!((stats.unknown, stats.truncated, stats.bad_text), (0, 0, 0));
        let r = doc.render(&font(), paper);
        assert_eq!(r.width, paper.dots() + 48);
        assert_eq!(decode_qrs(&r), ["T20261123-A012"]);
        assert_cjk_cells_inked(&r);
        // The big number: four quad-size cells, each 48×96 dots and inked.
        let big: Vec<_> = r.glyphs.iter().filter(|g| g.h == 96).collect();
        assert_eq!(big.iter().map(|g| g.ch).collect::<String>(), "A012");
        for g in big {
            assert!(r.dark_pixels_in(g.x, g.y, g.w, g.h) > 300, "{:?}", g.ch);
        }
        assert!(r.to_png().unwrap().starts_with(b"\x89PNG"));
    }
}

#[test]
fn a_qr_url_survives_the_round_trip() {
    let tpl = TicketTemplate {
        qr_url: Some("https://hall.example/q?t={id}".into()),
        qr_module: 4,
        ..Default::default()
    };
    let bytes = tpl
        .validate(PaperWidth::Mm58)
        .unwrap()
        .render(&ticket())
        .unwrap();
    let (doc, _) = VirtualPrinter::decode(&bytes);
    let r = doc.render(&font(), PaperWidth::Mm58);
    assert_eq!(decode_qrs(&r), ["https://hall.example/q?t=T20261123-A012"]);
}

#[test]
fn a_blank_paper_has_no_ink_in_its_cells() {
    // Guard for the guard: dark-pixel counting must see nothing where nothing was drawn.
    let (doc, _) = VirtualPrinter::decode(b"\x1b@\x1c&\n\n");
    let r = doc.render(&font(), PaperWidth::Mm58);
    assert_eq!(r.dark_pixels_in(0, 0, r.width, r.height), 0);
}

#[test]
fn a_checklist_renders_every_material() {
    let c = ChecklistPrint {
        hall_name: "某某县政务服务中心".into(),
        service_name: "社会保障卡申领".into(),
        service_code: None,
        materials: vec![
            MaterialLine {
                name: "居民身份证".into(),
                form: MaterialForm::Original,
                count: 1,
                note: None,
            },
            MaterialLine {
                name: "近期免冠彩色照片".into(),
                form: MaterialForm::Copy,
                count: 2,
                note: Some("白底一寸".into()),
            },
        ],
        promised_days: Some(3),
        statutory_days: None,
        fees: "不收费".into(),
        window: "一楼 8号窗口".into(),
        phone: None,
        printed_at: "2026-11-23 09:31".into(),
    };
    let bytes = render_checklist(&c, PaperWidth::Mm80).unwrap();
    let (doc, stats) = VirtualPrinter::decode(&bytes);
    assert_eq!(stats.unknown, 0);
    let text = doc.to_text(48);
    for s in [
        "一次性告知单",
        "1. 居民身份证",
        "原件 1份",
        "复印件 2份",
        "备注：白底一寸",
        "承诺时限：3个工作日",
    ] {
        assert!(text.contains(s), "missing {s:?} in\n{text}");
    }
    assert_cjk_cells_inked(&doc.render(&font(), PaperWidth::Mm80));
}

#[test]
fn a_font_without_chinese_glyphs_is_caught() {
    // DejaVu Sans (Debian fonts-dejavu-core) has Latin but no CJK: the render must say
    // so, which is what makes the inked-cell check above fail on a wrong font.
    let latin = CjkFont::load("/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf")
        .expect("DejaVu Sans (Debian fonts-dejavu-core)");
    assert!(!latin.has_glyph('号'));
    let bytes = TicketTemplate::default()
        .validate(PaperWidth::Mm58)
        .unwrap()
        .render(&ticket())
        .unwrap();
    let (doc, _) = VirtualPrinter::decode(&bytes);
    let r = doc.render(&latin, PaperWidth::Mm58);
    assert!(r.missing_glyphs.contains(&'号'), "{:?}", r.missing_glyphs);
    assert!(!r.missing_glyphs.contains(&'A'));
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(48))]
    #[test]
    fn rendering_arbitrary_bytes_never_panics(bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..1024)) {
        let mut framed = b"\x1b@\x1c&".to_vec();
        framed.extend_from_slice(&bytes);
        let (doc, _) = VirtualPrinter::decode(&framed);
        let r = doc.render(&font(), PaperWidth::Mm58);
        proptest::prop_assert_eq!(r.pixels.len(), (r.width * r.height) as usize);
    }
}
