//! The command line (clap derive): global flags and one subcommand per
//! feature that works. Parsing only; [`crate::app`] runs what is parsed.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

use crate::config::{LogFormat, Overrides};

#[derive(Debug, Parser)]
#[command(
    name = "vomo-sync",
    version,
    about = "Keeps customers' external systems in step with their VOMO users."
)]
pub struct Cli {
    /// Config file (default: config.toml in the platform config dir; also VOMO_SYNC_CONFIG).
    #[arg(long, global = true, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// State DB: a SQLite file path or a postgres:// URL (also VOMO_SYNC_STATE).
    #[arg(long, global = true, value_name = "PATH|URL")]
    pub state: Option<String>,
    /// Log format for commands that log to stderr.
    #[arg(long, global = true, value_enum)]
    pub log_format: Option<LogFormat>,
    /// Log filter, e.g. `info` or `vomo_sync=debug` (RUST_LOG wins when set).
    #[arg(long, global = true, value_name = "FILTER")]
    pub log_level: Option<String>,
    #[command(subcommand)]
    pub command: Option<Command>,
}

impl Cli {
    pub fn overrides(&self) -> Overrides {
        Overrides {
            config_file: self.config.clone(),
            state: self.state.clone(),
            log_format: self.log_format,
            log_level: self.log_level.clone(),
        }
    }
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Print the effective configuration (secrets redacted) and the paths of the config, state and log files.
    Config,
    /// Apply the state DB's pending migrations (other commands also do this on start).
    Migrate,
    /// Run a local VOMO simulator (VOMO surface plus an admin surface) until Ctrl-C.
    Simulate(SimulateArgs),
    /// Onboard and manage customers.
    #[command(subcommand)]
    Customer(CustomerCommand),
    /// Inspect and act on the dead-letter queue.
    #[command(subcommand)]
    Dlq(DlqCommand),
    /// Run the sync engine unattended until SIGTERM/SIGINT (or once with --once).
    Headless(HeadlessArgs),
    /// Print every customer's sync health.
    Status(StatusArgs),
    /// Run a reconciliation or a deletion sweep now.
    #[command(subcommand)]
    Sync(SyncCommand),
    /// The operations console, hosting the sync engine (the default in a terminal).
    Console(ConsoleArgs),
    /// A self-contained demo: a simulated VOMO, three demo customers, live edits, the console.
    Demo(DemoArgs),
}

#[derive(Debug, Clone, Default, Args)]
pub struct ConsoleArgs {
    /// Observe only: every action that changes something is hidden and refused.
    #[arg(long)]
    pub readonly: bool,
    /// Run no customers here: show every customer of the state DB with the live figures the
    /// instances running them publish, and send actions to those instances through the state DB.
    #[arg(long)]
    pub attach: bool,
    /// No colours (also when NO_COLOR is set).
    #[arg(long)]
    pub no_color: bool,
    /// `dark` or `light` (default: console.theme of the config).
    #[arg(long, value_name = "THEME", value_parser = ["dark", "light"])]
    pub theme: Option<String>,
}

#[derive(Debug, Clone, Args)]
pub struct DemoArgs {
    /// Run the demo engine without the console, until SIGTERM/SIGINT.
    #[arg(long)]
    pub headless: bool,
    /// Also write every demo customer to this destination (e.g. a postgres:// URL). Repeatable.
    #[arg(long = "dest", value_name = "SPEC")]
    pub destinations: Vec<String>,
    /// Users of the three demo customers.
    #[arg(long, value_name = "N,N,N", value_delimiter = ',', default_values_t = [500, 5000, 50000])]
    pub users: Vec<usize>,
    #[command(flatten)]
    pub console: ConsoleArgs,
}

#[derive(Debug, Subcommand)]
pub enum SyncCommand {
    /// Re-read the recent past (sync.reconcile_lookback) and repair what the destinations miss.
    /// Runs here, or is sent to the instance running the customer.
    Reconcile { name: String },
    /// Poll now: sent to the instance running the customer.
    Poll { name: String },
    /// Start (or re-walk) the backfill now: sent to the instance running the customer.
    Backfill { name: String },
    /// Scan every user: confirm and delete users VOMO no longer has, repair drift.
    /// Runs here, or is sent to the instance running the customer.
    Deletions {
        name: String,
        /// Report what would be deleted; change nothing.
        #[arg(long, conflicts_with_all = ["confirm", "dismiss"])]
        dry_run: bool,
        /// Carry out the deletions of a run the mass-deletion guard stopped.
        #[arg(long, value_name = "RUN_ID", conflicts_with = "dismiss")]
        confirm: Option<i64>,
        /// Drop a run the mass-deletion guard stopped, deleting nothing.
        #[arg(long, value_name = "RUN_ID")]
        dismiss: Option<i64>,
    },
}

/// Where a token comes from: never the command line.
#[derive(Debug, Clone, Args)]
#[group(required = true, multiple = false)]
pub struct TokenSource {
    /// Read the token from this file (trailing whitespace ignored).
    #[arg(long, value_name = "FILE")]
    pub token_file: Option<PathBuf>,
    /// Read the token from standard input.
    #[arg(long)]
    pub token_stdin: bool,
}

#[derive(Debug, Subcommand)]
pub enum CustomerCommand {
    /// Onboard a customer: validate its token, check its destinations, store both, queue the backfill.
    Add(AddArgs),
    /// List customers.
    List {
        #[arg(long)]
        json: bool,
    },
    /// Replace a customer's token (validated first); a stopped customer resumes from its checkpoint.
    Token {
        name: String,
        #[command(flatten)]
        token: TokenSource,
    },
    /// Stop syncing a customer until resumed.
    Pause { name: String },
    /// Resume a paused customer from its checkpoint.
    Resume { name: String },
    /// Offboard a customer: stop its work, delete its token at once, keep its state for the retention period.
    Offboard {
        name: String,
        /// Also remove all of its state now (the audit log stays).
        #[arg(long)]
        purge: bool,
        /// Confirm; without it the command explains what it would do and changes nothing.
        #[arg(long)]
        yes: bool,
    },
    /// Make the customer's read-only token for GET /customers/NAME/health (shown once; replaces the previous one).
    HealthToken { name: String },
    /// Bring an offboarded customer back (within the retention period) with a new token; it resumes from its checkpoint.
    Restore {
        name: String,
        #[command(flatten)]
        token: TokenSource,
    },
}

#[derive(Debug, Clone, Args)]
pub struct AddArgs {
    pub name: String,
    #[command(flatten)]
    pub token: TokenSource,
    /// The customer's VOMO base URL (default: vomo.base_url of the config).
    #[arg(long, value_name = "URL")]
    pub vomo_url: Option<String>,
    /// A destination: postgres://…[?table=NAME], webhook:URL,secret-env=VAR|secret-file=PATH, or jsonl:PATH. Repeatable.
    #[arg(long = "dest", value_name = "SPEC", required = true)]
    pub destinations: Vec<String>,
    /// VOMO rate for this customer: `auto` follows the limit VOMO declares (X-RateLimit-*), a number caps it in requests per second, 0 = no cap (default: sync.rate of the config, `auto`).
    #[arg(long, value_name = "auto|REQ_PER_S")]
    pub rate: Option<crate::domain::RateSetting>,
    /// How often to poll for changes (default: sync.poll_every of the config).
    #[arg(long, value_name = "DURATION", value_parser = crate::config::parse_duration_flag)]
    pub poll_every: Option<std::time::Duration>,
    /// How often the live tail reads changes between polls, e.g. 10s; 0 turns it off (default: sync.tail_every).
    #[arg(long, value_name = "DURATION", value_parser = crate::config::parse_duration_flag)]
    pub tail_every: Option<std::time::Duration>,
    /// How often to reconcile the recent past (default: sync.reconcile_every).
    #[arg(long, value_name = "DURATION", value_parser = crate::config::parse_duration_flag)]
    pub reconcile_every: Option<std::time::Duration>,
    /// How often to scan every user for deletions and drift (default: sync.deletion_scan_every).
    #[arg(long, value_name = "DURATION", value_parser = crate::config::parse_duration_flag)]
    pub deletion_scan_every: Option<std::time::Duration>,
    /// A field the customer's system owns and writes back to VOMO (phone, first_name, last_name, birthday, gender). Repeatable; needs a postgres destination.
    #[arg(long = "writeback", value_name = "FIELD")]
    pub writeback: Vec<String>,
}

#[derive(Debug, Subcommand)]
pub enum DlqCommand {
    /// List pending entries, of one customer or all.
    List {
        name: Option<String>,
        #[arg(long)]
        json: bool,
    },
    /// Retry entries of a customer now (permanent ones too).
    Retry {
        name: String,
        /// One entry.
        #[arg(long, conflicts_with = "all", required_unless_present = "all")]
        id: Option<i64>,
        /// Every pending entry of the customer.
        #[arg(long)]
        all: bool,
    },
    /// Give up on an entry, with a note saying why (audited).
    Discard {
        id: i64,
        #[arg(long, value_name = "TEXT")]
        note: String,
    },
}

#[derive(Debug, Clone, Args)]
pub struct HeadlessArgs {
    /// Run every customer's due work (backfill or one poll) to completion, then exit (non-zero if any failed).
    #[arg(long)]
    pub once: bool,
    /// Address for /healthz, /readyz and /metrics (default: headless.listen of the config).
    #[arg(long, value_name = "ADDR")]
    pub listen: Option<std::net::SocketAddr>,
}

#[derive(Debug, Clone, Args)]
pub struct StatusArgs {
    pub name: Option<String>,
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Clone, Args)]
pub struct SimulateArgs {
    /// Number of organisations (org-1, org-2, …), each with its own token.
    #[arg(long, default_value_t = 3)]
    pub orgs: usize,
    /// Users seeded into each organisation.
    #[arg(long, default_value_t = 1000)]
    pub users: usize,
    /// Seed for users, tokens and faults: the same seed gives the same world.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Port of the VOMO surface (0 picks a free one).
    #[arg(long, default_value_t = 8080)]
    pub port: u16,
    /// Port of the admin surface (default: the VOMO port + 1; 0 picks a free one).
    #[arg(long)]
    pub admin_port: Option<u16>,
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1")]
    pub bind: std::net::IpAddr,
    /// Per-token rate limit, e.g. `3/s` or `60/m` (Laravel's default); none when omitted.
    #[arg(long, value_name = "N/s|N/m")]
    pub rate_limit: Option<String>,
    /// Secret for the admin surface (default: derived from the seed).
    #[arg(long, env = "VOMO_SIM_ADMIN_SECRET", hide_env_values = true)]
    pub admin_secret: Option<String>,
    /// A JSON file of faults to switch on at start (same shape as PUT /admin/faults).
    #[arg(long, value_name = "FILE")]
    pub faults: Option<PathBuf>,
    /// Edit one random user this often (e.g. `2s`), like a live organisation.
    #[arg(long, value_name = "DURATION", value_parser = crate::config::parse_duration_flag)]
    pub edit_every: Option<std::time::Duration>,
    /// Projects seeded per organisation, with dates and participations (none by default).
    #[arg(long, default_value_t = 0)]
    pub projects: usize,
    /// Participation changes per second in each organisation with Projects (0 = off).
    #[arg(long, value_name = "RATE", default_value_t = 0.0)]
    pub participation_changes: f64,
    /// A JSON file of the Projects assumption knobs (same shape as PUT /admin/project-knobs).
    #[arg(long, value_name = "FILE")]
    pub project_knobs: Option<PathBuf>,
    /// Also run a HubSpot simulator (a `hubspot:` destination's `base=`), with HubSpot's
    /// documented Free/Starter private-app limits.
    #[arg(long)]
    pub hubspot: bool,
    /// Port of the HubSpot simulator (0 picks a free one); its admin surface is the next port.
    #[arg(long, default_value_t = 8090, requires = "hubspot")]
    pub hubspot_port: u16,
}
