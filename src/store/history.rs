//! Run history (what each piece of work did, with counts and requests used)
//! and the audit log (who did what to which customer, and the result).

use chrono::{DateTime, Utc};

use super::types::{AuditEntry, CustomerId, Run, RunId, RunKind, RunOutcome};
use super::{BeginWrite, Store, StoreError, from_json, to_json, with_pool};
use crate::domain::RunCounts;

#[derive(sqlx::FromRow)]
struct RunRow {
    id: i64,
    customer_id: i64,
    kind: String,
    started_at: DateTime<Utc>,
    finished_at: Option<DateTime<Utc>>,
    outcome: String,
    counts: String,
    requests_used: i64,
    message: Option<String>,
}

impl RunRow {
    fn into_run(self) -> Result<Run, StoreError> {
        let corrupt = |what: String| StoreError::Corrupt { what };
        Ok(Run {
            kind: self.kind.parse().map_err(corrupt)?,
            outcome: self.outcome.parse().map_err(corrupt)?,
            counts: from_json(&self.counts, "run counts")?,
            id: self.id,
            customer_id: self.customer_id,
            started_at: self.started_at,
            finished_at: self.finished_at,
            requests_used: self.requests_used,
            message: self.message,
        })
    }
}

/// Selects every run column; `$rest` is the rest of the statement.
macro_rules! select_runs {
    ($rest:literal) => {
        concat!(
            "SELECT id, customer_id, kind, started_at, finished_at, outcome, counts, requests_used, message ",
            "FROM runs ",
            $rest
        )
    };
}

impl Store {
    /// Opens a run record (outcome `running`) by the process `owner`.
    pub async fn start_run(
        &self,
        customer: CustomerId,
        kind: RunKind,
        owner: Option<&str>,
    ) -> Result<RunId, StoreError> {
        with_pool!(self, |pool| {
            sqlx::query_scalar(
                "INSERT INTO runs (customer_id, kind, started_at, outcome, owner) VALUES ($1, $2, $3, 'running', $4)
                 RETURNING id",
            )
            .bind(customer)
            .bind(kind.as_str())
            .bind(Utc::now())
            .bind(owner)
            .fetch_one(pool)
            .await
        })
        .map_err(|e| self.err(e))
    }

    /// True once an advancing run (backfill or poll) of the customer ended
    /// well: such a run only ends well when it has read up to VOMO's
    /// present, so the backfill is complete. A backfill resumed after a
    /// crash has no such run yet, and stays a backfill.
    pub async fn backfill_completed(&self, customer: CustomerId) -> Result<bool, StoreError> {
        with_pool!(self, |pool| {
            sqlx::query_scalar(
                "SELECT EXISTS (SELECT 1 FROM runs WHERE customer_id = $1 AND kind IN ('backfill', 'poll')
                 AND outcome = 'ok')",
            )
            .bind(customer)
            .fetch_one(pool)
            .await
        })
        .map_err(|e| self.err(e))
    }

    /// Closes a run with its outcome, counts and the requests it used.
    pub async fn finish_run(
        &self,
        id: RunId,
        outcome: RunOutcome,
        counts: &RunCounts,
        requests_used: i64,
        message: Option<&str>,
    ) -> Result<(), StoreError> {
        let finished =
            (outcome != RunOutcome::Running && outcome != RunOutcome::NeedsConfirmation).then(Utc::now);
        with_pool!(self, |pool| {
            sqlx::query(
                "UPDATE runs SET finished_at = $1, outcome = $2, counts = $3, requests_used = $4, message = $5
                 WHERE id = $6",
            )
            .bind(finished)
            .bind(outcome.as_str())
            .bind(to_json(counts))
            .bind(requests_used)
            .bind(message)
            .bind(id)
            .execute(pool)
            .await
                .map(|r| r.rows_affected())
        })
        .map_err(|e| self.err(e))?;
        Ok(())
    }

    pub async fn run(&self, id: RunId) -> Result<Option<Run>, StoreError> {
        let sql = select_runs!("WHERE id = $1");
        let row: Option<RunRow> =
            with_pool!(self, |pool| sqlx::query_as(sql).bind(id).fetch_optional(pool).await)
                .map_err(|e| self.err(e))?;
        row.map(RunRow::into_run).transpose()
    }

    /// The newest runs of a customer, newest first.
    pub async fn recent_runs(&self, customer: CustomerId, limit: i64) -> Result<Vec<Run>, StoreError> {
        let sql = select_runs!("WHERE customer_id = $1 ORDER BY started_at DESC, id DESC LIMIT $2");
        let rows: Vec<RunRow> =
            with_pool!(self, |pool| sqlx::query_as(sql).bind(customer).bind(limit).fetch_all(pool).await)
                .map_err(|e| self.err(e))?;
        rows.into_iter().map(RunRow::into_run).collect()
    }

    /// The newest run of each kind of a customer.
    pub async fn last_run_of_each_kind(&self, customer: CustomerId) -> Result<Vec<Run>, StoreError> {
        let sql = select_runs!(
            "r WHERE customer_id = $1 AND id = (
               SELECT MAX(id) FROM runs WHERE customer_id = r.customer_id AND kind = r.kind) ORDER BY kind"
        );
        let rows: Vec<RunRow> =
            with_pool!(self, |pool| sqlx::query_as(sql).bind(customer).fetch_all(pool).await)
                .map_err(|e| self.err(e))?;
        rows.into_iter().map(RunRow::into_run).collect()
    }

    /// The newest run of each kind of every customer.
    pub async fn last_runs_of_everyone(&self) -> Result<Vec<Run>, StoreError> {
        let sql = select_runs!(
            "WHERE id IN (SELECT MAX(id) FROM runs GROUP BY customer_id, kind) ORDER BY customer_id, kind"
        );
        let rows: Vec<RunRow> =
            with_pool!(self, |pool| sqlx::query_as(sql).fetch_all(pool).await).map_err(|e| self.err(e))?;
        rows.into_iter().map(RunRow::into_run).collect()
    }

    /// Runs left `running` by a process that died: marked aborted.
    pub async fn abort_running_runs(&self, customer: CustomerId, message: &str) -> Result<u64, StoreError> {
        let done = with_pool!(self, |pool| {
            sqlx::query(
                "UPDATE runs SET outcome = 'aborted', finished_at = $1, message = $2
                 WHERE customer_id = $3 AND outcome = 'running'",
            )
            .bind(Utc::now())
            .bind(message)
            .bind(customer)
            .execute(pool)
            .await
            .map(|r| r.rows_affected())
        })
        .map_err(|e| self.err(e))?;
        Ok(done)
    }

    /// Appends to the audit log.
    pub async fn record_audit(&self, entry: &AuditEntry) -> Result<(), StoreError> {
        with_pool!(self, |pool| async {
            let mut tx = pool.begin_write().await?;
            super::insert_audit!(tx, entry)?;
            tx.commit().await
        }
        .await)
        .map_err(|e| self.err(e))
    }

    /// The newest audit entries, of one customer or all, newest first.
    pub async fn audit_log(&self, customer: Option<&str>, limit: i64) -> Result<Vec<AuditEntry>, StoreError> {
        type Row = (DateTime<Utc>, String, Option<String>, String, String, String);
        let rows: Vec<Row> = with_pool!(self, |pool| {
            sqlx::query_as(
                "SELECT at, actor, customer, action, detail, result FROM audit_log
                 WHERE ($1 IS NULL OR customer = $1) ORDER BY id DESC LIMIT $2",
            )
            .bind(customer)
            .bind(limit)
            .fetch_all(pool)
            .await
        })
        .map_err(|e| self.err(e))?;
        Ok(rows
            .into_iter()
            .map(|(at, actor, customer, action, detail, result)| AuditEntry {
                at,
                actor,
                customer,
                action,
                detail,
                result,
            })
            .collect())
    }
}
