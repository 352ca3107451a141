//! Staff accounts and sign-in sessions. PINs are stored as Argon2id hashes; repeated
//! wrong PINs lock the account for a while; session tokens are stored hashed so a copy
//! of the database does not let anyone act at a window.

use argon2::{Algorithm, Argon2, Params, PasswordHasher, PasswordVerifier, Version};
use hallq_engine::{Role, Timestamp};
use rusqlite::{Connection, OptionalExtension, params};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// What a staff member may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Permission {
    /// Work at a window.
    Staff,
    /// Watch the hall and read reports.
    Supervisor,
    /// Configure the hall.
    Admin,
}

impl Permission {
    /// Parses `staff`, `supervisor` or `admin`.
    pub fn parse(s: &str) -> Option<Permission> {
        Some(match s {
            "staff" => Permission::Staff,
            "supervisor" => Permission::Supervisor,
            "admin" => Permission::Admin,
            _ => return None,
        })
    }
}

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
    let hash = hash_pin(pin)?;
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
    let salt = random_bytes::<16>()?;
    Ok(hasher()
        .hash_password_with_salt(pin.as_bytes(), &salt)
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
    /// Locked after wrong PINs until, ms (if still in the future).
    pub locked_until: Option<i64>,
}

/// Every account that was not removed, with its state.
pub fn accounts(conn: &Connection, now: Timestamp) -> Result<Vec<AccountState>, StaffError> {
    let mut stmt = conn.prepare(
        "SELECT id, name, roles, windows, disabled_at, locked_until FROM staff WHERE removed_at IS NULL ORDER BY id",
    )?;
    let rows = stmt.query_map([], |r| {
        Ok(AccountState {
            record: record(r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?),
            disabled_at: r.get(4)?,
            locked_until: r.get::<_, Option<i64>>(5)?.filter(|u| *u > now.0),
        })
    })?;
    Ok(rows.collect::<Result<_, _>>()?)
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
    let hash = hash_pin(pin)?;
    update(
        conn,
        id,
        "UPDATE staff SET pin_hash = ?2, failures = 0 WHERE id = ?1",
        &[&id, &hash],
    )?;
    end_sessions(conn, id)
}

/// Lifts a lockout after wrong PINs.
pub fn unlock(conn: &Connection, id: &str) -> Result<(), StaffError> {
    update(
        conn,
        id,
        "UPDATE staff SET failures = 0, locked_until = NULL WHERE id = ?1",
        &[&id],
    )
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

/// Checks a PIN, counting failures and locking the account after `max_failures`.
/// The Argon2 work is done whether or not the id exists, so timing tells nothing.
pub fn verify(
    conn: &Connection,
    id: &str,
    pin: &str,
    now: Timestamp,
    max_failures: u32,
    lockout_minutes: u32,
) -> Result<StaffRecord, StaffError> {
    // name, roles, windows, pin_hash, failures, locked_until, disabled_at
    type Row = (
        String,
        String,
        String,
        String,
        i64,
        Option<i64>,
        Option<i64>,
    );
    let row: Option<Row> = conn
        .query_row("SELECT name, roles, windows, pin_hash, failures, locked_until, disabled_at FROM staff WHERE id = ?1 AND removed_at IS NULL", [id], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?, r.get(5)?, r.get(6)?))
        })
        .optional()?;
    let Some((name, roles, windows, hash, failures, locked_until, disabled)) = row else {
        let _ = hasher().verify_password(pin.as_bytes(), DUMMY_HASH);
        return Err(StaffError::Invalid);
    };

    if let Some(until) = locked_until.filter(|u| *u > now.0) {
        return Err(StaffError::Locked { until_ms: until });
    }
    if hasher()
        .verify_password(pin.as_bytes(), hash.as_str())
        .is_ok()
    {
        // Said only to someone who knows the PIN: a guess learns nothing more.
        if disabled.is_some() {
            return Err(StaffError::Disabled(id.to_string()));
        }
        conn.execute(
            "UPDATE staff SET failures = 0, locked_until = NULL WHERE id = ?1",
            [id],
        )?;
        return Ok(record(id.to_string(), name, roles, windows));
    }
    let failures = failures + 1;
    if failures >= i64::from(max_failures) {
        let until = now.plus_minutes(i64::from(lockout_minutes)).0;
        conn.execute(
            "UPDATE staff SET failures = 0, locked_until = ?2 WHERE id = ?1",
            params![id, until],
        )?;
        return Err(StaffError::Locked { until_ms: until });
    }
    conn.execute(
        "UPDATE staff SET failures = ?2 WHERE id = ?1",
        params![id, failures],
    )?;
    Err(StaffError::Invalid)
}

const DUMMY_HASH: &str = "$argon2id$v=19$m=7168,t=5,p=1$c2FsdHNhbHRzYWx0c2FsdA$2iKHMOh1mEdDhObg1cWSR2sXUrB+cT9d+4GcK3WqSj4";

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
            verify(c, "S001", "246810", Timestamp(1), 3, 15)
                .unwrap()
                .name,
            "王芳"
        );
        assert!(matches!(
            verify(c, "S001", "111111", Timestamp(2), 3, 15),
            Err(StaffError::Invalid)
        ));
        assert!(matches!(
            verify(c, "S001", "111111", Timestamp(3), 3, 15),
            Err(StaffError::Invalid)
        ));
        assert!(matches!(
            verify(c, "S001", "111111", Timestamp(4), 3, 15),
            Err(StaffError::Locked { .. })
        ));
        // Even the right PIN is refused while locked, and accepted after.
        assert!(matches!(
            verify(c, "S001", "246810", Timestamp(5), 3, 15),
            Err(StaffError::Locked { .. })
        ));
        assert!(verify(c, "S001", "246810", Timestamp(16 * 60_000), 3, 15).is_ok());
        assert!(matches!(
            verify(c, "nobody", "246810", Timestamp(5), 3, 15),
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
            verify(c, "S001", "246810", Timestamp(2), 3, 15),
            Err(StaffError::Disabled(_))
        ));
        enable(c, "S001").unwrap();
        assert!(verify(c, "S001", "246810", Timestamp(3), 3, 15).is_ok());
        for t in 4..7 {
            let _ = verify(c, "S001", "000000", Timestamp(t), 3, 15);
        }
        assert!(matches!(
            verify(c, "S001", "246810", Timestamp(8), 3, 15),
            Err(StaffError::Locked { .. })
        ));
        unlock(c, "S001").unwrap();
        assert!(verify(c, "S001", "246810", Timestamp(9), 3, 15).is_ok());
        assert!(matches!(
            reset_pin(c, "S001", "12"),
            Err(StaffError::WeakPin)
        ));
        reset_pin(c, "S001", "97531086").unwrap();
        assert!(verify(c, "S001", "246810", Timestamp(10), 3, 15).is_err());
        assert!(verify(c, "S001", "97531086", Timestamp(11), 3, 15).is_ok());
        let r = set(c, "S001", None, Some(&[(2, Role::B)])).unwrap();
        assert_eq!(
            (r.windows, r.roles),
            (vec![(2, Role::B)], vec![Permission::Staff])
        );
        remove(c, "S001", Timestamp(12)).unwrap();
        assert!(matches!(
            verify(c, "S001", "97531086", Timestamp(13), 3, 15),
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
