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
    /// Adding an id that exists.
    #[error("staff id {0} already exists")]
    Exists(String),
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
    if !(6..=12).contains(&pin.len()) || !pin.chars().all(|c| c.is_ascii_digit()) {
        return Err(StaffError::WeakPin);
    }
    let salt = random_bytes::<16>()?;
    let hash = hasher()
        .hash_password_with_salt(pin.as_bytes(), &salt)
        .map_err(|e| StaffError::Hash(e.to_string()))?
        .to_string();
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
    let mut stmt = conn.prepare("SELECT id, name, roles, windows FROM staff ORDER BY id")?;
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
    let row: Option<(String, String, String, String, i64, Option<i64>)> = conn
        .query_row("SELECT name, roles, windows, pin_hash, failures, locked_until FROM staff WHERE id = ?1", [id], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?, r.get(5)?))
        })
        .optional()?;
    let Some((name, roles, windows, hash, failures, locked_until)) = row else {
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
            "SELECT s.window, s.expires_at, t.id, t.name, t.roles, t.windows FROM sessions s JOIN staff t ON t.id = s.staff WHERE s.token_hash = ?1 AND s.expires_at > ?2",
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
