//! What the kiosk knows of the hall, as the controller's API gives it, and the pure logic
//! on it: names in the chosen language, pinyin-initial and item-code search, the guide's
//! sections composed for reading. No UI and no I/O here, so all of it is unit-tested.

use serde::Deserialize;

/// The three languages of every screen.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Language {
    /// 简体中文, the hall's default.
    #[default]
    ZhCn,
    /// 繁體中文.
    ZhTw,
    /// English for visitors.
    En,
}

impl Language {
    /// The code the screens use (also the folder of its bundled catalogue).
    pub fn code(self) -> &'static str {
        match self {
            Language::ZhCn => "zh_CN",
            Language::ZhTw => "zh_TW",
            Language::En => "en",
        }
    }

    /// The BCP 47 tag for `Accept-Language`.
    pub fn tag(self) -> &'static str {
        match self {
            Language::ZhCn => "zh-CN",
            Language::ZhTw => "zh-TW",
            Language::En => "en",
        }
    }

    /// Parses a screen code or a tag (`zh_CN`, `zh-TW`, `en`); unknown input is `None`.
    pub fn parse(s: &str) -> Option<Language> {
        match s.replace('-', "_").to_ascii_lowercase().as_str() {
            "zh_cn" | "zh" | "zh_hans" => Some(Language::ZhCn),
            "zh_tw" | "zh_hk" | "zh_hant" => Some(Language::ZhTw),
            "en" | "en_us" | "en_gb" => Some(Language::En),
            _ => None,
        }
    }
}

/// A text in the three languages; empty translations fall back to Simplified Chinese.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
pub struct Names {
    /// 简体中文.
    #[serde(rename = "zh-CN", default)]
    pub zh_cn: String,
    /// 繁體中文.
    #[serde(rename = "zh-TW", default)]
    pub zh_tw: Option<String>,
    /// English.
    #[serde(default)]
    pub en: Option<String>,
}

impl Names {
    /// The text in `lang`.
    pub fn get(&self, lang: Language) -> &str {
        let t = match lang {
            Language::ZhCn => None,
            Language::ZhTw => self.zh_tw.as_deref(),
            Language::En => self.en.as_deref(),
        };
        t.filter(|s| !s.is_empty()).unwrap_or(&self.zh_cn)
    }
}

/// One service of the catalogue with its live queue figures.
#[derive(Debug, Clone, Deserialize)]
pub struct Service {
    /// Service code (`SB`).
    pub code: String,
    /// Ticket prefix (`A`).
    pub prefix: String,
    /// Names.
    pub name: Names,
    /// Department.
    #[serde(default)]
    pub department: String,
    /// Windows that serve it.
    #[serde(default)]
    pub windows: Vec<u32>,
    /// Citizens waiting.
    #[serde(default)]
    pub waiting: u32,
    /// Estimated wait for a new ticket.
    #[serde(default)]
    pub estimated_wait_minutes: u32,
    /// Pinyin initials a citizen may type.
    #[serde(default)]
    pub pinyin: Vec<String>,
    /// Published item code, typed on the number pad.
    #[serde(default)]
    pub item_code: Option<String>,
}

/// Finds services by pinyin initials (letters) or by item code or service code (digits
/// or letters): a prefix of any of them matches. Results keep catalogue order.
pub fn search<'a>(services: &'a [Service], input: &str) -> Vec<&'a Service> {
    let input = input.trim().to_ascii_uppercase();
    if input.is_empty() {
        return Vec::new();
    }
    services
        .iter()
        .filter(|s| {
            s.pinyin.iter().any(|p| p.starts_with(&input))
                || s.code.starts_with(&input)
                || s.item_code
                    .as_deref()
                    .is_some_and(|c| c.starts_with(&input))
        })
        .collect()
}

/// A window in the overview.
#[derive(Debug, Clone, Deserialize)]
pub struct WindowState {
    /// Window number.
    pub number: u32,
    /// Name over the window.
    #[serde(default)]
    pub name: String,
    /// Whether someone is signed in.
    #[serde(default)]
    pub staffed: bool,
    /// Whether it is paused.
    #[serde(default)]
    pub paused: bool,
    /// The ticket being served.
    #[serde(default)]
    pub current: Option<CurrentTicket>,
}

/// The ticket a window serves.
#[derive(Debug, Clone, Deserialize)]
pub struct CurrentTicket {
    /// Its number.
    pub number: String,
}

/// Whether the hall issues tickets now, from the overview.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Issuing {
    /// Tickets are being issued.
    pub open: bool,
    /// Why not (before opening, a break, a holiday…), in the three languages.
    #[serde(default)]
    pub reason: Option<Names>,
}

impl Default for Issuing {
    /// A controller that does not say is taken at its word when a ticket is asked for.
    fn default() -> Self {
        Issuing {
            open: true,
            reason: None,
        }
    }
}

/// The hall overview.
#[derive(Debug, Clone, Deserialize)]
pub struct Overview {
    /// The hall's name.
    pub hall: String,
    /// Whether tickets are issued now.
    #[serde(default)]
    pub issuing: Issuing,
    /// Windows.
    #[serde(default)]
    pub windows: Vec<WindowState>,
}

/// A ticket as the API returns it.
#[derive(Debug, Clone, Deserialize)]
pub struct Ticket {
    /// Ticket id.
    pub id: u64,
    /// Printed number (`A012`).
    pub number: String,
    /// Service code.
    pub service: String,
    /// Service names.
    #[serde(default)]
    pub service_name: Option<Names>,
    /// People ahead.
    #[serde(default)]
    pub ahead: u32,
    /// Estimated wait.
    #[serde(default)]
    pub estimated_wait_minutes: u32,
    /// Windows that serve it.
    #[serde(default)]
    pub windows: Vec<u32>,
    /// Issue time, local.
    #[serde(default)]
    pub issued_at_local: String,
    /// The appointment it came from, if checked in.
    #[serde(default)]
    pub appointment: Option<serde_json::Value>,
    /// `normal` or `green` (绿色通道: called first).
    #[serde(default)]
    pub class: String,
}

/// One material of a guide.
#[derive(Debug, Clone, Deserialize)]
pub struct Material {
    /// What to bring.
    pub name: Names,
    /// `original`, `copy` or `original_and_copy`.
    pub form: String,
    /// How many.
    pub count: u32,
    /// Remark.
    #[serde(default)]
    pub note: Option<Names>,
}

/// A service guide as the API returns it.
#[derive(Debug, Clone, Deserialize)]
pub struct Guide {
    /// Service code.
    pub code: String,
    /// Service names.
    pub name: Names,
    /// Department.
    #[serde(default)]
    pub department: String,
    /// Item code.
    pub item_code: String,
    /// Legal basis.
    pub basis: Names,
    /// Conditions.
    pub conditions: Vec<Names>,
    /// Materials.
    pub materials: Vec<Material>,
    /// Steps.
    pub process: Vec<Names>,
    /// Promised working days (0: on the spot).
    pub promised_days: u32,
    /// Statutory working days.
    pub statutory_days: u32,
    /// Fees.
    pub fees: Names,
    /// Window and floor.
    pub location: Names,
    /// Consultation phone.
    pub phone: String,
    /// Online address.
    #[serde(default)]
    pub online: Option<String>,
}

/// The label of a material form in `lang`.
pub fn form_label(form: &str, lang: Language) -> &'static str {
    match (form, lang) {
        ("original", Language::En) => "original",
        ("copy", Language::En) => "copy",
        ("original_and_copy", Language::En) => "original and copy",
        ("original", _) => "原件",
        ("copy", Language::ZhTw) => "影本",
        ("original_and_copy", Language::ZhTw) => "原件及影本",
        ("copy", _) => "复印件",
        ("original_and_copy", _) => "原件及复印件",
        _ => "",
    }
}

impl Guide {
    /// The materials as numbered lines: "1. 户口簿（原件及复印件）× 2 — 首页及本人页".
    pub fn materials_text(&self, lang: Language) -> String {
        self.materials
            .iter()
            .enumerate()
            .map(|(i, m)| {
                let form = form_label(&m.form, lang);
                let mut line = match lang {
                    Language::En => {
                        format!("{}. {} ({form}) × {}", i + 1, m.name.get(lang), m.count)
                    }
                    _ => format!("{}. {}（{form}）× {}", i + 1, m.name.get(lang), m.count),
                };
                if let Some(n) = &m.note {
                    line.push_str(" — ");
                    line.push_str(n.get(lang));
                }
                line
            })
            .collect::<Vec<_>>()
            .join("\n")
    }

    /// A list of texts as bullet (or numbered) lines.
    pub fn lines(list: &[Names], lang: Language, numbered: bool) -> String {
        list.iter()
            .enumerate()
            .map(|(i, t)| {
                if numbered {
                    format!("{}. {}", i + 1, t.get(lang))
                } else {
                    format!("• {}", t.get(lang))
                }
            })
            .collect::<Vec<_>>()
            .join("\n")
    }
}

/// Window numbers as citizens read them: "1、2、9" or "1, 2, 9".
pub fn windows_text(windows: &[u32], lang: Language) -> String {
    let sep = if lang == Language::En { ", " } else { "、" };
    windows
        .iter()
        .map(u32::to_string)
        .collect::<Vec<_>>()
        .join(sep)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn services() -> Vec<Service> {
        serde_json::from_value(serde_json::json!([
            { "code": "SB", "prefix": "A", "name": { "zh-CN": "社会保障", "en": "Social insurance" },
              "pinyin": ["SHBZ", "SB"], "item_code": "0101" },
            { "code": "BDC", "prefix": "C", "name": { "zh-CN": "不动产登记" },
              "pinyin": ["BDCDJ", "FCZ"], "item_code": "0301" },
            { "code": "SW", "prefix": "E", "name": { "zh-CN": "税务办理" },
              "pinyin": ["SWBL"], "item_code": "0501" },
        ]))
        .unwrap()
    }

    #[test]
    fn sb_finds_social_insurance_only() {
        let s = services();
        let found: Vec<_> = search(&s, "SB").iter().map(|s| s.code.as_str()).collect();
        assert_eq!(found, ["SB"]);
    }

    #[test]
    fn one_letter_finds_every_service_starting_with_it() {
        let s = services();
        let found: Vec<_> = search(&s, "s").iter().map(|s| s.code.as_str()).collect();
        assert_eq!(found, ["SB", "SW"]);
    }

    #[test]
    fn digits_search_the_item_code() {
        let s = services();
        let found: Vec<_> = search(&s, "03").iter().map(|s| s.code.as_str()).collect();
        assert_eq!(found, ["BDC"]);
        assert!(search(&s, "").is_empty());
        assert!(search(&s, "9").is_empty());
    }

    #[test]
    fn a_missing_translation_falls_back_to_simplified_chinese() {
        let s = services();
        assert_eq!(s[0].name.get(Language::En), "Social insurance");
        assert_eq!(s[1].name.get(Language::En), "不动产登记");
        assert_eq!(s[1].name.get(Language::ZhTw), "不动产登记");
    }

    #[test]
    fn languages_parse_from_codes_and_tags() {
        assert_eq!(Language::parse("zh-TW"), Some(Language::ZhTw));
        assert_eq!(Language::parse("zh_CN"), Some(Language::ZhCn));
        assert_eq!(Language::parse("EN"), Some(Language::En));
        assert_eq!(Language::parse("fr"), None);
    }

    #[test]
    fn materials_read_as_numbered_lines_with_form_and_count() {
        let g: Guide = serde_json::from_value(serde_json::json!({
            "code": "SB", "name": { "zh-CN": "社会保障" }, "item_code": "0101",
            "basis": { "zh-CN": "法" }, "conditions": [], "process": [],
            "materials": [
                { "name": { "zh-CN": "户口簿", "en": "Household register" }, "form": "original_and_copy", "count": 2,
                  "note": { "zh-CN": "首页及本人页" } }
            ],
            "promised_days": 0, "statutory_days": 5, "fees": { "zh-CN": "不收费" },
            "location": { "zh-CN": "一楼" }, "phone": "1"
        }))
        .unwrap();
        assert_eq!(
            g.materials_text(Language::ZhCn),
            "1. 户口簿（原件及复印件）× 2 — 首页及本人页"
        );
        assert_eq!(
            g.materials_text(Language::En),
            "1. Household register (original and copy) × 2 — 首页及本人页"
        );
        assert_eq!(
            g.materials_text(Language::ZhTw),
            "1. 户口簿（原件及影本）× 2 — 首页及本人页"
        );
    }

    #[test]
    fn windows_join_with_the_language_separator() {
        assert_eq!(windows_text(&[1, 2, 9], Language::ZhCn), "1、2、9");
        assert_eq!(windows_text(&[1, 2], Language::En), "1, 2");
    }
}
