//! What is in force now: the hall's queue setup (service catalogue, windows, calendar,
//! rules, rating reasons) and the service guides that go with it. Either the file's
//! (`[queue]` and `[guide.*]` in `hallq.toml`) or the last one the hall server pushed
//! and the core applied.
//!
//! The hall core owns it ([`crate::core::HallCore::in_force`]): it swaps it on the core
//! thread in the same step that commits `config_applied`, before that event fans out, so
//! a consumer that reacts to the event and then reads the setup sees the new one. Every
//! consumer (ticket printing, guides, pages, window devices, the kiosk catalogue,
//! supervision, reports, the uplink) reads it from there and keeps no copy of its own.

use std::collections::BTreeMap;
use std::sync::Arc;

use hallq_engine::Setup;

use crate::guide::Guide;

/// One setup in force, as one value: readers get an `Arc` and never see half a change.
#[derive(Debug, Clone)]
pub struct InForce {
    /// The hall server's version number of the pushed setup; `None` for the file's.
    pub version: Option<i64>,
    /// The queue setup the engine runs.
    pub setup: Setup,
    /// Service guides by service code.
    pub guides: BTreeMap<String, Guide>,
}

impl InForce {
    /// The file's setup and guides.
    pub fn file(setup: Setup, guides: BTreeMap<String, Guide>) -> InForce {
        InForce {
            version: None,
            setup,
            guides,
        }
    }

    /// The window numbers, in the setup's order.
    pub fn windows(&self) -> Vec<u32> {
        self.setup.windows.iter().map(|w| w.number).collect()
    }

    /// Whether `window` is one of the hall's windows.
    pub fn has_window(&self, window: u32) -> bool {
        self.setup.windows.iter().any(|w| w.number == window)
    }

    /// The windows that serve `code`.
    pub fn windows_for(&self, code: &str) -> Vec<u32> {
        windows_for(&self.setup, code)
    }

    /// The number prefixes of the services a window serves, in the window's order.
    pub fn prefixes(&self, window: u32) -> Vec<String> {
        let Some(w) = self.setup.windows.iter().find(|w| w.number == window) else {
            return Vec::new();
        };
        w.services
            .iter()
            .filter_map(|s| {
                self.setup
                    .services
                    .iter()
                    .find(|d| d.code == s.code)
                    .map(|d| d.prefix.clone())
            })
            .collect()
    }

    /// A ticket number typed as digits at `window`: the window's first service prefix
    /// and the digits zero-padded to the setup's number width (`7` → `A007`).
    pub fn typed_number(&self, window: u32, digits: &str) -> String {
        let prefix = self.prefixes(window).into_iter().next().unwrap_or_default();
        let digits = digits.trim_start_matches('0');
        format!(
            "{prefix}{digits:0>width$}",
            width = self.setup.number_width as usize
        )
    }
}

/// The windows that serve `code` under `setup`.
pub fn windows_for(setup: &Setup, code: &str) -> Vec<u32> {
    setup
        .windows
        .iter()
        .filter(|w| w.services.iter().any(|s| s.code == code))
        .map(|w| w.number)
        .collect()
}

/// A shared handle to the setup in force: cheap to clone, read without waiting, and
/// followed live through [`Setting::changed`].
#[derive(Clone)]
pub struct Setting {
    tx: Arc<tokio::sync::watch::Sender<Arc<InForce>>>,
}

impl Setting {
    /// A setting holding `first`.
    pub fn new(first: InForce) -> Setting {
        Setting {
            tx: Arc::new(tokio::sync::watch::Sender::new(Arc::new(first))),
        }
    }

    /// What is in force now.
    pub fn now(&self) -> Arc<InForce> {
        self.tx.borrow().clone()
    }

    /// Replaces what is in force (the core does this, in the step that commits
    /// `config_applied`).
    pub(crate) fn replace(&self, next: InForce) {
        self.tx.send_replace(Arc::new(next));
    }

    /// A receiver that wakes on every change.
    pub fn changed(&self) -> tokio::sync::watch::Receiver<Arc<InForce>> {
        self.tx.subscribe()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_replaced_setup_is_what_every_handle_reads_at_once() {
        let file = crate::config::Config::example();
        let a = Setting::new(InForce::file(file.queue.clone(), file.guide.clone()));
        let b = a.clone();
        let watch = b.changed();
        assert_eq!(b.now().version, None);
        assert_eq!(b.now().typed_number(1, "7"), "A007");
        let mut next = file.queue.clone();
        next.services[0].prefix = "Q".into();
        a.replace(InForce {
            version: Some(2),
            setup: next,
            guides: BTreeMap::new(),
        });
        assert!(watch.has_changed().unwrap());
        assert_eq!(b.now().version, Some(2));
        assert_eq!(b.now().typed_number(1, "0012"), "Q012");
        assert!(b.now().guides.is_empty());
    }
}
