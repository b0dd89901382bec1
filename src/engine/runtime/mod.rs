//! The processes around runs: what workers and the supervisor share
//! ([`shared`]), the handle front ends hold and the engine's start
//! ([`handle`]), the supervisor split by job — routing operator commands
//! ([`supervisor`]), balancing leases and fair shares with heartbeats
//! ([`balancing`]), publishing snapshots ([`publish`]) — one customer's
//! worker ([`worker`]), the other processes ([`fleet`]), commands and the
//! command queue ([`command`], [`queue`]), snapshots ([`snapshot`]) and
//! `headless --once` ([`once`]). It drives [`super::run`]; nothing there
//! names anything here.

pub mod advance;
mod balancing;
pub mod command;
pub mod door;
pub mod fleet;
pub mod handle;
pub mod once;
pub mod operator;
mod publish;
pub mod queue;
pub mod shared;
pub mod snapshot;
mod supervisor;
pub mod worker;
