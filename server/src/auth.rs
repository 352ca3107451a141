//! Who may see and do what: accounts per person with a role over one region of the code
//! tree (a township's supervisor sees that township's halls and nothing else), passwords
//! as Argon2id hashes, a lockout after wrong passwords, and bearer-token sessions stored
//! only as hashes. Every change to an account, every sign-in and every push from above is
//! written to `audit` with who did it.

use serde::Serialize;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use thiserror::Error;
use tokio_postgres::Client;
use tokio_postgres::types::Json;

use crate::config::{Auth, Region, region_parent};
use crate::db::DbError;

/// What an account may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Watches its region.
    Viewer,
    /// Watches and acts: follow-ups, pushes, kiosk locks, notices.
    Supervisor,
    /// A supervisor who also manages the accounts of its region.
    Admin,
}

impl Role {
    /// By name.
    pub fn parse(s: &str) -> Option<Role> {
        match s {
            "viewer" => Some(Role::Viewer),
            "supervisor" => Some(Role::Supervisor),
            "admin" => Some(Role::Admin),
            _ => None,
        }
    }

    /// Its name.
    pub fn name(self) -> &'static str {
        match self {
            Role::Viewer => "viewer",
            Role::Supervisor => "supervisor",
            Role::Admin => "admin",
        }
    }

    /// Whether it may act on halls (not only watch).
    pub fn may_act(self) -> bool {
        self != Role::Viewer
    }
}

/// A signed-in person.
#[derive(Debug, Clone, Serialize)]
pub struct Account {
    /// The login name.
    pub login: String,
    /// The person's name.
    pub name: String,
    /// What they may do.
    pub role: Role,
    /// The region they see: its code; everything below it too.
    pub region: String,
}

impl Account {
    /// Whether a hall or region with this code lies in the account's region.
    pub fn sees(&self, code: &str) -> bool {
        within(code, &self.region)
    }
}

/// Whether `code` is `top` or lies below it in the code tree.
pub fn within(code: &str, top: &str) -> bool {
    let mut c = Some(code.to_string());
    while let Some(x) = c {
        if x == top {
            return true;
        }
        c = region_parent(&x);
    }
    false
}

/// Why an account change or a sign-in did not happen.
#[derive(Debug, Error)]
pub enum AuthError {
    /// The database.
    #[error(transparent)]
    Db(#[from] DbError),
    /// A field's value is not acceptable.
    #[error("{field}: {message}")]
    Invalid {
        /// The field.
        field: &'static str,
        /// Why.
        message: String,
    },
    /// No such account.
    #[error("no account {0}")]
    Unknown(String),
    /// The login or the password is wrong (which one is not said).
    #[error("wrong login or password")]
    WrongCredentials,
    /// Too many wrong passwords: locked until this time (ms).
    #[error("the account is locked after wrong passwords")]
    Locked(i64),
    /// Hashing failed.
    #[error("password hashing: {0}")]
    Hash(String),
}

impl From<tokio_postgres::Error> for AuthError {
    fn from(e: tokio_postgres::Error) -> AuthError {
        AuthError::Db(DbError::Pg(e))
    }
}

fn invalid(field: &'static str, message: impl Into<String>) -> AuthError {
    AuthError::Invalid {
        field,
        message: message.into(),
    }
}

/// Checks a new account's fields.
pub fn check_account(
    login: &str,
    name: &str,
    region: &str,
    regions: &[Region],
) -> Result<(), AuthError> {
    if login.is_empty()
        || login.len() > 64
        || !login
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "._-".contains(c))
    {
        return Err(invalid("login", "1 to 64 letters, digits, '.', '_' or '-'"));
    }
    let n = name.trim().chars().count();
    if n == 0 || n > 64 || name.chars().any(char::is_control) {
        return Err(invalid("name", "1 to 64 characters"));
    }
    if !regions.iter().any(|r| r.code == region) {
        return Err(invalid(
            "region",
            format!("{region} is not a region of this server's [[region]] list"),
        ));
    }
    Ok(())
}

/// Checks a new password: at least 10 characters, not all of one kind.
pub fn check_password(password: &str) -> Result<(), AuthError> {
    let n = password.chars().count();
    if !(10..=128).contains(&n) {
        return Err(invalid("password", "10 to 128 characters"));
    }
    let kinds = [
        password.chars().any(|c| c.is_ascii_digit()),
        password.chars().any(char::is_alphabetic),
        password
            .chars()
            .any(|c| !c.is_alphanumeric() && !c.is_whitespace()),
    ];
    if kinds.iter().filter(|k| **k).count() < 2 {
        return Err(invalid(
            "password",
            "mix at least two of letters, digits and symbols",
        ));
    }
    Ok(())
}

async fn hash(password: &str) -> Result<String, AuthError> {
    let p = password.to_string();
    tokio::task::spawn_blocking(move || hallq::store::staff::hash_secret(&p))
        .await
        .map_err(|e| AuthError::Hash(e.to_string()))?
        .map_err(|e| AuthError::Hash(e.to_string()))
}

async fn matches(hash: String, password: &str) -> bool {
    let p = password.to_string();
    tokio::task::spawn_blocking(move || hallq::store::staff::pin_matches(&hash, &p))
        .await
        .unwrap_or(false)
}

/// Records what someone did.
pub async fn audit(
    db: &Client,
    at: i64,
    login: &str,
    action: &str,
    target: Option<&str>,
    detail: &Value,
) -> Result<(), DbError> {
    db.execute(
        "INSERT INTO audit (at, login, action, target, detail) VALUES ($1, $2, $3, $4, $5)",
        &[&at, &login, &action, &target, &Json(detail)],
    )
    .await?;
    Ok(())
}

/// A new account. `by` is who creates it (an admin, or `cli:<user>`).
#[allow(clippy::too_many_arguments)]
pub async fn add(
    db: &Client,
    regions: &[Region],
    login: &str,
    name: &str,
    role: Role,
    region: &str,
    password: &str,
    by: &str,
    now: i64,
) -> Result<(), AuthError> {
    check_account(login, name, region, regions)?;
    check_password(password)?;
    let hashed = hash(password).await?;
    let n = db
        .execute(
            "INSERT INTO accounts (login, name, role, region, password, created_at, password_at)
             VALUES ($1, $2, $3, $4, $5, $6, $6) ON CONFLICT DO NOTHING",
            &[&login, &name.trim(), &role.name(), &region, &hashed, &now],
        )
        .await?;
    if n == 0 {
        return Err(invalid("login", format!("{login} exists already")));
    }
    audit(
        db,
        now,
        by,
        "account_added",
        Some(login),
        &json!({"role": role.name(), "region": region}),
    )
    .await?;
    Ok(())
}

/// What can be done to an existing account.
#[derive(Debug, Clone)]
pub enum Change {
    /// A new password; its sessions end.
    Password(String),
    /// Lifts a lockout.
    Unlock,
    /// It cannot sign in; its sessions end.
    Disable,
    /// It may sign in again.
    Enable,
    /// Gone, with its sessions.
    Remove,
}

/// Changes an account.
pub async fn change(
    db: &Client,
    login: &str,
    change: Change,
    by: &str,
    now: i64,
) -> Result<(), AuthError> {
    let (sql, action): (&str, &str) = match &change {
        Change::Password(p) => {
            check_password(p)?;
            let hashed = hash(p).await?;
            let n = db
                .execute(
                    "UPDATE accounts SET password = $2, password_at = $3, failures = 0,
                     locked_until = NULL WHERE login = $1",
                    &[&login, &hashed, &now],
                )
                .await?;
            if n == 0 {
                return Err(AuthError::Unknown(login.into()));
            }
            db.execute("DELETE FROM sessions WHERE login = $1", &[&login])
                .await?;
            audit(db, now, by, "password_set", Some(login), &json!({})).await?;
            return Ok(());
        }
        Change::Unlock => (
            "UPDATE accounts SET failures = 0, locked_until = NULL WHERE login = $1",
            "account_unlocked",
        ),
        Change::Disable => (
            "UPDATE accounts SET disabled_at = $2 WHERE login = $1",
            "account_disabled",
        ),
        Change::Enable => (
            "UPDATE accounts SET disabled_at = NULL WHERE login = $1",
            "account_enabled",
        ),
        Change::Remove => ("DELETE FROM accounts WHERE login = $1", "account_removed"),
    };
    let n = if matches!(change, Change::Disable) {
        db.execute(sql, &[&login, &now]).await?
    } else {
        db.execute(sql, &[&login]).await?
    };
    if n == 0 {
        return Err(AuthError::Unknown(login.into()));
    }
    if matches!(change, Change::Disable) {
        db.execute("DELETE FROM sessions WHERE login = $1", &[&login])
            .await?;
    }
    audit(db, now, by, action, Some(login), &json!({})).await?;
    Ok(())
}

/// One account as listed.
#[derive(Debug, Clone, Serialize)]
pub struct Listed {
    /// Who.
    #[serde(flatten)]
    pub account: Account,
    /// Locked until (ms), while locked.
    pub locked_until: Option<i64>,
    /// Disabled since (ms).
    pub disabled_at: Option<i64>,
}

/// Every account.
pub async fn list(db: &Client, now: i64) -> Result<Vec<Listed>, AuthError> {
    let rows = db
        .query(
            "SELECT login, name, role, region, locked_until, disabled_at FROM accounts ORDER BY login",
            &[],
        )
        .await?;
    Ok(rows
        .iter()
        .map(|r| Listed {
            account: Account {
                login: r.get(0),
                name: r.get(1),
                role: Role::parse(r.get(2)).unwrap_or(Role::Viewer),
                region: r.get(3),
            },
            locked_until: r.get::<_, Option<i64>>(4).filter(|t| *t > now),
            disabled_at: r.get(5),
        })
        .collect())
}

fn token_hash(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

/// Checks a password and opens a session: its bearer token (shown once; only its hash
/// is kept) and the account. An unknown login costs the same Argon2 work as a known one;
/// `max_failures` wrong passwords in a row lock the account for `lockout_minutes`, and
/// while it is locked even the right password is refused.
pub async fn sign_in(
    db: &Client,
    auth: &Auth,
    login: &str,
    password: &str,
    now: i64,
) -> Result<(String, Account), AuthError> {
    let row = db
        .query_opt(
            "SELECT name, role, region, password, locked_until, disabled_at FROM accounts
             WHERE login = $1",
            &[&login],
        )
        .await?;
    let Some(row) = row else {
        matches(hallq::store::staff::DUMMY_HASH.to_string(), password).await;
        let shown: String = login.chars().take(64).collect();
        audit(
            db,
            now,
            &shown,
            "sign_in_failed",
            None,
            &json!({"reason": "unknown"}),
        )
        .await?;
        return Err(AuthError::WrongCredentials);
    };
    if let Some(until) = row.get::<_, Option<i64>>(4).filter(|t| *t > now) {
        return Err(AuthError::Locked(until));
    }
    let good = matches(row.get(3), password).await;
    let disabled = row.get::<_, Option<i64>>(5).is_some();
    if !good || disabled {
        let lock_at = i32::try_from(auth.max_failures).unwrap_or(i32::MAX);
        let until = now + i64::from(auth.lockout_minutes) * 60_000;
        let locked: Option<i64> = db
            .query_one(
                "UPDATE accounts SET
                   failures = CASE WHEN failures + 1 >= $2 THEN 0 ELSE failures + 1 END,
                   locked_until = CASE WHEN failures + 1 >= $2 THEN $3 ELSE locked_until END
                 WHERE login = $1 RETURNING locked_until",
                &[&login, &lock_at, &until],
            )
            .await?
            .get(0);
        let reason = if disabled { "disabled" } else { "password" };
        audit(
            db,
            now,
            login,
            "sign_in_failed",
            None,
            &json!({"reason": reason}),
        )
        .await?;
        if let Some(t) = locked.filter(|t| *t > now) {
            tracing::warn!(login, "account locked after wrong passwords");
            return Err(AuthError::Locked(t));
        }
        return Err(AuthError::WrongCredentials);
    }
    let token = hex::encode(
        hallq::store::staff::random_bytes::<32>().map_err(|e| AuthError::Hash(e.to_string()))?,
    );
    db.execute(
        "UPDATE accounts SET failures = 0, locked_until = NULL WHERE login = $1",
        &[&login],
    )
    .await?;
    db.execute(
        "INSERT INTO sessions (token_hash, login, created_at, seen_at) VALUES ($1, $2, $3, $3)",
        &[&token_hash(&token), &login, &now],
    )
    .await?;
    // Sessions past their time go as new ones come.
    let idle = i64::from(auth.session_idle_minutes) * 60_000;
    let max = i64::from(auth.session_max_hours) * 3_600_000;
    db.execute(
        "DELETE FROM sessions WHERE seen_at < $1 OR created_at < $2",
        &[&(now - idle), &(now - max)],
    )
    .await?;
    audit(db, now, login, "signed_in", None, &json!({})).await?;
    let account = Account {
        login: login.into(),
        name: row.get(0),
        role: Role::parse(row.get(1)).unwrap_or(Role::Viewer),
        region: row.get(2),
    };
    Ok((token, account))
}

/// The account of a live session, which is kept alive by the call. `None` for an
/// unknown, idle, expired or disabled one.
pub async fn session(
    db: &Client,
    auth: &Auth,
    token: &str,
    now: i64,
) -> Result<Option<Account>, DbError> {
    let idle = i64::from(auth.session_idle_minutes) * 60_000;
    let max = i64::from(auth.session_max_hours) * 3_600_000;
    let row = db
        .query_opt(
            "UPDATE sessions s SET seen_at = $2
             FROM accounts a
             WHERE s.token_hash = $1 AND a.login = s.login AND a.disabled_at IS NULL
               AND s.seen_at >= $3 AND s.created_at >= $4
             RETURNING a.login, a.name, a.role, a.region",
            &[&token_hash(token), &now, &(now - idle), &(now - max)],
        )
        .await?;
    Ok(row.map(|r| Account {
        login: r.get(0),
        name: r.get(1),
        role: Role::parse(r.get(2)).unwrap_or(Role::Viewer),
        region: r.get(3),
    }))
}

/// Ends a session.
pub async fn sign_out(db: &Client, token: &str, now: i64) -> Result<(), DbError> {
    if let Some(r) = db
        .query_opt(
            "DELETE FROM sessions WHERE token_hash = $1 RETURNING login",
            &[&token_hash(token)],
        )
        .await?
    {
        let login: String = r.get(0);
        audit(db, now, &login, "signed_out", None, &json!({})).await?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_region_sees_what_lies_below_it() {
        assert!(within("330122100201", "330122100000"));
        assert!(within("330122100000", "330122100000"));
        assert!(within("330122100000", "330100000000"));
        assert!(!within("330122000000", "330122100000"));
        assert!(!within("330122200000", "330122100000"));
    }

    #[test]
    fn passwords_and_names_are_checked() {
        assert!(check_password("short1").is_err());
        assert!(check_password("onlyletterslong").is_err());
        assert!(check_password("letters and 42").is_ok());
        let r = vec![Region {
            code: "330122000000".into(),
            name: "青山县".into(),
        }];
        assert!(check_account("wang.li", "王丽", "330122000000", &r).is_ok());
        let e = check_account("wang li", "王丽", "330122000000", &r).expect_err("space");
        assert!(matches!(e, AuthError::Invalid { field: "login", .. }));
        let e = check_account("wang", "王丽", "330122100000", &r).expect_err("region");
        assert!(matches!(
            e,
            AuthError::Invalid {
                field: "region",
                ..
            }
        ));
    }
}
