//! One customer's sync run and nothing else: every VOMO request through the
//! customer's budget and VOMO's (bounded) clock ([`fetch`], [`budget`],
//! [`clock`]), verified windows ([`window`]), change detection and delivery
//! ([`detect`], [`process`]), the run itself in its four modes
//! ([`execute`]), deletion sweeps ([`sweep`]) and their settlement
//! ([`settle`]), write-back ([`writeback`]), DLQ retries ([`dlq_retry`]),
//! and what a run needs and shows while it goes ([`customer`], [`live`],
//! [`events`]). Nothing here knows of processes, leases or front ends: the
//! runtime drives runs, never the other way round.

pub mod budget;
pub mod clock;
pub mod customer;
pub mod declared;
mod detect;
pub mod dlq_retry;
pub mod events;
pub mod execute;
pub mod fetch;
pub mod live;
pub(crate) mod lock;
pub mod process;
pub mod settle;
pub mod sweep;
pub mod tail;
pub mod window;
pub mod writeback;
