//! The console's state and its one pure step, [`update`]: a message (a key,
//! a new engine snapshot, an event, an action's result) changes the state
//! and yields [`Effect`]s for the runtime to carry out. No IO and no clock
//! here — `now` arrives with the messages — so every flow (selection,
//! filtering, confirmations, read-only refusals) is unit-tested.
//!
//! - `model`: [`App`] and its plain data (rows, selection, sorting,
//!   filtering, health ranking).
//! - `messages`: what goes in ([`Msg`]) and what comes out ([`Effect`]).
//! - `update`: the step itself, and keys in normal mode as actions.
//! - `prompts`: filter, typed-name confirmation, masked token, discard
//!   note, onboarding form.
//! - `command_line`: the `:` command line.

mod command_line;
mod messages;
mod model;
mod prompts;
mod update;

pub use messages::{Effect, Msg, OnboardText};
pub use model::{
    App, Cost, CostlyAction, FORM_FIELDS, Guarded, Health, History, Mode, OnboardForm, Pane, SortKey, health,
    token_health,
};
pub use update::update;
