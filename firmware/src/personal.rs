//! The hall's own secret, and the keyed hashes of personal identifiers made with it.
//!
//! What the controller must match about a person (the same ID number twice in a day,
//! for the per-citizen daily limit; later the ID card at the kiosk) it matches by
//! HMAC-SHA-256 under a secret of 32 random bytes created at the first start in
//! `<data_dir>/hall.key` (mode 0600). The secret never leaves the machine: not in an
//! event, a log, a stream or the uplink; without it a stored key cannot be tried against
//! candidates, however few the candidates are (an ID number is a region, a birth date
//! and four more characters: a few hundred thousand tries).

use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use hmac::{KeyInit, Mac};

/// The file name of the secret in the data directory.
pub const KEY_FILE: &str = "hall.key";

/// Why the secret could not be had.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    /// Reading, creating or syncing the file failed.
    #[error("hall key {0}: {1}")]
    Io(PathBuf, std::io::Error),
    /// The file is not 64 hex digits (32 bytes).
    #[error(
        "hall key {0}: not 64 hex digits; restore it from a backup, or remove it to make a new one (today's citizen limits then start again)"
    )]
    Malformed(PathBuf),
    /// The operating system gave no random bytes.
    #[error("hall key: no randomness from the operating system: {0}")]
    Random(String),
}

/// The hall's secret for keyed hashes of personal identifiers.
#[derive(Clone)]
pub struct PersonalKey([u8; 32]);

impl std::fmt::Debug for PersonalKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PersonalKey(..)")
    }
}

impl PersonalKey {
    /// Reads `<dir>/hall.key`, or creates it (temp → fsync → rename → directory fsync,
    /// mode 0600) when there is none. A key readable by others is narrowed to 0600.
    pub fn load_or_create(dir: &Path) -> Result<PersonalKey, KeyError> {
        let path = dir.join(KEY_FILE);
        let io = |e| KeyError::Io(path.clone(), e);
        match std::fs::read_to_string(&path) {
            Ok(text) => {
                let mut key = [0u8; 32];
                hex::decode_to_slice(text.trim(), &mut key)
                    .map_err(|_| KeyError::Malformed(path.clone()))?;
                let mode = std::fs::metadata(&path).map_err(io)?.permissions().mode();
                if mode & 0o077 != 0 {
                    tracing::warn!(path = %path.display(), mode = format!("{mode:o}"), "hall key was readable by others; now 0600");
                    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600))
                        .map_err(io)?;
                }
                Ok(PersonalKey(key))
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let mut key = [0u8; 32];
                getrandom::fill(&mut key).map_err(|e| KeyError::Random(e.to_string()))?;
                let tmp = dir.join(format!(".{KEY_FILE}.tmp"));
                let mut f = std::fs::OpenOptions::new()
                    .write(true)
                    .create(true)
                    .truncate(true)
                    .mode(0o600)
                    .open(&tmp)
                    .map_err(io)?;
                writeln!(f, "{}", hex::encode(key)).map_err(io)?;
                f.sync_all().map_err(io)?;
                drop(f);
                std::fs::rename(&tmp, &path).map_err(io)?;
                crate::store::sync_dir(dir).map_err(io)?;
                tracing::info!(path = %path.display(), "hall key created");
                Ok(PersonalKey(key))
            }
            Err(e) => Err(io(e)),
        }
    }

    /// A key made from given bytes (tests, benchmarks).
    pub fn from_bytes(key: [u8; 32]) -> PersonalKey {
        PersonalKey(key)
    }

    /// The keyed hash of one identifier of `kind` ("id", "phone", "name"): 128 bits of
    /// HMAC-SHA-256 as hex. The kind is hashed in, so an ID and a phone number never match.
    pub fn hash(&self, kind: &str, value: &str) -> String {
        let mut mac =
            hmac::Hmac::<sha2::Sha256>::new_from_slice(&self.0).expect("HMAC takes any key");
        mac.update(kind.as_bytes());
        mac.update(&[0]);
        mac.update(value.as_bytes());
        hex::encode(&mac.finalize().into_bytes()[..16])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_key_is_created_once_with_mode_0600_and_read_back() {
        let dir = tempfile::tempdir().unwrap();
        let a = PersonalKey::load_or_create(dir.path()).unwrap();
        let path = dir.path().join(KEY_FILE);
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        let b = PersonalKey::load_or_create(dir.path()).unwrap();
        assert_eq!(a.hash("id", "X"), b.hash("id", "X"));
        assert!(!dir.path().join(format!(".{KEY_FILE}.tmp")).exists());
    }

    #[test]
    fn hashes_depend_on_the_key_and_the_kind() {
        let a = PersonalKey::from_bytes([1; 32]);
        let b = PersonalKey::from_bytes([2; 32]);
        assert_ne!(
            a.hash("id", "110101199003074514"),
            b.hash("id", "110101199003074514")
        );
        assert_ne!(a.hash("id", "13800000000"), a.hash("phone", "13800000000"));
        assert_eq!(a.hash("id", "1").len(), 32);
    }

    #[test]
    fn a_malformed_or_loose_key_file_is_named_or_narrowed() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(KEY_FILE);
        std::fs::write(&path, "not hex").unwrap();
        let e = PersonalKey::load_or_create(dir.path()).unwrap_err();
        assert!(e.to_string().contains("hall.key"), "{e}");
        std::fs::write(&path, hex::encode([7u8; 32])).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        PersonalKey::load_or_create(dir.path()).unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }
}
