//! The county at a glance: each hall's live figures from its controllers' retained
//! state documents, and the same rolled up along the region tree.

use std::collections::BTreeMap;

use serde::Serialize;
use serde_json::Value;

use crate::config::{Hall, Region, region_parent};

/// One hall, live.
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct HallNow {
    /// The hall id.
    pub id: String,
    /// Its name (the id for a hall not in the configuration).
    pub name: String,
    /// The region it serves, or null for a hall not in the configuration.
    pub region: Option<String>,
    /// Its controllers.
    pub controllers: Vec<String>,
    /// Controllers whose last state is `online`.
    pub online: usize,
    /// Citizens waiting.
    pub waiting: i64,
    /// Windows with someone signed in.
    pub windows_staffed: i64,
    /// The longest wait of a ticket still waiting, in seconds.
    pub longest_wait_secs: i64,
    /// Events not yet delivered upstream, as the controllers report.
    pub backlog: i64,
    /// Devices whose health is not `ok`.
    pub device_faults: i64,
    /// Whether its kiosks are locked from above.
    pub kiosk_locked: bool,
    /// Warnings (预警) of the last day nobody has handled yet.
    pub open_warnings: i64,
}

/// A region with its halls' figures added up.
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct RegionNow {
    /// The 12-digit code.
    pub code: String,
    /// Its name.
    pub name: String,
    /// The parent region's code, when listed.
    pub parent: Option<String>,
    /// Halls in it and below.
    pub halls: usize,
    /// Of them, with every controller online.
    pub halls_online: usize,
    /// Citizens waiting.
    pub waiting: i64,
    /// Windows staffed.
    pub windows_staffed: i64,
    /// The longest wait among its halls.
    pub longest_wait_secs: i64,
    /// Devices not `ok`.
    pub device_faults: i64,
    /// Warnings not handled yet.
    pub open_warnings: i64,
    /// Events its halls have not delivered yet.
    pub backlog: i64,
}

/// The halls from the configuration and the controllers' states: `(controller, hall,
/// state)` per controller.
pub fn halls_now(halls: &[Hall], states: &[(String, String, Option<Value>)]) -> Vec<HallNow> {
    let mut out: BTreeMap<String, HallNow> = halls
        .iter()
        .map(|h| {
            let now = HallNow {
                id: h.id.clone(),
                name: h.name.clone(),
                region: Some(h.region.clone()),
                ..HallNow::default()
            };
            (h.id.clone(), now)
        })
        .collect();
    for (controller, hall, state) in states {
        let h = out.entry(hall.clone()).or_insert_with(|| HallNow {
            id: hall.clone(),
            name: hall.clone(),
            ..HallNow::default()
        });
        h.controllers.push(controller.clone());
        let Some(s) = state else { continue };
        let int = |p: &str| s.pointer(p).and_then(Value::as_i64).unwrap_or(0);
        if s.get("status").and_then(Value::as_str) == Some("online") {
            h.online += 1;
        }
        h.waiting += int("/queue/waiting");
        h.windows_staffed += int("/queue/windows_staffed");
        h.backlog += int("/backlog/undelivered");
        h.kiosk_locked |= s.pointer("/kiosk/locked").and_then(Value::as_bool) == Some(true);
        let longest = s
            .pointer("/queue/services")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(|v| v.get("longest_wait_secs").and_then(Value::as_i64))
            .max()
            .unwrap_or(0);
        h.longest_wait_secs = h.longest_wait_secs.max(longest);
        h.device_faults += s
            .get("devices")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter(|d| d.pointer("/health/state").and_then(Value::as_str) != Some("ok"))
            .count() as i64;
    }
    out.into_values().collect()
}

/// Every listed region with the figures of the halls in it and below.
pub fn regions_now(regions: &[Region], halls: &[HallNow]) -> Vec<RegionNow> {
    let listed: BTreeMap<&str, &Region> = regions.iter().map(|r| (r.code.as_str(), r)).collect();
    let mut out: BTreeMap<String, RegionNow> = regions
        .iter()
        .map(|r| {
            let parent = region_parent(&r.code).filter(|p| listed.contains_key(p.as_str()));
            let now = RegionNow {
                code: r.code.clone(),
                name: r.name.clone(),
                parent,
                ..RegionNow::default()
            };
            (r.code.clone(), now)
        })
        .collect();
    for h in halls {
        let mut code = h.region.clone();
        while let Some(c) = code {
            if let Some(r) = out.get_mut(&c) {
                r.halls += 1;
                if !h.controllers.is_empty() && h.online == h.controllers.len() {
                    r.halls_online += 1;
                }
                r.waiting += h.waiting;
                r.windows_staffed += h.windows_staffed;
                r.longest_wait_secs = r.longest_wait_secs.max(h.longest_wait_secs);
                r.device_faults += h.device_faults;
                r.open_warnings += h.open_warnings;
                r.backlog += h.backlog;
            }
            code = region_parent(&c);
        }
    }
    out.into_values().collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn figures_roll_up_the_tree() {
        let regions = vec![
            Region {
                code: "330122000000".into(),
                name: "青山县".into(),
            },
            Region {
                code: "330122100000".into(),
                name: "青山镇".into(),
            },
            Region {
                code: "330122100201".into(),
                name: "东村".into(),
            },
        ];
        let halls = vec![
            Hall {
                id: "county".into(),
                name: "县中心".into(),
                region: "330122000000".into(),
            },
            Hall {
                id: "town".into(),
                name: "镇中心".into(),
                region: "330122100000".into(),
            },
            Hall {
                id: "village".into(),
                name: "东村点".into(),
                region: "330122100201".into(),
            },
        ];
        let state = |waiting: i64, longest: i64, online: bool, fault: bool| {
            Some(json!({
                "status": if online { "online" } else { "offline" },
                "queue": {"waiting": waiting, "windows_staffed": 2,
                          "services": [{"longest_wait_secs": longest}, {"longest_wait_secs": 5}]},
                "backlog": {"undelivered": 3},
                "devices": [{"device": "printer", "health": {"state": if fault { "paper_out" } else { "ok" }}}],
            }))
        };
        let states = vec![
            (
                "c1".to_string(),
                "county".to_string(),
                state(10, 600, true, false),
            ),
            (
                "t1".to_string(),
                "town".to_string(),
                state(4, 900, true, true),
            ),
            (
                "v1".to_string(),
                "village".to_string(),
                state(1, 60, false, false),
            ),
            ("x1".to_string(), "unlisted".to_string(), None),
        ];
        let now = halls_now(&halls, &states);
        assert_eq!(now.len(), 4);
        let town = now.iter().find(|h| h.id == "town").expect("town");
        assert_eq!(
            (
                town.waiting,
                town.longest_wait_secs,
                town.device_faults,
                town.online
            ),
            (4, 900, 1, 1)
        );
        let regions = regions_now(&regions, &now);
        let county = regions
            .iter()
            .find(|r| r.code == "330122000000")
            .expect("county");
        assert_eq!(
            (county.halls, county.halls_online, county.waiting),
            (3, 2, 15)
        );
        assert_eq!(
            (
                county.longest_wait_secs,
                county.device_faults,
                county.windows_staffed
            ),
            (900, 1, 6)
        );
        let township = regions
            .iter()
            .find(|r| r.code == "330122100000")
            .expect("town");
        assert_eq!(
            (township.halls, township.waiting, township.parent.as_deref()),
            (2, 5, Some("330122000000"))
        );
    }
}
