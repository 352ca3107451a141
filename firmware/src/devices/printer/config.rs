//! The printers' configuration: the single `[printer]` table or the `[[printer]]` tables,
//! and the checks that name a bad key.

use hallq_hardware::escpos::PaperWidth;
use hallq_hardware::layout::{PreparedTemplate, TemplateError, TicketTemplate};
use hallq_hardware::transport::TransportConfig;
use serde::Deserialize;

use super::DEVICE;

/// One printer of the configuration: the `[printer]` table, or one of the `[[printer]]`
/// tables (which name it with `id` and list the kiosks and desks it `serves`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PrinterConfig {
    /// `[[printer]]` only: the printer's name, unique in the hall (letters, digits, `-`
    /// and `_`); its health is device `printer-<id>`, its metrics carry `printer="<id>"`.
    #[serde(default)]
    pub id: Option<String>,
    /// `[[printer]]` only: the kiosk ids (`X-Kiosk-Id`) and desk ids (`desk`,
    /// `desk-<id>`) whose tickets print here, matched exactly. One kiosk, one printer.
    #[serde(default)]
    pub serves: Vec<String>,
    /// How the printer is attached.
    pub transport: TransportConfig,
    /// Roll width.
    #[serde(default = "default_paper")]
    pub paper: PaperWidth,
    /// What the ticket shows.
    #[serde(default)]
    pub ticket: TicketTemplate,
    /// `[printer]` only: tickets print when their channel starts with one of these
    /// (`kiosk` covers `kiosk-2`); tickets taken by phone or at a window do not. Absent
    /// means `["kiosk"]`.
    #[serde(default)]
    pub channels: Option<Vec<String>>,
    /// Status poll interval while idle, seconds.
    #[serde(default = "default_poll")]
    pub status_poll_secs: u64,
    /// Read/connect timeout, milliseconds.
    #[serde(default = "default_timeout")]
    pub timeout_ms: u64,
    /// A job older than this when its turn comes is dropped: a ticket printed minutes
    /// after the citizen left only confuses the next one.
    #[serde(default = "default_max_age")]
    pub max_job_age_secs: u64,
}

/// The channels a single `[printer]` prints when it does not say.
const DEFAULT_CHANNEL: &str = "kiosk";

fn default_paper() -> PaperWidth {
    PaperWidth::Mm80
}
fn default_poll() -> u64 {
    5
}
fn default_timeout() -> u64 {
    500
}
fn default_max_age() -> u64 {
    60
}

impl PrinterConfig {
    /// A single `[printer]` on `transport` with every other setting at its default.
    pub fn with_transport(transport: TransportConfig) -> PrinterConfig {
        PrinterConfig {
            id: None,
            serves: Vec::new(),
            transport,
            paper: default_paper(),
            ticket: TicketTemplate::default(),
            channels: None,
            status_poll_secs: default_poll(),
            timeout_ms: default_timeout(),
            max_job_age_secs: default_max_age(),
        }
    }

    /// Checks the template against the paper (logo width, field names, printable text).
    pub fn prepare(&self) -> Result<PreparedTemplate, TemplateError> {
        self.ticket.validate(self.paper)
    }

    /// A `[[printer]]` named `id` serving `serves`, on `transport`, the rest at defaults.
    pub fn serving(id: &str, serves: &[&str], transport: TransportConfig) -> PrinterConfig {
        PrinterConfig {
            id: Some(id.to_string()),
            serves: serves.iter().map(|s| s.to_string()).collect(),
            ..PrinterConfig::with_transport(transport)
        }
    }

    /// The printer's name: its `id`, or `printer` for the single `[printer]`.
    pub fn name(&self) -> &str {
        self.id.as_deref().unwrap_or(DEVICE)
    }

    /// The device id its health is reported under: `printer` for the single
    /// `[printer]`, `printer-<id>` for a `[[printer]]`.
    pub fn device(&self) -> String {
        match &self.id {
            None => DEVICE.to_string(),
            Some(id) => format!("{DEVICE}-{id}"),
        }
    }

    /// Whether tickets taken at `channel` print here: for a `[[printer]]` the channel is
    /// one it serves; for the single `[printer]` it starts with one of its `channels`.
    pub fn prints(&self, channel: &str) -> bool {
        if self.id.is_some() {
            return self.serves.iter().any(|s| s == channel);
        }
        match &self.channels {
            Some(prefixes) => prefixes.iter().any(|c| channel.starts_with(c.as_str())),
            None => channel.starts_with(DEFAULT_CHANNEL),
        }
    }
}

/// The configuration's `printer` key: nothing, the single `[printer]` table halls had
/// first, or `[[printer]]` tables, one per printer. Both forms read the same keys; the
/// checks of [`PrintersConfig::check`] keep each form's own (`id` and `serves` for the
/// tables, `channels` for the single one).
// Read once at start; the single form's size costs nothing worth a box.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, Default)]
pub enum PrintersConfig {
    /// No printer: tickets are not printed.
    #[default]
    None,
    /// `[printer]`: one printer, device `printer`, printing what `channels` match.
    Single(PrinterConfig),
    /// `[[printer]]`: several printers, each serving its kiosks and desks.
    Several(Vec<PrinterConfig>),
}

impl<'de> Deserialize<'de> for PrintersConfig {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Form;
        impl<'de> serde::de::Visitor<'de> for Form {
            type Value = PrintersConfig;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a [printer] table or [[printer]] tables")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                map: A,
            ) -> Result<Self::Value, A::Error> {
                PrinterConfig::deserialize(serde::de::value::MapAccessDeserializer::new(map))
                    .map(PrintersConfig::Single)
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(
                self,
                seq: A,
            ) -> Result<Self::Value, A::Error> {
                Vec::<PrinterConfig>::deserialize(serde::de::value::SeqAccessDeserializer::new(seq))
                    .map(PrintersConfig::Several)
            }
        }
        d.deserialize_any(Form)
    }
}

/// A printer configuration that cannot be used: the dotted key (`printer.channels`,
/// `printer[1].serves`) and what is wrong.
pub type PrinterConfigError = (String, String);

impl PrintersConfig {
    /// Every printer configured, in the file's order.
    pub fn iter(&self) -> impl Iterator<Item = &PrinterConfig> {
        let list: &[PrinterConfig] = match self {
            PrintersConfig::None => &[],
            PrintersConfig::Single(p) => std::slice::from_ref(p),
            PrintersConfig::Several(list) => list,
        };
        list.iter()
    }

    /// The printers with the dotted key each is configured under.
    pub fn keyed(&self) -> Vec<(String, &PrinterConfig)> {
        match self {
            PrintersConfig::None => Vec::new(),
            PrintersConfig::Single(p) => vec![("printer".to_string(), p)],
            PrintersConfig::Several(list) => list
                .iter()
                .enumerate()
                .map(|(i, p)| (format!("printer[{i}]"), p))
                .collect(),
        }
    }

    /// Whether no printer is configured.
    pub fn is_empty(&self) -> bool {
        self.iter().next().is_none()
    }

    /// Checks each form's keys, the ids and the mapping: `id` and `serves` only in
    /// `[[printer]]`, `channels` only in `[printer]`; ids present, well formed and
    /// unique; every printer serving something, and no kiosk or desk served by two. When
    /// the configuration declares its kiosks and desks (`known`), a printer may serve
    /// only those. The ticket template is checked apart ([`PrinterConfig::prepare`]).
    pub fn check(&self, known: Option<&[String]>) -> Result<(), PrinterConfigError> {
        let err = |key: String, message: &str| Err((key, message.to_string()));
        match self {
            PrintersConfig::None => Ok(()),
            PrintersConfig::Single(p) => {
                if p.id.is_some() {
                    return err(
                        "printer.id".into(),
                        "a single [printer] is known as \"printer\"; for several printers write [[printer]] tables, each with an id",
                    );
                }
                if !p.serves.is_empty() {
                    return err(
                        "printer.serves".into(),
                        "serves belongs to [[printer]] tables; a single [printer] prints the channels its `channels` list",
                    );
                }
                if p.channels.as_ref().is_some_and(Vec::is_empty) {
                    return err(
                        "printer.channels".into(),
                        "list at least one channel whose tickets print, e.g. [\"kiosk\"]",
                    );
                }
                Ok(())
            }
            PrintersConfig::Several(list) => {
                // Which printer serves each kiosk or desk, to refuse a second.
                let mut served: std::collections::BTreeMap<&str, &str> = Default::default();
                for (i, p) in list.iter().enumerate() {
                    let key = format!("printer[{i}]");
                    let Some(id) = p.id.as_deref() else {
                        return err(
                            format!("{key}.id"),
                            "each [[printer]] needs an id (letters, digits, - and _), e.g. id = \"p1\"",
                        );
                    };
                    if !is_id(id) {
                        return err(format!("{key}.id"), "use 1 to 32 letters, digits, - and _");
                    }
                    if list[..i].iter().any(|q| q.id.as_deref() == Some(id)) {
                        return Err((
                            format!("{key}.id"),
                            format!("another [[printer]] is already called {id:?}"),
                        ));
                    }
                    if p.channels.is_some() {
                        return err(
                            format!("{key}.channels"),
                            "a [[printer]] prints for the kiosks and desks its `serves` names (exact ids such as \"kiosk-1\" or \"desk\"); channels belongs to a single [printer]",
                        );
                    }
                    if p.serves.is_empty() {
                        return err(
                            format!("{key}.serves"),
                            "list the kiosk ids (X-Kiosk-Id) and desk ids whose tickets print here, e.g. serves = [\"kiosk-1\"]",
                        );
                    }
                    for s in &p.serves {
                        if !is_channel(s) {
                            return Err((
                                format!("{key}.serves"),
                                format!(
                                    "{s:?}: a kiosk or desk id is 1 to 32 letters, digits, - and _"
                                ),
                            ));
                        }
                        if let Some(known) = known
                            && !known.iter().any(|k| k == s)
                        {
                            return Err((
                                format!("{key}.serves"),
                                format!(
                                    "{s:?} is not a kiosk or desk of this hall (known: {})",
                                    known.join(", ")
                                ),
                            ));
                        }
                        if let Some(other) = served.insert(s, id) {
                            return Err((
                                format!("{key}.serves"),
                                format!(
                                    "{s:?} is already served by printer {other:?}: a kiosk or desk has one printer"
                                ),
                            ));
                        }
                    }
                }
                Ok(())
            }
        }
    }
}

/// A printer id: 1 to 32 letters, digits, `-` and `_`.
fn is_id(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 32
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
}

/// A kiosk or desk id as `X-Kiosk-Id` carries it (the API takes up to 32 characters).
fn is_channel(s: &str) -> bool {
    is_id(s)
}
