//! Webhook destination (stub; being implemented).

use chrono::{DateTime, Utc};

use super::{DestError, Outcome, SecretSource};
use crate::domain::Change;

pub struct WebhookDest;

impl WebhookDest {
    pub fn new(_url: &str, _secret: &SecretSource, _http: reqwest::Client) -> Result<Self, DestError> {
        Err(DestError::permanent("the webhook destination is not built yet"))
    }

    pub async fn check(&self) -> Result<(), DestError> {
        Err(DestError::permanent("not built yet"))
    }

    pub async fn apply(&self, _customer: &str, changes: &[Change], _synced_at: DateTime<Utc>) -> Vec<Outcome> {
        changes.iter().map(|_| Err(DestError::permanent("not built yet"))).collect()
    }
}
