//! Commands through the state DB. A process that does not run a customer
//! queues the operator's command ([`send`]) and waits for the result; the
//! process holding the customer's lease claims it (exactly one claim
//! succeeds), carries it out like its own console's command (audited with
//! the issuing process named) and writes the result back. Nothing here
//! retries a command: one that nobody claims in time is expired, so it can
//! never run late, and the operator is told.

use std::time::Duration;

use chrono::Utc;

use super::command::{Command, CommandError, CommandReply, Done};
use crate::store::{CommandId, CommandStatus, QueuedCommand, Store};

/// How long a queued command may wait for its owner to claim it.
pub const CLAIM_WITHIN: Duration = Duration::from_secs(30);
/// How long a claimed command may take (commands start work; they do not
/// wait for it to finish).
const FINISH_WITHIN: Duration = Duration::from_secs(300);
/// How often the issuer looks at the command's row.
const LOOK_EVERY: Duration = Duration::from_millis(200);

/// Queues `command` for the process `holder` runs it in and waits for the
/// result: that process's one-line answer, or why there is none.
pub async fn send(
    store: &Store,
    command: &Command,
    actor: &str,
    issued_by: &str,
    holder: &str,
) -> CommandReply {
    let refused = |why: String| CommandError::Refused(why);
    let customer =
        command.customer().ok_or_else(|| refused("this command is not about one customer".into()))?;
    if !command.queueable() {
        // A secret never goes into the state DB's queue.
        return Err(refused(format!("{} is carried out where it is given, never queued", command.action())));
    }
    let json =
        serde_json::to_string(command).map_err(|e| refused(format!("cannot queue the command: {e}")))?;
    let id = store.enqueue_command(customer, &json, actor, issued_by, Utc::now()).await?;
    wait(store, id, holder).await.map(Done::said).map_err(CommandError::Remote)
}

/// The holder's answer, or why there is none.
async fn wait(store: &Store, id: CommandId, holder: &str) -> Result<String, String> {
    let queued_at = tokio::time::Instant::now();
    loop {
        tokio::time::sleep(LOOK_EVERY).await;
        let row = match store.queued_command(id).await {
            Ok(Some(row)) => row,
            Ok(None) => return Err(format!("command {id} vanished from the state DB")),
            // A blip: look again, the deadlines still hold.
            Err(e) => {
                tracing::warn!(error = %e, "cannot read command {id}");
                continue;
            }
        };
        let waited = queued_at.elapsed();
        match row.status {
            CommandStatus::Done => return Ok(answer(&row)),
            CommandStatus::Failed | CommandStatus::Expired => return Err(answer(&row)),
            CommandStatus::Pending if waited >= CLAIM_WITHIN => {
                let why = format!(
                    "{holder} did not take the command within {}s; it may be down (its customers move to other \
                     instances within the lease period) — nothing was done",
                    CLAIM_WITHIN.as_secs()
                );
                match store.expire_command(id, &why, Utc::now()).await {
                    Ok(true) => return Err(why),
                    // Claimed at the last moment: wait for its result.
                    Ok(false) => {}
                    Err(e) => tracing::warn!(error = %e, "cannot expire command {id}"),
                }
            }
            CommandStatus::Running if waited >= CLAIM_WITHIN + FINISH_WITHIN => {
                return Err(format!(
                    "command {id} was taken by {} but has no result after {}s; see the audit log",
                    row.claimed_by.as_deref().unwrap_or(holder),
                    waited.as_secs()
                ));
            }
            CommandStatus::Pending | CommandStatus::Running => {}
        }
    }
}

fn answer(row: &QueuedCommand) -> String {
    let by = row.claimed_by.as_deref().map(|o| format!(" (on {o})")).unwrap_or_default();
    format!("{}{by}", row.result.as_deref().unwrap_or("no result recorded"))
}

/// A queued command this process has claimed, decoded; `Err` carries the
/// reason it cannot be carried out (recorded as its result).
pub fn decode(row: &QueuedCommand) -> Result<Command, CommandError> {
    let command: Command = serde_json::from_str(&row.command).map_err(|e| {
        CommandError::Refused(format!("this version cannot read the command ({e}); upgrade every instance"))
    })?;
    if command.customer() != Some(row.customer.as_str()) {
        return Err(CommandError::Refused("the command does not match its customer".into()));
    }
    Ok(command)
}
