//! The command queue: operator commands for customers another process runs.
//! The issuer inserts a `pending` row; the process holding the customer's
//! lease claims it with one conditional UPDATE (so it runs once, whoever
//! else looks), carries it out and writes the result, which the issuer
//! reads back. On PostgreSQL an insert also sends `NOTIFY` so owners wake at
//! once; [`CommandSignal`] waits for that (or just sleeps on SQLite). The
//! command itself is opaque JSON here; the engine defines it.

use std::time::Duration;

use chrono::{DateTime, Utc};
use sqlx::postgres::PgListener;

use super::{Backend, Store, StoreError, with_pool};

/// The channel owners listen on for new commands (PostgreSQL).
const CHANNEL: &str = "vomo_sync_commands";

pub type CommandId = i64;

crate::domain::text_enum!(
    /// Life of a queued command.
    CommandStatus {
        Pending => "pending",
        Running => "running",
        Done => "done",
        Failed => "failed",
        Expired => "expired",
    }
);

/// A command as queued.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueuedCommand {
    pub id: CommandId,
    pub customer: String,
    /// The engine's command as JSON.
    pub command: String,
    pub actor: String,
    /// The process that issued it.
    pub issued_by: String,
    pub status: CommandStatus,
    pub claimed_by: Option<String>,
    pub result: Option<String>,
    pub created_at: DateTime<Utc>,
    pub finished_at: Option<DateTime<Utc>>,
}

type Row = (
    i64,
    String,
    String,
    String,
    String,
    String,
    Option<String>,
    Option<String>,
    DateTime<Utc>,
    Option<DateTime<Utc>>,
);

const COLUMNS: &str = "c.id, c.customer, c.command, c.actor, c.issued_by, c.status, c.claimed_by, c.result, c.created_at, c.finished_at";

fn from_row(row: Row) -> Result<QueuedCommand, StoreError> {
    let (id, customer, command, actor, issued_by, status, claimed_by, result, created_at, finished_at) = row;
    Ok(QueuedCommand {
        id,
        customer,
        command,
        actor,
        issued_by,
        status: status.parse().map_err(|what| StoreError::Corrupt { what })?,
        claimed_by,
        result,
        created_at,
        finished_at,
    })
}

impl Store {
    /// Queues a command for `customer` and wakes listening owners.
    pub async fn enqueue_command(
        &self,
        customer: &str,
        command: &str,
        actor: &str,
        issued_by: &str,
        now: DateTime<Utc>,
    ) -> Result<CommandId, StoreError> {
        let insert = "INSERT INTO commands (customer, command, actor, issued_by, status, created_at)
                      VALUES ($1, $2, $3, $4, 'pending', $5) RETURNING id";
        let id = match &self.backend {
            Backend::Sqlite(pool) => {
                sqlx::query_scalar(insert)
                    .bind(customer)
                    .bind(command)
                    .bind(actor)
                    .bind(issued_by)
                    .bind(now)
                    .fetch_one(pool)
                    .await
            }
            Backend::Postgres(pool) => {
                async {
                    let mut tx = pool.begin().await?;
                    let id: i64 = sqlx::query_scalar(insert)
                        .bind(customer)
                        .bind(command)
                        .bind(actor)
                        .bind(issued_by)
                        .bind(now)
                        .fetch_one(&mut *tx)
                        .await?;
                    // Delivered at commit, so the row is visible on wake-up.
                    sqlx::query("SELECT pg_notify($1, '')").bind(CHANNEL).execute(&mut *tx).await?;
                    tx.commit().await?;
                    Ok(id)
                }
                .await
            }
        }
        .map_err(|e| self.err(e))?;
        Ok(id)
    }

    /// Pending commands for customers whose lease `owner` holds, oldest first.
    pub async fn pending_commands_for(&self, owner: &str) -> Result<Vec<QueuedCommand>, StoreError> {
        let sql = format!(
            "SELECT {COLUMNS} FROM commands c JOIN customers cu ON cu.name = c.customer
             JOIN leases l ON l.customer_id = cu.id
             WHERE c.status = 'pending' AND l.owner = $1 ORDER BY c.id"
        );
        let rows: Vec<Row> = with_pool!(self, |pool| {
            sqlx::query_as(sqlx::AssertSqlSafe(sql)).bind(owner).fetch_all(pool).await
        })
        .map_err(|e| self.err(e))?;
        rows.into_iter().map(from_row).collect()
    }

    /// Takes a pending command for `owner`. True for exactly one caller.
    pub async fn claim_command(
        &self,
        id: CommandId,
        owner: &str,
        now: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        let done = with_pool!(self, |pool| {
            sqlx::query(
                "UPDATE commands SET status = 'running', claimed_by = $1, claimed_at = $2
                 WHERE id = $3 AND status = 'pending'",
            )
            .bind(owner)
            .bind(now)
            .bind(id)
            .execute(pool)
            .await
            .map(|r| r.rows_affected())
        })
        .map_err(|e| self.err(e))?;
        Ok(done == 1)
    }

    /// Records a command's outcome (`done` or `failed`) and its one-line result.
    pub async fn finish_command(
        &self,
        id: CommandId,
        ok: bool,
        result: &str,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        let status = if ok { CommandStatus::Done } else { CommandStatus::Failed };
        with_pool!(self, |pool| {
            sqlx::query(
                "UPDATE commands SET status = $1, result = $2, finished_at = $3 WHERE id = $4 AND status = 'running'",
            )
            .bind(status.as_str())
            .bind(result)
            .bind(now)
            .bind(id)
            .execute(pool)
            .await
            .map(|_| ())
        })
        .map_err(|e| self.err(e))?;
        Ok(())
    }

    /// Gives up on a command nobody claimed. True when it was still pending
    /// (and now never will run); false when an owner claimed it meanwhile.
    pub async fn expire_command(
        &self,
        id: CommandId,
        why: &str,
        now: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        let done = with_pool!(self, |pool| {
            sqlx::query(
                "UPDATE commands SET status = 'expired', result = $1, finished_at = $2 WHERE id = $3 AND status = 'pending'",
            )
            .bind(why)
            .bind(now)
            .bind(id)
            .execute(pool)
            .await
            .map(|r| r.rows_affected())
        })
        .map_err(|e| self.err(e))?;
        Ok(done == 1)
    }

    /// Marks commands claimed by processes that are no longer alive (no
    /// heartbeat since `alive_since`) as failed: they may or may not have
    /// taken effect, which the result says.
    pub async fn fail_orphaned_commands(
        &self,
        alive_since: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Result<u64, StoreError> {
        with_pool!(self, |pool| {
            sqlx::query(
                "UPDATE commands SET status = 'failed', finished_at = $1,
                   result = 'the instance carrying it out stopped before it finished; check the customer and issue it again if needed'
                 WHERE status = 'running' AND claimed_by NOT IN (SELECT owner FROM instances WHERE heartbeat_at >= $2)",
            )
            .bind(now)
            .bind(alive_since)
            .execute(pool)
            .await
            .map(|r| r.rows_affected())
        })
        .map_err(|e| self.err(e))
    }

    /// One command, as it stands.
    pub async fn queued_command(&self, id: CommandId) -> Result<Option<QueuedCommand>, StoreError> {
        let sql = format!("SELECT {COLUMNS} FROM commands c WHERE c.id = $1");
        let row: Option<Row> = with_pool!(self, |pool| {
            sqlx::query_as(sqlx::AssertSqlSafe(sql)).bind(id).fetch_optional(pool).await
        })
        .map_err(|e| self.err(e))?;
        row.map(from_row).transpose()
    }

    /// The most recent commands, newest first.
    pub async fn recent_commands(&self, limit: i64) -> Result<Vec<QueuedCommand>, StoreError> {
        let sql = format!("SELECT {COLUMNS} FROM commands c ORDER BY c.id DESC LIMIT $1");
        let rows: Vec<Row> = with_pool!(self, |pool| {
            sqlx::query_as(sqlx::AssertSqlSafe(sql)).bind(limit).fetch_all(pool).await
        })
        .map_err(|e| self.err(e))?;
        rows.into_iter().map(from_row).collect()
    }

    /// Deletes commands that ended before `before` (their effect is in the
    /// audit log).
    pub async fn prune_commands(&self, before: DateTime<Utc>) -> Result<u64, StoreError> {
        with_pool!(self, |pool| {
            sqlx::query("DELETE FROM commands WHERE finished_at < $1")
                .bind(before)
                .execute(pool)
                .await
                .map(|r| r.rows_affected())
        })
        .map_err(|e| self.err(e))
    }

    /// A way to wait for new commands: `NOTIFY` on PostgreSQL, a plain
    /// timer on SQLite.
    pub fn command_signal(&self) -> CommandSignal {
        CommandSignal { backend: self.backend.clone(), listener: None }
    }
}

/// Waits for "a command may be waiting". Spurious wake-ups are fine (the
/// caller looks in the queue); missed notifications are covered by the
/// `fallback` timeout.
pub struct CommandSignal {
    backend: Backend,
    listener: Option<PgListener>,
}

impl CommandSignal {
    /// Returns when a command was queued (PostgreSQL) or after `fallback`.
    pub async fn wait(&mut self, fallback: Duration) {
        let Backend::Postgres(pool) = &self.backend else {
            tokio::time::sleep(fallback).await;
            return;
        };
        if self.listener.is_none() {
            match PgListener::connect_with(pool).await {
                Ok(mut listener) => match listener.listen(CHANNEL).await {
                    Ok(()) => self.listener = Some(listener),
                    Err(e) => tracing::warn!(error = %e, "cannot LISTEN for commands; polling instead"),
                },
                Err(e) => tracing::warn!(error = %e, "cannot LISTEN for commands; polling instead"),
            }
        }
        let Some(listener) = self.listener.as_mut() else {
            tokio::time::sleep(fallback).await;
            return;
        };
        match tokio::time::timeout(fallback, listener.recv()).await {
            Ok(Ok(_)) | Err(_) => {}
            Ok(Err(e)) => {
                // Reconnect on the next wait; notifications sent meanwhile
                // are covered by the caller's look at the queue.
                tracing::warn!(error = %e, "lost the LISTEN connection for commands");
                self.listener = None;
            }
        }
    }
}
