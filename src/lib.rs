//! vomo-sync keeps, for many customers at once, an external system in step with
//! the customer's VOMO users. See ARCHITECTURE.md for the layers and the
//! one-way rule `tests/architecture.rs` enforces.

pub mod app;
pub mod cli;
pub mod config;
pub mod dest;
pub mod domain;
pub mod engine;
pub mod excerpt;
pub mod headless;
pub mod outbound;
pub mod sim;
pub mod store;
pub mod telemetry;
pub mod tui;
pub mod vomo;
