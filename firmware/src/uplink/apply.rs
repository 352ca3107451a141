//! Checks on a queue setup pushed from the hall server. A setup is read with the same
//! rules as `[queue]` in `hallq.toml`, validated by the engine, and then checked against
//! the hall as it is right now: a service that still has citizens waiting, or a window
//! with someone signed in, cannot disappear under them.

use hallq_engine::{Engine, Setup};

use crate::core::ReconfigureError;

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

/// Refuses a setup that would strand open tickets or staffed windows.
pub fn fits(engine: &Engine, setup: &Setup) -> Result<(), ReconfigureError> {
    let reject = |key: &str, message: String| {
        Err(ReconfigureError::Rejected {
            key: key.into(),
            message,
        })
    };
    let mut open: Vec<_> = engine
        .tickets()
        .filter(|t| !t.state.is_terminal())
        .filter(|t| !setup.services.iter().any(|s| s.code == t.service))
        .collect();
    open.sort_by_key(|t| t.id);
    if let Some(t) = open.first() {
        return reject(
            "queue.services",
            format!(
                "service {} is missing but ticket {} is still open in it ({} open in all); keep the service until its queue is empty",
                t.service,
                t.number,
                open.len()
            ),
        );
    }
    for (number, w) in engine.windows() {
        if (w.staff.is_some() || w.current.is_some())
            && !setup.windows.iter().any(|d| d.number == *number)
        {
            return reject(
                "queue.windows",
                format!(
                    "window {number} is missing but is in use; sign its staff out before removing it"
                ),
            );
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bench::unlimited_setup;
    use hallq_engine::{Class, Command, Timestamp};

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
            .handle(
                Command::Issue {
                    service: code.clone(),
                    class: Class::Normal,
                    idempotency_key: None,
                    citizen: None,
                    channel: "test".into(),
                },
                Timestamp(1_795_395_600_000),
            )
            .unwrap();
        let mut smaller = setup.clone();
        smaller.services.retain(|s| s.code != code);
        for w in &mut smaller.windows {
            w.services.retain(|s| s.code != code);
        }
        smaller.windows.retain(|w| !w.services.is_empty());
        let err = fits(&engine, &smaller).unwrap_err().to_string();
        assert!(err.contains(&code) && err.contains("still open"), "{err}");
        assert!(fits(&engine, &setup).is_ok());
    }
}
