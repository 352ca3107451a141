//! Staff accounts and sign-in sessions. PINs are stored as Argon2id hashes; repeated
//! wrong PINs lock the staff id for a while, for the source address they came from
//! (one row per id and address, an unknown id counted like a known one); session tokens are stored hashed so a copy
//! of the database does not let anyone act at a window.

use argon2::{Algorithm, Argon2, Params, PasswordHasher, PasswordVerifier, Version};
use hallq_engine::{Role, Timestamp};
use rusqlite::{Connection, OptionalExtension, params};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::events::{Actor, HallEvent};

pub use crate::events::Permission;

/// A staff account, without its PIN.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StaffRecord {
    /// Staff id (工号).
    pub id: String,
    /// Name.
    pub name: String,
    /// Permissions.
    pub roles: Vec<Permission>,
    /// Windows they may sign in at, with their A/B role there.
    pub windows: Vec<(u32, Role)>,
}

/// A signed-in staff member.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Session {
    /// Who.
    pub staff: StaffRecord,
    /// The window they signed in at (none for supervisors at the dashboard).
    pub window: Option<u32>,
    /// When the session ends.
    pub expires_at: i64,
}

/// Why an account operation failed.
#[derive(Debug, thiserror::Error)]
pub enum StaffError {
    /// Unknown id or wrong PIN; deliberately the same answer for both.
    #[error("invalid staff id or PIN")]
    Invalid,
    /// Too many wrong PINs.
    #[error("account locked until {until_ms}")]
    Locked {
        /// When it unlocks (ms since the epoch).
        until_ms: i64,
    },
    /// The staff member may not sign in at that window.
    #[error("staff {0} may not sign in at window {1}")]
    WrongWindow(String, u32),
    /// Adding an id that exists, or once existed (ids are never reused).
    #[error("staff id {0} already exists (a removed account's id is never reused)")]
    Exists(String),
    /// No such account (or it was removed).
    #[error("there is no staff account {0}")]
    Unknown(String),
    /// The account is disabled.
    #[error("the account {0} is disabled")]
    Disabled(String),
    /// A PIN that is too weak.
    #[error("the PIN must be 6 to 12 digits")]
    WeakPin,
    /// Database trouble.
    #[error(transparent)]
    Sqlite(#[from] rusqlite::Error),
    /// Hashing trouble.
    #[error("PIN hashing failed: {0}")]
    Hash(String),
    /// The change could not be committed (nothing of it, audit event included, was).
    #[error("storage failed: {0}")]
    Storage(String),
}

/// A PIN, checked (6 to 12 digits) and hashed; the PIN itself is gone.
#[derive(Clone)]
pub struct PinHash(String);

impl std::fmt::Debug for PinHash {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PinHash(..)")
    }
}

impl PinHash {
    /// Checks and hashes a PIN (Argon2id: slow on purpose, so never on the core thread).
    pub fn new(pin: &str) -> Result<PinHash, StaffError> {
        hash_pin(pin).map(PinHash)
    }
}

/// What to do to an account.
#[derive(Debug, Clone)]
pub enum Change {
    /// Create it (the id must never have existed).
    Add {
        /// Name, roles and windows (its id is the change's `staff`).
        name: String,
        /// Permissions.
        roles: Vec<Permission>,
        /// Windows with the A/B role at each.
        windows: Vec<(u32, Role)>,
        /// Its PIN.
        pin: PinHash,
    },
    /// It cannot sign in; its sessions end.
    Disable,
    /// It may sign in again.
    Enable,
    /// A new PIN; its sessions end.
    ResetPin(PinHash),
    /// Lift a lockout after wrong PINs.
    Unlock,
    /// Replace roles and/or windows; its sessions end.
    Set {
        /// New permissions, if given.
        roles: Option<Vec<Permission>>,
        /// New windows, if given.
        windows: Option<Vec<(u32, Role)>>,
    },
    /// It never signs in again; the row (and so the id) stays.
    Remove,
}

/// A change to one account, and who asks for it: the same for `hallq staff` and the
/// admin page, and committed together with its audit event.
#[derive(Debug, Clone)]
pub struct AccountChange {
    /// The account's staff id.
    pub staff: String,
    /// What to do.
    pub change: Change,
    /// Who: the admin's staff id, or the login that ran the CLI.
    pub by: String,
    /// `web` or `cli`.
    pub via: String,
}

impl AccountChange {
    /// The audit event's type.
    pub fn kind(&self) -> &'static str {
        match self.change {
            Change::Add { .. } => "staff_added",
            Change::Disable => "staff_disabled",
            Change::Enable => "staff_enabled",
            Change::ResetPin(_) => "staff_pin_reset",
            Change::Unlock => "staff_unlocked",
            Change::Set { .. } => "staff_changed",
            Change::Remove => "staff_removed",
        }
    }
}

/// Makes the change on `conn` (inside the caller's transaction) and returns its audit
/// event and the account as it is now.
pub fn apply(
    conn: &Connection,
    c: &AccountChange,
    now: Timestamp,
) -> Result<(HallEvent, AccountState), StaffError> {
    let id = c.staff.as_str();
    let by = Actor {
        by: c.by.clone(),
        via: c.via.clone(),
    };
    let staff = id.to_string();
    let event = match &c.change {
        Change::Add {
            name,
            roles,
            windows,
            pin,
        } => {
            let record = StaffRecord {
                id: staff.clone(),
                name: name.clone(),
                roles: roles.clone(),
                windows: windows.clone(),
            };
            insert(conn, &record, &pin.0, now)?;
            HallEvent::StaffAdded {
                staff,
                roles: record.roles,
                windows: record.windows,
                by,
            }
        }
        Change::Disable => {
            disable(conn, id, now)?;
            HallEvent::StaffDisabled { staff, by }
        }
        Change::Enable => {
            enable(conn, id)?;
            HallEvent::StaffEnabled { staff, by }
        }
        Change::ResetPin(pin) => {
            set_pin_hash(conn, id, &pin.0)?;
            HallEvent::StaffPinReset { staff, by }
        }
        Change::Unlock => {
            unlock(conn, id)?;
            HallEvent::StaffUnlocked { staff, by }
        }
        Change::Set { roles, windows } => {
            let r = set(conn, id, roles.as_deref(), windows.as_deref())?;
            HallEvent::StaffChanged {
                staff,
                roles: r.roles,
                windows: r.windows,
                by,
            }
        }
        Change::Remove => {
            remove(conn, id, now)?;
            HallEvent::StaffRemoved { staff, by }
        }
    };
    let state = account(conn, id, now)?;
    Ok((event, state))
}

/// Whether an account (as stored, removed ones included) still lets its holder stay
/// signed in at window `n`: `None` for an id with no account at all.
pub fn may_stay(conn: &Connection, id: &str, n: u32) -> Result<Option<bool>, StaffError> {
    let row: Option<(String, Option<i64>, Option<i64>)> = conn
        .query_row(
            "SELECT windows, disabled_at, removed_at FROM staff WHERE id = ?1",
            [id],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )
        .optional()?;
    Ok(row.map(|(windows, disabled, removed)| {
        let windows: Vec<(u32, Role)> = serde_json::from_str(&windows).unwrap_or_default();
        disabled.is_none() && removed.is_none() && windows.iter().any(|(w, _)| *w == n)
    }))
}

fn hasher() -> Argon2<'static> {
    // OWASP's 7 MiB / 5 passes profile: strong enough for PINs behind a lockout, small
    // enough for a board with little memory.
    let params = Params::new(7 * 1024, 5, 1, None).expect("constant argon2 parameters are valid");
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
}

/// Random bytes from the operating system.
pub fn random_bytes<const N: usize>() -> Result<[u8; N], StaffError> {
    let mut b = [0u8; N];
    getrandom::fill(&mut b).map_err(|e| StaffError::Hash(e.to_string()))?;
    Ok(b)
}

/// Adds an account. PINs are 6 to 12 digits: a keypad is all a window has.
pub fn add(
    conn: &Connection,
    record: &StaffRecord,
    pin: &str,
    now: Timestamp,
) -> Result<(), StaffError> {
    insert(conn, record, &hash_pin(pin)?, now)
}

fn insert(
    conn: &Connection,
    record: &StaffRecord,
    hash: &str,
    now: Timestamp,
) -> Result<(), StaffError> {
    let roles =
        serde_json::to_string(&record.roles).map_err(|e| StaffError::Hash(e.to_string()))?;
    let windows =
        serde_json::to_string(&record.windows).map_err(|e| StaffError::Hash(e.to_string()))?;
    let inserted = conn.execute(
        "INSERT OR IGNORE INTO staff (id, name, roles, windows, pin_hash, created_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        params![record.id, record.name, roles, windows, hash, now.0],
    )?;
    if inserted == 0 {
        return Err(StaffError::Exists(record.id.clone()));
    }
    Ok(())
}

fn hash_pin(pin: &str) -> Result<String, StaffError> {
    if !(6..=12).contains(&pin.len()) || !pin.chars().all(|c| c.is_ascii_digit()) {
        return Err(StaffError::WeakPin);
    }
    hash_secret(pin)
}

/// The Argon2id PHC string of a secret (a PIN checked by the caller, or the hall
/// server's passwords), with a fresh random salt. Check it with [`pin_matches`].
pub fn hash_secret(secret: &str) -> Result<String, StaffError> {
    let salt = random_bytes::<16>()?;
    Ok(hasher()
        .hash_password_with_salt(secret.as_bytes(), &salt)
        .map_err(|e| StaffError::Hash(e.to_string()))?
        .to_string())
}

/// An account's state beside its record, for `hallq staff list`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AccountState {
    /// The account.
    pub record: StaffRecord,
    /// Disabled (cannot sign in) since, ms.
    pub disabled_at: Option<i64>,
    /// Locked after wrong PINs until, ms (if still in the future): the latest lock from
    /// any one source address (each address is locked on its own).
    pub locked_until: Option<i64>,
    /// Removed at, ms (never listed; only the answer to the removal says so).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub removed_at: Option<i64>,
}

/// Every account that was not removed, with its state.
pub fn accounts(conn: &Connection, now: Timestamp) -> Result<Vec<AccountState>, StaffError> {
    let mut stmt = conn.prepare(
        "SELECT id, name, roles, windows, disabled_at, (SELECT MAX(locked_until) FROM sign_in_failures f WHERE f.staff = staff.id) FROM staff WHERE removed_at IS NULL ORDER BY id",
    )?;
    let rows = stmt.query_map([], |r| {
        Ok(AccountState {
            record: record(r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?),
            disabled_at: r.get(4)?,
            locked_until: r.get::<_, Option<i64>>(5)?.filter(|u| *u > now.0),
            removed_at: None,
        })
    })?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// One live (not removed) account with its state.
pub fn account(conn: &Connection, id: &str, now: Timestamp) -> Result<AccountState, StaffError> {
    conn.query_row(
        "SELECT id, name, roles, windows, disabled_at, (SELECT MAX(locked_until) FROM sign_in_failures f WHERE f.staff = staff.id), removed_at FROM staff WHERE id = ?1",
        [id],
        |r| {
            Ok(AccountState {
                record: record(r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?),
                disabled_at: r.get(4)?,
                locked_until: r.get::<_, Option<i64>>(5)?.filter(|u| *u > now.0),
                removed_at: r.get(6)?,
            })
        },
    )
    .optional()?
    .ok_or_else(|| StaffError::Unknown(id.to_string()))
}

/// One live (not removed) account.
pub fn get(conn: &Connection, id: &str) -> Result<StaffRecord, StaffError> {
    conn.query_row(
        "SELECT id, name, roles, windows FROM staff WHERE id = ?1 AND removed_at IS NULL",
        [id],
        |r| Ok(record(r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
    )
    .optional()?
    .ok_or_else(|| StaffError::Unknown(id.to_string()))
}

fn update(
    conn: &Connection,
    id: &str,
    sql: &str,
    p: &[&dyn rusqlite::ToSql],
) -> Result<(), StaffError> {
    get(conn, id)?;
    conn.execute(sql, p)?;
    Ok(())
}

fn end_sessions(conn: &Connection, id: &str) -> Result<(), StaffError> {
    conn.execute("DELETE FROM sessions WHERE staff = ?1", [id])?;
    Ok(())
}

/// Disables an account: it cannot sign in, and its sessions end now.
pub fn disable(conn: &Connection, id: &str, now: Timestamp) -> Result<(), StaffError> {
    update(
        conn,
        id,
        "UPDATE staff SET disabled_at = COALESCE(disabled_at, ?2) WHERE id = ?1",
        &[&id, &now.0],
    )?;
    end_sessions(conn, id)
}

/// Enables a disabled account again.
pub fn enable(conn: &Connection, id: &str) -> Result<(), StaffError> {
    update(
        conn,
        id,
        "UPDATE staff SET disabled_at = NULL WHERE id = ?1",
        &[&id],
    )
}

/// Sets a new PIN (and ends the account's sessions: whoever knew the old one is out).
pub fn reset_pin(conn: &Connection, id: &str, pin: &str) -> Result<(), StaffError> {
    set_pin_hash(conn, id, &hash_pin(pin)?)
}

fn set_pin_hash(conn: &Connection, id: &str, hash: &str) -> Result<(), StaffError> {
    update(
        conn,
        id,
        "UPDATE staff SET pin_hash = ?2, failures = 0 WHERE id = ?1",
        &[&id, &hash],
    )?;
    forget_failures(conn, id)?;
    end_sessions(conn, id)
}

/// Lifts every lockout after wrong PINs, from every source address.
pub fn unlock(conn: &Connection, id: &str) -> Result<(), StaffError> {
    update(
        conn,
        id,
        "UPDATE staff SET failures = 0, locked_until = NULL WHERE id = ?1",
        &[&id],
    )?;
    forget_failures(conn, id)
}

fn forget_failures(conn: &Connection, id: &str) -> Result<(), StaffError> {
    conn.execute("DELETE FROM sign_in_failures WHERE staff = ?1", [id])?;
    Ok(())
}

/// Replaces roles and/or windows; sessions end so the new rights apply at next sign-in.
pub fn set(
    conn: &Connection,
    id: &str,
    roles: Option<&[Permission]>,
    windows: Option<&[(u32, Role)]>,
) -> Result<StaffRecord, StaffError> {
    let mut r = get(conn, id)?;
    if let Some(roles) = roles {
        r.roles = roles.to_vec();
    }
    if let Some(w) = windows {
        r.windows = w.to_vec();
    }
    let roles = serde_json::to_string(&r.roles).map_err(|e| StaffError::Hash(e.to_string()))?;
    let windows = serde_json::to_string(&r.windows).map_err(|e| StaffError::Hash(e.to_string()))?;
    conn.execute(
        "UPDATE staff SET roles = ?2, windows = ?3 WHERE id = ?1",
        params![id, roles, windows],
    )?;
    end_sessions(conn, id)?;
    Ok(r)
}

/// Removes an account: its row stays (so the audit trail's id keeps meaning one person
/// and is never given to another), without a PIN, and it can never sign in again.
pub fn remove(conn: &Connection, id: &str, now: Timestamp) -> Result<(), StaffError> {
    update(
        conn,
        id,
        "UPDATE staff SET removed_at = ?2, pin_hash = '', failures = 0, locked_until = NULL WHERE id = ?1",
        &[&id, &now.0],
    )?;
    forget_failures(conn, id)?;
    end_sessions(conn, id)
}

fn record(id: String, name: String, roles: String, windows: String) -> StaffRecord {
    StaffRecord {
        id,
        name,
        roles: serde_json::from_str(&roles).unwrap_or_default(),
        windows: serde_json::from_str(&windows).unwrap_or_default(),
    }
}

/// All accounts, by id.
pub fn list(conn: &Connection) -> Result<Vec<StaffRecord>, StaffError> {
    let mut stmt = conn.prepare(
        "SELECT id, name, roles, windows FROM staff WHERE removed_at IS NULL ORDER BY id",
    )?;
    let rows = stmt.query_map([], |r| {
        Ok(record(r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?))
    })?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// What a sign-in learned before the PIN is checked: the hash to check against (a
/// dummy one for an id that does not exist, so both cost the same Argon2 work) and the
/// account behind it. Read under the auth connection's lock; the check itself is not.
#[derive(Debug, Clone)]
pub struct PinCheck {
    /// The stored PHC hash, or [`DUMMY_HASH`].
    pub hash: String,
    account: Option<(StaffRecord, bool)>,
}

/// Reads what a sign-in of `id` from `source` needs. A lock for that id from that
/// source refuses at once, before any PIN work, for a known and an unknown id alike.
pub fn prepare_sign_in(
    conn: &Connection,
    id: &str,
    source: &str,
    now: Timestamp,
) -> Result<PinCheck, StaffError> {
    let locked: Option<i64> = conn
        .query_row(
            "SELECT locked_until FROM sign_in_failures WHERE staff = ?1 AND source = ?2 AND locked_until > ?3",
            params![id, source, now.0],
            |r| r.get(0),
        )
        .optional()?;
    if let Some(until_ms) = locked {
        return Err(StaffError::Locked { until_ms });
    }
    let row = conn
        .query_row(
            "SELECT name, roles, windows, pin_hash, disabled_at FROM staff WHERE id = ?1 AND removed_at IS NULL",
            [id],
            |r| {
                Ok((
                    record(id.to_string(), r.get(0)?, r.get(1)?, r.get(2)?),
                    r.get::<_, String>(3)?,
                    r.get::<_, Option<i64>>(4)?.is_some(),
                ))
            },
        )
        .optional()?;
    Ok(match row {
        Some((record, hash, disabled)) => PinCheck {
            hash,
            account: Some((record, disabled)),
        },
        None => PinCheck {
            hash: DUMMY_HASH.to_string(),
            account: None,
        },
    })
}

/// Whether `pin` matches the PHC `hash`: the Argon2 work, slow on purpose. Never run it
/// on the core thread or under a database lock.
pub fn pin_matches(hash: &str, pin: &str) -> bool {
    hasher().verify_password(pin.as_bytes(), hash).is_ok()
}

/// Records the outcome of a PIN check made on `check`. A match on a live account clears
/// the failures from `source` and gives the account; anything else counts one failure
/// for (`id`, `source`) — for an unknown id exactly as for a known one — and locks that
/// pair for `lockout_minutes` at the `max_failures`th.
#[allow(clippy::too_many_arguments)]
pub fn finish_sign_in(
    conn: &Connection,
    id: &str,
    source: &str,
    check: PinCheck,
    matched: bool,
    now: Timestamp,
    max_failures: u32,
    lockout_minutes: u32,
) -> Result<StaffRecord, StaffError> {
    if let (true, Some((record, disabled))) = (matched, check.account) {
        // Said only to someone who knows the PIN: a guess learns nothing more.
        if disabled {
            return Err(StaffError::Disabled(id.to_string()));
        }
        conn.execute(
            "DELETE FROM sign_in_failures WHERE staff = ?1 AND source = ?2",
            params![id, source],
        )?;
        return Ok(record);
    }
    // Forget stale rows now and then (unknown ids must not pile up for ever).
    conn.execute(
        "DELETE FROM sign_in_failures WHERE last_at < ?1 AND (locked_until IS NULL OR locked_until < ?2)",
        params![now.0 - FAILURES_KEPT_MS, now.0],
    )?;
    let failures: i64 = conn.query_row(
        "INSERT INTO sign_in_failures (staff, source, failures, last_at) VALUES (?1, ?2, 1, ?3)
         ON CONFLICT (staff, source) DO UPDATE SET failures = failures + 1, last_at = ?3
         RETURNING failures",
        params![id, source, now.0],
        |r| r.get(0),
    )?;
    if failures >= i64::from(max_failures.max(1)) {
        let until = now.plus_minutes(i64::from(lockout_minutes)).0;
        conn.execute(
            "UPDATE sign_in_failures SET failures = 0, locked_until = ?3 WHERE staff = ?1 AND source = ?2",
            params![id, source, until],
        )?;
        return Err(StaffError::Locked { until_ms: until });
    }
    Err(StaffError::Invalid)
}

/// Failures older than this (and no lock) are forgotten: a day.
const FAILURES_KEPT_MS: i64 = 24 * 3_600_000;

/// Checks a PIN from `source` in one go (the three steps above on one connection): for
/// the command line and tests. The daemon runs the Argon2 step apart, off the lock.
pub fn verify(
    conn: &Connection,
    id: &str,
    pin: &str,
    source: &str,
    now: Timestamp,
    max_failures: u32,
    lockout_minutes: u32,
) -> Result<StaffRecord, StaffError> {
    let check = prepare_sign_in(conn, id, source, now)?;
    let matched = pin_matches(&check.hash, pin);
    finish_sign_in(
        conn,
        id,
        source,
        check,
        matched,
        now,
        max_failures,
        lockout_minutes,
    )
}

/// A valid Argon2id hash of no PIN, checked for ids that do not exist.
pub const DUMMY_HASH: &str = "$argon2id$v=19$m=7168,t=5,p=1$c2FsdHNhbHRzYWx0c2FsdA$2iKHMOh1mEdDhObg1cWSR2sXUrB+cT9d+4GcK3WqSj4";

fn token_hash(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

/// Starts a session and returns its bearer token (shown once, stored only as a hash).
pub fn open_session(
    conn: &Connection,
    staff: &str,
    window: Option<u32>,
    now: Timestamp,
    hours: u32,
) -> Result<(String, i64), StaffError> {
    let token = hex::encode(random_bytes::<32>()?);
    let expires = now.plus_minutes(i64::from(hours) * 60).0;
    conn.execute(
        "INSERT INTO sessions (token_hash, staff, window, created_at, expires_at) VALUES (?1, ?2, ?3, ?4, ?5)",
        params![token_hash(&token), staff, window, now.0, expires],
    )?;
    conn.execute("DELETE FROM sessions WHERE expires_at < ?1", [now.0])?;
    Ok((token, expires))
}

/// The live session behind a token.
pub fn session(
    conn: &Connection,
    token: &str,
    now: Timestamp,
) -> Result<Option<Session>, StaffError> {
    let row = conn
        .query_row(
            "SELECT s.window, s.expires_at, t.id, t.name, t.roles, t.windows FROM sessions s JOIN staff t ON t.id = s.staff WHERE s.token_hash = ?1 AND s.expires_at > ?2 AND t.disabled_at IS NULL AND t.removed_at IS NULL",
            params![token_hash(token), now.0],
            |r| Ok((r.get::<_, Option<u32>>(0)?, r.get::<_, i64>(1)?, record(r.get(2)?, r.get(3)?, r.get(4)?, r.get(5)?))),
        )
        .optional()?;
    Ok(row.map(|(window, expires_at, staff)| Session {
        staff,
        window,
        expires_at,
    }))
}

/// Ends a session.
pub fn close_session(conn: &Connection, token: &str) -> Result<(), StaffError> {
    conn.execute(
        "DELETE FROM sessions WHERE token_hash = ?1",
        [token_hash(token)],
    )?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::Store;

    fn alice() -> StaffRecord {
        StaffRecord {
            id: "S001".into(),
            name: "王芳".into(),
            roles: vec![Permission::Staff],
            windows: vec![(1, Role::A)],
        }
    }

    /// The address of the PC at window 1, and of somebody else on the LAN.
    const WINDOW_PC: &str = "10.0.0.5";
    const ELSEWHERE: &str = "10.0.0.66";

    #[test]
    fn wrong_pins_from_one_address_lock_the_id_for_that_address_only() {
        let store = Store::in_memory().unwrap();
        let c = store.conn();
        add(c, &alice(), "246810", Timestamp(0)).unwrap();
        for t in 1..3 {
            assert!(matches!(
                verify(c, "S001", "000000", ELSEWHERE, Timestamp(t), 3, 15),
                Err(StaffError::Invalid)
            ));
        }
        assert!(matches!(
            verify(c, "S001", "000000", ELSEWHERE, Timestamp(3), 3, 15),
            Err(StaffError::Locked { .. })
        ));
        assert!(matches!(
            verify(c, "S001", "246810", ELSEWHERE, Timestamp(4), 3, 15),
            Err(StaffError::Locked { .. })
        ));
        // The clerk at the window is not locked out by somebody else's guesses.
        assert_eq!(
            verify(c, "S001", "246810", WINDOW_PC, Timestamp(5), 3, 15)
                .unwrap()
                .id,
            "S001"
        );
        // The admin sees the lock, and one unlock lifts it everywhere.
        let state = account(c, "S001", Timestamp(6)).unwrap();
        assert!(state.locked_until.is_some(), "{state:?}");
        unlock(c, "S001").unwrap();
        assert!(
            account(c, "S001", Timestamp(7))
                .unwrap()
                .locked_until
                .is_none()
        );
        assert!(verify(c, "S001", "246810", ELSEWHERE, Timestamp(8), 3, 15).is_ok());
    }

    #[test]
    fn an_unknown_id_is_counted_and_locked_exactly_like_a_known_one() {
        let store = Store::in_memory().unwrap();
        let c = store.conn();
        add(c, &alice(), "246810", Timestamp(0)).unwrap();
        for id in ["S001", "S999"] {
            let outcomes: Vec<String> = (1..5)
                .map(
                    |t| match verify(c, id, "000000", ELSEWHERE, Timestamp(t), 3, 15) {
                        Err(StaffError::Invalid) => "invalid".to_string(),
                        Err(StaffError::Locked { until_ms }) => format!("locked {until_ms}"),
                        other => format!("{other:?}"),
                    },
                )
                .collect();
            assert_eq!(
                outcomes,
                ["invalid", "invalid", "locked 900003", "locked 900003"],
                "{id}"
            );
        }
        // Rows of unknown ids are forgotten a day after their lock ends.
        let _ = verify(
            c,
            "S998",
            "000000",
            ELSEWHERE,
            Timestamp(2 * 86_400_000),
            3,
            15,
        );
        let kept: Vec<String> = c
            .prepare("SELECT staff FROM sign_in_failures ORDER BY staff")
            .unwrap()
            .query_map([], |r| r.get(0))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        assert_eq!(kept, ["S998"]);
    }

    #[test]
    fn the_dummy_hash_parses_so_unknown_ids_cost_the_same() {
        assert!(hasher().verify_password(b"000000", DUMMY_HASH).is_err());
        assert!(argon2::PasswordHash::new(DUMMY_HASH).is_ok());
    }

    #[test]
    fn a_pin_is_checked_and_repeated_failures_lock_the_account() {
        let store = Store::in_memory().unwrap();
        let c = store.conn();
        add(c, &alice(), "246810", Timestamp(0)).unwrap();
        assert!(matches!(
            add(c, &alice(), "246810", Timestamp(0)),
            Err(StaffError::Exists(_))
        ));
        assert_eq!(
            verify(c, "S001", "246810", WINDOW_PC, Timestamp(1), 3, 15)
                .unwrap()
                .name,
            "王芳"
        );
        assert!(matches!(
            verify(c, "S001", "111111", WINDOW_PC, Timestamp(2), 3, 15),
            Err(StaffError::Invalid)
        ));
        assert!(matches!(
            verify(c, "S001", "111111", WINDOW_PC, Timestamp(3), 3, 15),
            Err(StaffError::Invalid)
        ));
        assert!(matches!(
            verify(c, "S001", "111111", WINDOW_PC, Timestamp(4), 3, 15),
            Err(StaffError::Locked { .. })
        ));
        // Even the right PIN is refused while locked, and accepted after.
        assert!(matches!(
            verify(c, "S001", "246810", WINDOW_PC, Timestamp(5), 3, 15),
            Err(StaffError::Locked { .. })
        ));
        assert!(
            verify(
                c,
                "S001",
                "246810",
                WINDOW_PC,
                Timestamp(16 * 60_000),
                3,
                15
            )
            .is_ok()
        );
        assert!(matches!(
            verify(c, "nobody", "246810", WINDOW_PC, Timestamp(5), 3, 15),
            Err(StaffError::Invalid)
        ));
    }

    #[test]
    fn accounts_are_disabled_enabled_unlocked_reset_changed_and_removed_for_good() {
        let store = Store::in_memory().unwrap();
        let c = store.conn();
        add(c, &alice(), "246810", Timestamp(0)).unwrap();
        let (token, _) = open_session(c, "S001", Some(1), Timestamp(0), 8).unwrap();
        disable(c, "S001", Timestamp(1)).unwrap();
        assert!(
            session(c, &token, Timestamp(2)).unwrap().is_none(),
            "sessions end"
        );
        assert!(matches!(
            verify(c, "S001", "246810", WINDOW_PC, Timestamp(2), 3, 15),
            Err(StaffError::Disabled(_))
        ));
        enable(c, "S001").unwrap();
        assert!(verify(c, "S001", "246810", WINDOW_PC, Timestamp(3), 3, 15).is_ok());
        for t in 4..7 {
            let _ = verify(c, "S001", "000000", WINDOW_PC, Timestamp(t), 3, 15);
        }
        assert!(matches!(
            verify(c, "S001", "246810", WINDOW_PC, Timestamp(8), 3, 15),
            Err(StaffError::Locked { .. })
        ));
        unlock(c, "S001").unwrap();
        assert!(verify(c, "S001", "246810", WINDOW_PC, Timestamp(9), 3, 15).is_ok());
        assert!(matches!(
            reset_pin(c, "S001", "12"),
            Err(StaffError::WeakPin)
        ));
        reset_pin(c, "S001", "97531086").unwrap();
        assert!(verify(c, "S001", "246810", WINDOW_PC, Timestamp(10), 3, 15).is_err());
        assert!(verify(c, "S001", "97531086", WINDOW_PC, Timestamp(11), 3, 15).is_ok());
        let r = set(c, "S001", None, Some(&[(2, Role::B)])).unwrap();
        assert_eq!(
            (r.windows, r.roles),
            (vec![(2, Role::B)], vec![Permission::Staff])
        );
        remove(c, "S001", Timestamp(12)).unwrap();
        assert!(matches!(
            verify(c, "S001", "97531086", WINDOW_PC, Timestamp(13), 3, 15),
            Err(StaffError::Invalid)
        ));
        assert!(list(c).unwrap().is_empty());
        assert!(matches!(enable(c, "S001"), Err(StaffError::Unknown(_))));
        assert!(
            matches!(
                add(c, &alice(), "246810", Timestamp(14)),
                Err(StaffError::Exists(_))
            ),
            "a removed id is never reused"
        );
    }

    fn change(staff: &str, change: Change) -> AccountChange {
        AccountChange {
            staff: staff.into(),
            change,
            by: "A001".into(),
            via: "web".into(),
        }
    }

    fn audit(store: &Store) -> Vec<(String, serde_json::Value)> {
        let mut stmt = store
            .conn()
            .prepare("SELECT type, payload FROM events ORDER BY seq")
            .unwrap();
        stmt.query_map([], |r| Ok((r.get(0)?, r.get::<_, String>(1)?)))
            .unwrap()
            .map(|r| {
                let (k, p) = r.unwrap();
                (k, serde_json::from_str(&p).unwrap())
            })
            .collect()
    }

    #[test]
    fn a_staff_change_and_its_audit_event_commit_together_or_not_at_all() {
        let mut store = Store::in_memory().unwrap();
        let add = change(
            "S001",
            Change::Add {
                name: "王芳".into(),
                roles: vec![Permission::Staff],
                windows: vec![(1, Role::A)],
                pin: PinHash::new("246810").unwrap(),
            },
        );
        let (stored, state) = store
            .change_account(&add, Timestamp(1), |_| Ok(Default::default()))
            .unwrap();
        assert_eq!(state.record.windows, vec![(1, Role::A)]);
        assert_eq!(stored[0].kind, "staff_added");
        assert_eq!(
            stored[0].payload,
            serde_json::json!({"type": "staff_added", "staff": "S001", "roles": ["staff"],
                "windows": [[1, "A"]], "by": "A001", "via": "web"})
        );
        // A failure after the account row changed rolls the change back with its event.
        let err = store.change_account(&change("S001", Change::Disable), Timestamp(2), |_| {
            Err(crate::store::StoreError::Damaged("disk gone".into()))
        });
        assert!(matches!(err, Err(StaffError::Storage(_))), "{err:?}");
        assert_eq!(
            accounts(store.conn(), Timestamp(3)).unwrap()[0].disabled_at,
            None
        );
        // A refused change writes no event either.
        assert!(matches!(
            store.change_account(&add, Timestamp(4), |_| Ok(Default::default())),
            Err(StaffError::Exists(_))
        ));
        assert!(matches!(
            store.change_account(&change("S404", Change::Enable), Timestamp(4), |_| Ok(
                Default::default()
            )),
            Err(StaffError::Unknown(_))
        ));
        assert_eq!(audit(&store).len(), 1);
        for (c, kind) in [
            (Change::Disable, "staff_disabled"),
            (Change::Enable, "staff_enabled"),
            (
                Change::ResetPin(PinHash::new("97531086").unwrap()),
                "staff_pin_reset",
            ),
            (Change::Unlock, "staff_unlocked"),
            (
                Change::Set {
                    roles: None,
                    windows: Some(vec![(2, Role::B)]),
                },
                "staff_changed",
            ),
            (Change::Remove, "staff_removed"),
        ] {
            let (stored, _) = store
                .change_account(&change("S001", c), Timestamp(5), |_| Ok(Default::default()))
                .unwrap();
            assert_eq!(stored.len(), 1);
            assert_eq!(stored[0].kind, kind);
            assert_eq!(
                (
                    &stored[0].payload["staff"],
                    &stored[0].payload["by"],
                    &stored[0].payload["via"]
                ),
                (
                    &serde_json::json!("S001"),
                    &serde_json::json!("A001"),
                    &serde_json::json!("web")
                )
            );
            // Every event is typed, and reads back as the same type.
            assert!(
                matches!(stored[0].typed(), crate::events::Committed::Hall(ref h) if h.kind() == kind)
            );
        }
        assert_eq!(audit(&store)[5].1["windows"], serde_json::json!([[2, "B"]]));
        assert!(audit(&store)[3].1.get("pin").is_none());
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn disabling_staff_signs_them_out_of_their_window_in_the_same_transaction() {
        use crate::core::{HallCore, wall_now};
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("hallq.db");
        let mut store = Store::open(&path).unwrap();
        store
            .change_account(
                &change(
                    "S001",
                    Change::Add {
                        name: "王芳".into(),
                        roles: vec![Permission::Staff],
                        windows: vec![(1, Role::A), (2, Role::B)],
                        pin: PinHash::new("246810").unwrap(),
                    },
                ),
                wall_now(),
                |_| Ok(Default::default()),
            )
            .unwrap();
        let (hall, _core) = HallCore::start(crate::testing::in_force(), store).unwrap();
        let sign_in = |window| hallq_engine::Command::SignIn {
            window,
            staff: "S001".into(),
            role: Role::A,
        };
        hall.execute(sign_in(1)).await.unwrap();
        // Taking window 1 off the list signs them out there; window 2 stays theirs.
        let (events, _) = hall
            .change_account(change(
                "S001",
                Change::Set {
                    roles: None,
                    windows: Some(vec![(2, Role::B)]),
                },
            ))
            .await
            .unwrap()
            .unwrap();
        let kinds: Vec<&str> = events.iter().map(|e| e.kind.as_str()).collect();
        assert_eq!(kinds, ["staff_changed", "staff_signed_out"]);
        assert_eq!(events[1].payload["reason"], "account_changed");
        assert_eq!(events[1].seq, events[0].seq + 1);
        hall.execute(sign_in(2)).await.unwrap();
        let (events, state) = hall
            .change_account(change("S001", Change::Disable))
            .await
            .unwrap()
            .unwrap();
        assert!(state.disabled_at.is_some());
        assert_eq!(
            events
                .iter()
                .map(|e| (e.kind.as_str(), e.payload["window"].as_u64()))
                .collect::<Vec<_>>(),
            [("staff_disabled", None), ("staff_signed_out", Some(2))]
        );
        let staffed = hall
            .query(|e, _| e.windows().values().any(|w| w.staff.is_some()))
            .await
            .unwrap();
        assert!(!staffed, "nobody is left signed in");
        // Committed: a second connection reads the window row unstaffed.
        let other = Connection::open(&path).unwrap();
        let row: String = other
            .query_row("SELECT state FROM windows WHERE number = 2", [], |r| {
                r.get(0)
            })
            .unwrap();
        assert!(row.contains("\"staff\":null"), "{row}");

        // An account changed behind the daemon's back (the CLI) is signed out by the
        // check the daemon runs every few seconds.
        hall.change_account(change("S001", Change::Enable))
            .await
            .unwrap()
            .unwrap();
        hall.execute(sign_in(2)).await.unwrap();
        Store::open(&path)
            .unwrap()
            .change_account(&change("S001", Change::Remove), wall_now(), |_| {
                Ok(Default::default())
            })
            .unwrap();
        let out = hall.revoke_stale_sign_ins().await.unwrap();
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].payload["reason"], "account_changed");
        assert!(hall.revoke_stale_sign_ins().await.unwrap().is_empty());
    }

    #[test]
    fn sessions_resolve_by_token_until_they_expire() {
        let store = Store::in_memory().unwrap();
        let c = store.conn();
        add(c, &alice(), "246810", Timestamp(0)).unwrap();
        let (token, _) = open_session(c, "S001", Some(1), Timestamp(0), 1).unwrap();
        assert_eq!(
            session(c, &token, Timestamp(10)).unwrap().unwrap().window,
            Some(1)
        );
        assert!(session(c, &token, Timestamp(3_600_001)).unwrap().is_none());
        assert!(session(c, "forged", Timestamp(10)).unwrap().is_none());
    }
}
