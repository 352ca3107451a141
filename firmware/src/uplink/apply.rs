//! Checks on a queue setup pushed from the hall server. A setup is read with the same
//! rules as `[queue]` in `hallq.toml`, validated by the engine, and then checked against
//! the hall as it is right now (by the core, with `Engine::fits`): a service that still
//! has citizens waiting, or a window with someone signed in, cannot disappear under them.
//! Guides pushed with it are read with the rules of `[guide.<code>]`. The other way,
//! [`document`] writes the setup in force in the shape `config/set` takes, for the
//! retained `setup` topic the hall server edits from.

use std::collections::BTreeMap;

use hallq_engine::Setup;

use super::wire::{ConfigSet, SetupDocument};
use crate::core::ReconfigureError;
use crate::guide::Guide;
use crate::in_force::InForce;

/// Reads a setup from JSON, naming the key of the first problem (under `queue.`).
pub fn parse_setup(value: &serde_json::Value) -> Result<Setup, ReconfigureError> {
    let setup: Setup = serde_path_to_error::deserialize(value).map_err(|e| {
        let path = e.path().to_string();
        ReconfigureError::Rejected {
            key: if path == "." {
                "queue".into()
            } else {
                format!("queue.{path}")
            },
            message: e.into_inner().to_string(),
        }
    })?;
    setup.validate().map_err(|e| ReconfigureError::Rejected {
        key: format!("queue.{}", e.key),
        message: e.message,
    })?;
    Ok(setup)
}

/// Reads the guides pushed with a setup (`guide` in `config/set`, the shape of the
/// `[guide.<code>]` tables), each checked as the file's are and against `setup`.
pub fn parse_guides(
    value: &serde_json::Value,
    setup: &Setup,
) -> Result<BTreeMap<String, Guide>, ReconfigureError> {
    let guides: BTreeMap<String, Guide> = serde_path_to_error::deserialize(value).map_err(|e| {
        let path = e.path().to_string();
        ReconfigureError::Rejected {
            key: if path == "." {
                "guide".into()
            } else {
                format!("guide.{path}")
            },
            message: e.into_inner().to_string(),
        }
    })?;
    for (code, guide) in &guides {
        if !setup.services.iter().any(|s| &s.code == code) {
            return Err(ReconfigureError::Rejected {
                key: format!("guide.{code}"),
                message: "no service has this code".into(),
            });
        }
        guide.validate().map_err(|e| ReconfigureError::Rejected {
            key: format!("guide.{code}.{}", e.key),
            message: e.message,
        })?;
    }
    Ok(guides)
}

/// What a `config/set` document puts in force: its setup, and its guides, or the
/// file's guides of the services it keeps when it carries none.
pub fn in_force(
    set: &ConfigSet,
    file_guides: &BTreeMap<String, Guide>,
) -> Result<InForce, ReconfigureError> {
    let setup = parse_setup(&set.queue)?;
    let guides = match &set.guide {
        Some(g) => parse_guides(g, &setup)?,
        None => file_guides
            .iter()
            .filter(|(code, _)| setup.services.iter().any(|s| &s.code == *code))
            .map(|(c, g)| (c.clone(), g.clone()))
            .collect(),
    };
    Ok(InForce {
        version: Some(set.version),
        setup,
        guides,
    })
}

/// The setup in force as a `config/set` document: its version (null for the file's),
/// the queue setup and the guides in force, each in the shape it is read from, so that
/// reading it back with [`in_force`] gives the same setup and guides. It holds no
/// personal data: services, windows, hours and rules, and the published guides.
pub fn document(now: &InForce) -> Result<SetupDocument, serde_json::Error> {
    Ok(SetupDocument {
        version: now.version,
        queue: serde_json::to_value(&now.setup)?,
        guide: Some(serde_json::to_value(&now.guides)?),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::history::unlimited_setup;

    use hallq_engine::{Engine, Timestamp};

    fn as_json(setup: &Setup) -> serde_json::Value {
        // The shape a hall server sends: the TOML `[queue]` table as JSON.
        let text = crate::config::EXAMPLE_HALL;
        let doc: toml::Table = toml::from_str(text).unwrap();
        let mut v = serde_json::to_value(&doc["queue"]).unwrap();
        v["calendar"]["always_open"] = true.into();
        let _ = setup;
        v
    }

    #[test]
    fn a_setup_in_the_config_file_shape_reads() {
        let setup = unlimited_setup();
        let parsed = parse_setup(&as_json(&setup)).unwrap();
        assert_eq!(parsed.services.len(), setup.services.len());
    }

    #[test]
    fn the_document_of_a_setup_in_force_reads_back_to_the_same_setup_and_guides() {
        let file = crate::config::Config::example();
        let now = InForce {
            version: Some(7),
            setup: file.queue.clone(),
            guides: file.guide.clone(),
        };
        let doc = serde_json::to_value(document(&now).unwrap()).unwrap();
        assert_eq!(doc["version"], 7);
        assert_eq!(doc["queue"]["calendar"]["weekdays"][0], "09:00-12:00");
        let set: ConfigSet = serde_json::from_value(doc.clone()).expect("a config/set document");
        let again = in_force(&set, &BTreeMap::new()).expect("reads back");
        assert_eq!(again.setup, now.setup);
        assert_eq!(again.version, Some(7));
        let guides = |g: &BTreeMap<String, Guide>| -> Vec<(String, serde_json::Value)> {
            g.iter().map(|(c, g)| (c.clone(), g.to_json())).collect()
        };
        assert_eq!(guides(&again.guides), guides(&now.guides));
        assert!(!now.guides.is_empty());
        // The file's own setup has no version.
        let file_doc = document(&InForce::file(file.queue.clone(), BTreeMap::new())).unwrap();
        assert_eq!(file_doc.version, None);
        assert_eq!(file_doc.guide, Some(serde_json::json!({})));
    }

    #[test]
    fn a_bad_value_names_its_key() {
        let mut v = as_json(&unlimited_setup());
        v["services"][1]["prefix"] = "A".into();
        let err = parse_setup(&v).unwrap_err().to_string();
        assert!(err.starts_with("queue.services[1].prefix"), "{err}");
        let mut v = as_json(&unlimited_setup());
        v["recall_limit"] = "three".into();
        let err = parse_setup(&v).unwrap_err().to_string();
        assert!(err.starts_with("queue.recall_limit"), "{err}");
    }

    #[test]
    fn removing_a_service_with_waiting_citizens_is_refused() {
        let setup = unlimited_setup();
        let mut engine = Engine::new(setup.clone(), Timestamp(1_795_395_600_000)).unwrap();
        let code = setup.services[0].code.clone();
        engine
            .handle(crate::testing::issue(&code), Timestamp(1_795_395_600_000))
            .unwrap();
        let mut smaller = setup.clone();
        smaller.services.retain(|s| s.code != code);
        for w in &mut smaller.windows {
            w.services.retain(|s| s.code != code);
        }
        smaller.windows.retain(|w| !w.services.is_empty());
        let err = engine.fits(&smaller).unwrap_err().to_string();
        assert!(err.contains(&code) && err.contains("still open"), "{err}");
        assert!(engine.fits(&setup).is_ok());
    }
}
