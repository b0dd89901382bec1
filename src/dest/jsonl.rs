//! JSONL destination (stub; being implemented).

use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};

use super::{DestError, Outcome};
use crate::domain::Change;

pub struct JsonlDest {
    _path: PathBuf,
}

impl JsonlDest {
    pub fn new(path: &Path) -> Self {
        Self { _path: path.to_owned() }
    }

    pub async fn check(&self) -> Result<(), DestError> {
        Err(DestError::permanent("not built yet"))
    }

    pub async fn apply(&self, _customer: &str, changes: &[Change], _synced_at: DateTime<Utc>) -> Vec<Outcome> {
        changes.iter().map(|_| Err(DestError::permanent("not built yet"))).collect()
    }
}
