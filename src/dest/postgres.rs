//! PostgreSQL destination (stub; being implemented).

use chrono::{DateTime, Utc};

use super::{DestError, Outcome};
use crate::domain::Change;

pub struct PostgresDest;

impl PostgresDest {
    pub async fn connect(_url: &str, _table: &str) -> Result<Self, DestError> {
        Err(DestError::permanent("the postgres destination is not built yet"))
    }

    pub async fn check(&self) -> Result<(), DestError> {
        Err(DestError::permanent("the postgres destination is not built yet"))
    }

    pub async fn apply(&self, changes: &[Change], _synced_at: DateTime<Utc>) -> Vec<Outcome> {
        changes.iter().map(|_| Err(DestError::permanent("not built yet"))).collect()
    }

    pub async fn close(&self) {}
}
