//! Instances: one row per running process on this state DB, with its role,
//! heartbeat and (for workers) the live figures of the customers it runs as
//! opaque JSON. Other processes read these rows to count live workers (fair
//! shares of customers) and to show live figures of customers they do not
//! run (`console --attach`). The rows are written with the caller's clock.

use chrono::{DateTime, Utc};

use super::{Store, StoreError, with_pool};

/// A process as its heartbeat row describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InstanceRow {
    pub owner: String,
    /// `worker` or `attached`.
    pub role: String,
    pub started_at: DateTime<Utc>,
    pub heartbeat_at: DateTime<Utc>,
    /// The live figures of the customers it runs (JSON, engine-defined).
    pub figures: String,
}

impl Store {
    /// Writes (or creates) `row`'s heartbeat and figures.
    pub async fn heartbeat_instance(&self, row: &InstanceRow) -> Result<(), StoreError> {
        with_pool!(self, |pool| {
            sqlx::query(
                "INSERT INTO instances (owner, role, started_at, heartbeat_at, figures) VALUES ($1, $2, $3, $4, $5)
                 ON CONFLICT (owner) DO UPDATE SET role = excluded.role, heartbeat_at = excluded.heartbeat_at,
                   figures = excluded.figures",
            )
            .bind(&row.owner)
            .bind(&row.role)
            .bind(row.started_at)
            .bind(row.heartbeat_at)
            .bind(&row.figures)
            .execute(pool)
            .await
            .map(|_| ())
        })
        .map_err(|e| self.err(e))?;
        Ok(())
    }

    /// Every instance with a heartbeat at or after `since`.
    pub async fn instances_since(&self, since: DateTime<Utc>) -> Result<Vec<InstanceRow>, StoreError> {
        type Row = (String, String, DateTime<Utc>, DateTime<Utc>, String);
        let rows: Vec<Row> = with_pool!(self, |pool| {
            sqlx::query_as(
                "SELECT owner, role, started_at, heartbeat_at, figures FROM instances
                 WHERE heartbeat_at >= $1 ORDER BY owner",
            )
            .bind(since)
            .fetch_all(pool)
            .await
        })
        .map_err(|e| self.err(e))?;
        Ok(rows
            .into_iter()
            .map(|(owner, role, started_at, heartbeat_at, figures)| InstanceRow {
                owner,
                role,
                started_at,
                heartbeat_at,
                figures,
            })
            .collect())
    }

    /// Removes `owner`'s row (a clean shutdown; `None` for housekeeping)
    /// and rows silent since `stale_before` (crashed processes), so the table
    /// stays small.
    pub async fn forget_instances(
        &self,
        owner: Option<&str>,
        stale_before: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        with_pool!(self, |pool| {
            sqlx::query("DELETE FROM instances WHERE owner = $1 OR heartbeat_at < $2")
                .bind(owner)
                .bind(stale_before)
                .execute(pool)
                .await
                .map(|_| ())
        })
        .map_err(|e| self.err(e))?;
        Ok(())
    }
}
