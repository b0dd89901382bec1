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
    /// VOMO requests per second for this customer (default: sync.rate of the config; 0 = unlimited).
    #[arg(long, value_name = "REQ_PER_S")]
    pub rate: Option<f64>,
    /// How often to poll for changes (default: sync.poll_every of the config).
    #[arg(long, value_name = "DURATION", value_parser = crate::config::parse_duration_flag)]
    pub poll_every: Option<std::time::Duration>,
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
}
