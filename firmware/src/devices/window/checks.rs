//! Checks and defaults every window device section shares.

use hallq_hardware::window::keys::{RatingKeyMap, RatingLevel};
use hallq_hardware::window::regmap::DeviceKind;

/// Default seconds a finish arms the rating pad.
pub fn default_armed() -> u64 {
    60
}
/// A rating pad's level keys from its `levels` / `keys` settings and `reasons` (the
/// setup in force's, given at each press).
pub fn rating_key_map(
    levels: &Option<Vec<RatingLevel>>,
    keys: Option<u8>,
    reasons: &[String],
) -> Result<RatingKeyMap, String> {
    let mut map = match (levels, keys) {
        (Some(levels), _) => RatingKeyMap {
            levels: levels.clone(),
            reasons: Vec::new(),
        },
        (None, Some(3)) => RatingKeyMap::three(),
        (None, None | Some(5)) => RatingKeyMap::five(),
        (None, Some(n)) => return Err(format!("a rating pad has 3 or 5 keys, not {n}")),
    };
    map.reasons = reasons.to_vec();
    map.validate().map_err(|e| e.to_string())
}

/// Checks a device's `window` against the hall's windows (when they are known from the
/// file; `None` when the hall server may push them); hall boards have none.
pub fn check_window(
    kind: DeviceKind,
    window: Option<u32>,
    windows: Option<&[u32]>,
) -> Result<(), (String, String)> {
    match (kind, window) {
        (DeviceKind::HallBoard, Some(_)) => Err((
            "window".into(),
            "a hall board serves the whole hall: remove `window`".into(),
        )),
        (DeviceKind::HallBoard, None) => Ok(()),
        (_, None) => Err(("window".into(), "which window is this device at".into())),
        (_, Some(w)) if windows.is_some_and(|ws| !ws.contains(&w)) => {
            Err(("window".into(), format!("there is no window {w}")))
        }
        _ => Ok(()),
    }
}
