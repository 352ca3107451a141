//! The service guide (办事指南) of each service: basis, conditions, materials, process,
//! time limits, fees, where to go and whom to call. The kiosk shows it, and prints its
//! material checklist (一次性告知单) so that a citizen learns on the first visit everything
//! to bring. The guides live in the hall's configuration under `[guide.<service code>]`.

use hallq_engine::{Lang, Names};
use hallq_hardware::layout::{ChecklistPrint, MaterialForm, MaterialLine};
use serde::{Deserialize, Serialize};

/// A text published in the hall's languages. In the configuration it is either a plain
/// string (Simplified Chinese only) or a table `{ "zh-CN" = …, "zh-TW" = …, en = … }`;
/// a missing translation falls back to Simplified Chinese.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Text(pub Names);

impl<'de> Deserialize<'de> for Text {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Either {
            Plain(String),
            Table(Names),
        }
        match Either::deserialize(d) {
            Ok(Either::Plain(zh_cn)) => Ok(Text(Names {
                zh_cn,
                ..Names::default()
            })),
            Ok(Either::Table(n)) => Ok(Text(n)),
            Err(_) => Err(serde::de::Error::custom(
                "expected a string or a table { \"zh-CN\" = …, \"zh-TW\" = …, en = … }",
            )),
        }
    }
}

impl Serialize for Text {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut m = s.serialize_map(Some(3))?;
        m.serialize_entry("zh-CN", self.get(Lang::ZhCn))?;
        m.serialize_entry("zh-TW", self.get(Lang::ZhTw))?;
        m.serialize_entry("en", self.get(Lang::En))?;
        m.end()
    }
}

impl Text {
    /// The text in `lang`, or Simplified Chinese where no translation is given.
    pub fn get(&self, lang: Lang) -> &str {
        self.0.get(lang)
    }

    fn is_blank(&self) -> bool {
        self.0.zh_cn.trim().is_empty()
    }
}

/// One required material (申请材料).
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Material {
    /// What to bring.
    pub name: Text,
    /// Original (原件), copy (复印件) or both.
    pub form: MaterialForm,
    /// How many of it.
    #[serde(default = "one")]
    pub count: u32,
    /// A remark ("需本人签字").
    #[serde(default)]
    pub note: Option<Text>,
}

fn one() -> u32 {
    1
}

/// The guide of one service.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Guide {
    /// The published item code (事项编码), digits only, typed on the kiosk's number pad.
    pub item_code: String,
    /// Initials of the service's Chinese names in pinyin ("SHBZ" for 社会保障, "SB" for
    /// 社保), so a citizen finds it on a letter pad without typing Chinese.
    pub pinyin: Vec<String>,
    /// Legal basis (设定依据).
    pub basis: Text,
    /// Who may apply and when (受理条件), one point each.
    pub conditions: Vec<Text>,
    /// What to bring (申请材料).
    pub materials: Vec<Material>,
    /// The steps (办理流程), in order.
    pub process: Vec<Text>,
    /// Promised time limit in working days (承诺时限); 0 means done on the spot (即办).
    pub promised_days: u32,
    /// Statutory time limit in working days (法定时限).
    pub statutory_days: u32,
    /// Fees (收费标准), as published; often 不收费.
    pub fees: Text,
    /// Where: window and floor ("一楼东区 1、2号窗口").
    pub location: Text,
    /// Consultation phone.
    pub phone: String,
    /// Online address for doing it from home, if any.
    #[serde(default)]
    pub online: Option<String>,
}

/// A guide that cannot be used: the key below `guide.<code>` and what is wrong.
#[derive(Debug, PartialEq, Eq)]
pub struct GuideError {
    /// Dotted path below the guide, e.g. `materials[1].count`.
    pub key: String,
    /// What is wrong.
    pub message: String,
}

impl Guide {
    /// Checks what the type system cannot: non-empty texts, sensible counts and limits.
    pub fn validate(&self) -> Result<(), GuideError> {
        let err = |key: String, message: &str| {
            Err(GuideError {
                key,
                message: message.into(),
            })
        };
        if self.item_code.is_empty()
            || self.item_code.len() > 20
            || !self.item_code.chars().all(|c| c.is_ascii_digit())
        {
            return err("item_code".into(), "use 1 to 20 digits");
        }
        if self.pinyin.is_empty() {
            return err("pinyin".into(), "give at least the initials of the name");
        }
        for (i, p) in self.pinyin.iter().enumerate() {
            if p.is_empty() || p.len() > 12 || !p.chars().all(|c| c.is_ascii_uppercase()) {
                return err(format!("pinyin[{i}]"), "use 1 to 12 capital letters A-Z");
            }
        }
        if self.basis.is_blank() {
            return err("basis".into(), "the legal basis must be given");
        }
        for (name, list) in [("conditions", &self.conditions), ("process", &self.process)] {
            if list.is_empty() {
                return err(name.into(), "list at least one point");
            }
            if let Some(i) = list.iter().position(Text::is_blank) {
                return err(format!("{name}[{i}]"), "must not be empty");
            }
        }
        if self.materials.is_empty() {
            return err("materials".into(), "list at least one material");
        }
        for (i, m) in self.materials.iter().enumerate() {
            if m.name.is_blank() {
                return err(format!("materials[{i}].name"), "must not be empty");
            }
            if m.count == 0 || m.count > 20 {
                return err(format!("materials[{i}].count"), "must be 1 to 20");
            }
        }
        if self.statutory_days > 0 && self.promised_days > self.statutory_days {
            return err(
                "promised_days".into(),
                "the promised limit cannot exceed the statutory limit",
            );
        }
        if self.fees.is_blank() {
            return err("fees".into(), "say 不收费 when there is no fee");
        }
        if self.location.is_blank() {
            return err("location".into(), "give the window and floor");
        }
        if self.phone.trim().is_empty()
            || !self
                .phone
                .chars()
                .all(|c| c.is_ascii_digit() || c == '-' || c == ' ')
        {
            return err("phone".into(), "digits, spaces and - only");
        }
        Ok(())
    }

    /// Whether a citizen's letter-pad input finds this guide: the input is a prefix of one
    /// of its pinyin initials.
    pub fn matches_initials(&self, input: &str) -> bool {
        let input = input.trim().to_ascii_uppercase();
        !input.is_empty() && self.pinyin.iter().any(|p| p.starts_with(&input))
    }

    /// The printed checklist (一次性告知单), in Simplified Chinese as printers take GBK.
    pub fn checklist(
        &self,
        hall_name: &str,
        service_name: &str,
        printed_at: String,
    ) -> ChecklistPrint {
        ChecklistPrint {
            hall_name: hall_name.into(),
            service_name: service_name.into(),
            service_code: Some(self.item_code.clone()),
            materials: self
                .materials
                .iter()
                .map(|m| MaterialLine {
                    name: m.name.get(Lang::ZhCn).into(),
                    form: m.form,
                    count: m.count,
                    note: m.note.as_ref().map(|n| n.get(Lang::ZhCn).to_string()),
                })
                .collect(),
            promised_days: Some(self.promised_days),
            statutory_days: (self.statutory_days > 0).then_some(self.statutory_days),
            fees: self.fees.get(Lang::ZhCn).into(),
            window: self.location.get(Lang::ZhCn).into(),
            phone: Some(self.phone.clone()),
            printed_at,
        }
    }

    /// The guide as the API returns it, every text in all three languages.
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::to_value(self).unwrap_or(serde_json::Value::Null)
    }
}

/// The label of a material form in `lang`, for screens.
pub fn form_label(form: MaterialForm, lang: Lang) -> &'static str {
    match (form, lang) {
        (MaterialForm::Original, Lang::En) => "original",
        (MaterialForm::Copy, Lang::En) => "copy",
        (MaterialForm::OriginalAndCopy, Lang::En) => "original and copy",
        (MaterialForm::Original, Lang::ZhTw) => "原件",
        (MaterialForm::Copy, Lang::ZhTw) => "影本",
        (MaterialForm::OriginalAndCopy, Lang::ZhTw) => "原件及影本",
        (f, _) => f.label(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Guide {
        toml::from_str(
            r#"
item_code = "0101"
pinyin = ["SHBZ", "SB"]
basis = { "zh-CN" = "《中华人民共和国社会保险法》", en = "Social Insurance Law" }
conditions = ["本县户籍"]
materials = [{ name = "居民身份证", form = "original" }, { name = "户口簿", form = "original_and_copy", count = 2, note = "首页及本人页" }]
process = ["取号", "受理", "办结"]
promised_days = 0
statutory_days = 5
fees = "不收费"
location = "一楼东区 1、2号窗口"
phone = "0571-12345678"
"#,
        )
        .unwrap()
    }

    #[test]
    fn a_plain_string_is_simplified_chinese_and_translations_fall_back() {
        let g = sample();
        assert_eq!(g.fees.get(Lang::En), "不收费");
        assert_eq!(g.basis.get(Lang::En), "Social Insurance Law");
        assert_eq!(g.basis.get(Lang::ZhTw), "《中华人民共和国社会保险法》");
        assert!(g.validate().is_ok());
    }

    #[test]
    fn initials_match_by_prefix_in_any_case() {
        let g = sample();
        assert!(g.matches_initials("SB"));
        assert!(g.matches_initials("sh"));
        assert!(!g.matches_initials("BD"));
        assert!(!g.matches_initials(""));
    }

    #[test]
    fn a_zero_count_names_the_material() {
        let mut g = sample();
        g.materials[1].count = 0;
        assert_eq!(g.validate().unwrap_err().key, "materials[1].count");
    }

    #[test]
    fn a_promise_longer_than_the_law_is_refused() {
        let mut g = sample();
        g.promised_days = 9;
        assert_eq!(g.validate().unwrap_err().key, "promised_days");
    }

    #[test]
    fn lowercase_initials_are_refused() {
        let mut g = sample();
        g.pinyin.push("sb".into());
        assert_eq!(g.validate().unwrap_err().key, "pinyin[2]");
    }

    #[test]
    fn the_checklist_carries_every_material() {
        let c = sample().checklist("青山县政务服务中心", "社会保障", "2026-11-23 09:30".into());
        assert_eq!(c.materials.len(), 2);
        assert_eq!(c.materials[1].count, 2);
        assert_eq!(c.materials[1].note.as_deref(), Some("首页及本人页"));
        assert_eq!(c.statutory_days, Some(5));
        assert_eq!(c.window, "一楼东区 1、2号窗口");
    }
}
