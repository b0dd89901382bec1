//! Encryption at rest for customer tokens and destination secrets:
//! XChaCha20-Poly1305 with a random 192-bit nonce per value and the owning
//! customer's name as associated data, so a ciphertext cannot be moved to
//! another customer. The master key comes from `VOMO_SYNC_MASTER_KEY` (64 hex
//! characters) or from a key file created owner-only on first use.

use std::fmt;
use std::io::Write;
use std::path::{Path, PathBuf};

use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use rand::RngExt;
use sha2::{Digest, Sha256};

use super::StoreError;

const NONCE_LEN: usize = 24;
const KEY_LEN: usize = 32;
/// Version tag in front of every ciphertext, so the format can change later.
const FORMAT_V1: u8 = 1;
/// A known plaintext sealed into the DB's meta table: opening a DB with a
/// different key fails on it before any token is touched.
const KEY_CHECK_PLAINTEXT: &[u8] = b"vomo-sync master key check";
const KEY_CHECK_AAD: &str = "meta:key_check";

/// The key that seals secrets in the state DB. `Debug` shows only an id.
#[derive(Clone)]
pub struct MasterKey {
    bytes: [u8; KEY_LEN],
}

impl fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "MasterKey(id {})", self.id())
    }
}

/// Where the master key came from (for messages).
#[derive(Debug, Clone)]
pub enum KeySource {
    Env,
    File(PathBuf),
}

impl fmt::Display for KeySource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Env => f.write_str("VOMO_SYNC_MASTER_KEY"),
            Self::File(path) => write!(f, "the key file {}", path.display()),
        }
    }
}

impl MasterKey {
    /// A key from 64 hex characters.
    pub fn from_hex(text: &str) -> Result<Self, StoreError> {
        let mut bytes = [0u8; KEY_LEN];
        hex::decode_to_slice(text.trim(), &mut bytes).map_err(|_| StoreError::MasterKey {
            message: "a master key must be 64 hexadecimal characters (32 bytes); generate one with `openssl rand -hex 32`"
                .into(),
        })?;
        Ok(Self { bytes })
    }

    pub fn generate() -> Self {
        Self { bytes: rand::rng().random() }
    }

    /// A short public id (first 8 hex of SHA-256 of the key): shows which key
    /// is in use without revealing it.
    pub fn id(&self) -> String {
        hex::encode(&Sha256::digest(self.bytes)[..4])
    }

    /// The key from the environment value if given, else from `file`. A
    /// missing file is created (owner-only) only when `create` is set, i.e.
    /// when the caller is about to store the first secret.
    pub fn load(
        env: Option<&str>,
        file: &Path,
        create: bool,
    ) -> Result<Option<(Self, KeySource)>, StoreError> {
        if let Some(value) = env {
            return Ok(Some((Self::from_hex(value)?, KeySource::Env)));
        }
        match std::fs::read_to_string(file) {
            Ok(text) => {
                warn_if_readable_by_others(file, "master key file");
                Self::from_hex(&text)
                    .map_err(|_| StoreError::MasterKey {
                        message: format!(
                            "{} does not hold a valid master key (64 hex characters)",
                            file.display()
                        ),
                    })
                    .map(|key| Some((key, KeySource::File(file.to_owned()))))
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && create => {
                let key = Self::generate();
                write_owner_only(file, hex::encode(key.bytes).as_bytes())?;
                tracing::info!(path = %file.display(), key_id = %key.id(), "created a new master key file");
                Ok(Some((key, KeySource::File(file.to_owned()))))
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(StoreError::MasterKey { message: format!("cannot read {}: {e}", file.display()) }),
        }
    }

    fn cipher(&self) -> XChaCha20Poly1305 {
        // The key is always exactly KEY_LEN bytes, so this cannot fail.
        XChaCha20Poly1305::new(&self.bytes.into())
    }

    /// Seals `plaintext` for `owner` (a customer name).
    pub fn seal(&self, owner: &str, plaintext: &[u8]) -> Result<Vec<u8>, StoreError> {
        let nonce_bytes: [u8; NONCE_LEN] = rand::rng().random();
        let nonce = XNonce::from(nonce_bytes);
        let sealed = self
            .cipher()
            .encrypt(&nonce, Payload { msg: plaintext, aad: owner.as_bytes() })
            .map_err(|_| StoreError::MasterKey { message: "encryption failed".into() })?;
        let mut out = Vec::with_capacity(1 + NONCE_LEN + sealed.len());
        out.push(FORMAT_V1);
        out.extend_from_slice(&nonce_bytes);
        out.extend_from_slice(&sealed);
        Ok(out)
    }

    /// Opens a value sealed for `owner`; `None` when the key (or owner) is
    /// not the one it was sealed with, or the bytes are damaged.
    pub fn open(&self, owner: &str, sealed: &[u8]) -> Option<Vec<u8>> {
        let (&version, rest) = sealed.split_first()?;
        if version != FORMAT_V1 || rest.len() < NONCE_LEN {
            return None;
        }
        let (nonce_bytes, ciphertext) = rest.split_at(NONCE_LEN);
        let nonce = XNonce::try_from(nonce_bytes).ok()?;
        self.cipher().decrypt(&nonce, Payload { msg: ciphertext, aad: owner.as_bytes() }).ok()
    }

    /// The value stored in the DB to recognise this key later.
    pub fn key_check(&self) -> Result<String, StoreError> {
        Ok(hex::encode(self.seal(KEY_CHECK_AAD, KEY_CHECK_PLAINTEXT)?))
    }

    /// True when `stored` (from [`MasterKey::key_check`]) was made with this key.
    pub fn matches_check(&self, stored: &str) -> bool {
        hex::decode(stored).ok().and_then(|bytes| self.open(KEY_CHECK_AAD, &bytes)).as_deref()
            == Some(KEY_CHECK_PLAINTEXT)
    }
}

/// Creates `path` with mode 0600 (never readable by others, even briefly).
pub fn write_owner_only(path: &Path, contents: &[u8]) -> Result<(), StoreError> {
    let fail = |e: std::io::Error| StoreError::MasterKey {
        message: format!("cannot create the key file {}: {e}", path.display()),
    };
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).map_err(fail)?;
    }
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options.open(path).map_err(fail)?;
    file.write_all(contents).map_err(fail)?;
    file.sync_all().map_err(fail)
}

/// Logs a warning when `path` can be read by its group or by others: a
/// secret there is only as safe as every account on the machine.
pub fn warn_if_readable_by_others(path: &Path, what: &str) {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        if let Ok(meta) = std::fs::metadata(path)
            && meta.permissions().mode() & 0o044 != 0
        {
            tracing::warn!(
                path = %path.display(),
                mode = format!("{:o}", meta.permissions().mode() & 0o777),
                "the {what} is readable by its group or others; restrict it: chmod 600 {}",
                path.display()
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seal_and_open_round_trip_bound_to_owner() {
        let key = MasterKey::generate();
        let sealed = key.seal("acme", b"secret-token").unwrap();
        assert!(!sealed.windows(6).any(|w| w == b"secret"));
        assert_eq!(key.open("acme", &sealed).unwrap(), b"secret-token");
        assert!(key.open("other-customer", &sealed).is_none(), "bound to its customer");
        assert!(MasterKey::generate().open("acme", &sealed).is_none(), "another key fails");
        let mut damaged = sealed.clone();
        *damaged.last_mut().unwrap() ^= 1;
        assert!(key.open("acme", &damaged).is_none());
        assert_ne!(key.seal("acme", b"x").unwrap(), key.seal("acme", b"x").unwrap(), "fresh nonce");
    }

    #[test]
    fn key_check_recognises_its_key() {
        let key = MasterKey::generate();
        let check = key.key_check().unwrap();
        assert!(key.matches_check(&check));
        assert!(!MasterKey::generate().matches_check(&check));
        assert!(!key.matches_check("zz"));
    }

    #[test]
    fn key_file_is_created_owner_only_and_reloaded() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("cfg/master.key");
        assert!(MasterKey::load(None, &file, false).unwrap().is_none());
        let (key, _) = MasterKey::load(None, &file, true).unwrap().unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            assert_eq!(std::fs::metadata(&file).unwrap().permissions().mode() & 0o777, 0o600);
        }
        let (again, _) = MasterKey::load(None, &file, true).unwrap().unwrap();
        assert_eq!(key.id(), again.id());
        let hex_key = "00".repeat(32);
        let (from_env, source) = MasterKey::load(Some(&hex_key), &file, true).unwrap().unwrap();
        assert!(matches!(source, KeySource::Env));
        assert_ne!(from_env.id(), key.id());
        assert!(MasterKey::from_hex("abc").is_err());
        assert!(!format!("{key:?}").contains(&hex::encode(key.bytes)));
    }
}
