//! The operations console: a ratatui front end over an engine running in
//! the same process. It renders the latest [`EngineSnapshot`], streams
//! engine events into its log pane, and turns keys into engine commands and
//! operator actions — all through [`state::update`], the one pure step.
//!
//! Terminal hygiene: the terminal is restored on quit, on panic (ratatui's
//! hook), and on SIGTERM, SIGHUP and SIGINT; a resize or Ctrl-L redraws
//! everything; quitting blanks the screen first so a multiplexer resized
//! meanwhile leaves no frame in the scrollback; the mouse is never captured (copying text keeps working); the
//! screen is redrawn only when something changed — an engine snapshot comes
//! about once a second — so an idle console costs next to no CPU.

pub mod keys;
pub mod state;
pub mod theme;
pub mod view;

#[cfg(test)]
mod tests;

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use crossterm::event::{Event, EventStream, KeyEventKind};
use futures::StreamExt;
use tokio::sync::mpsc;

use self::keys::KeyMap;
use self::state::{App, Effect, Msg, OnboardText, update};
use self::theme::{Theme, ThemeKind};
use crate::domain::{ApiToken, CustomerSettings};
use crate::engine::{Command, EngineHandle, OnboardRequest};

/// How the console is set up.
#[derive(Debug, Clone)]
pub struct ConsoleOptions {
    pub readonly: bool,
    pub theme: ThemeKind,
    pub keys: KeyMap,
    /// Prefills the onboarding form.
    pub default_vomo_url: String,
    /// Settings for customers onboarded from the form.
    pub default_settings: CustomerSettings,
    /// Recorded as the actor of every action (the OS user).
    pub actor: String,
    /// A first line for the log pane (the demo's hints).
    pub greeting: Option<String>,
}

/// How often the selected customer's DLQ entries are re-read.
const DLQ_REFRESH: Duration = Duration::from_secs(2);

/// Runs the console until the operator quits or a signal arrives. The
/// engine keeps running; the caller shuts it down.
pub async fn run(engine: Arc<EngineHandle>, options: ConsoleOptions) -> std::io::Result<()> {
    let mut terminal = ratatui::try_init()?;
    let result = event_loop(&mut terminal, &engine, options).await;
    blank_before_leaving(&mut terminal);
    ratatui::restore();
    result
}

/// Blanks the alternate screen and parks the cursor top-left before leaving
/// it. A multiplexer that was resized while the console ran (tmux 3.3 when
/// the pane grew) shrinks the alternate screen back to its old size on exit
/// and pushes the lines above the cursor into the scrollback: with the
/// cursor at the top and the screen blank, nothing is pushed. Best effort —
/// the terminal may already be gone. Written straight to the backend:
/// `Terminal::clear` asks the terminal where its cursor is, and the answer
/// would arrive after raw mode is off and land on the shell's prompt.
fn blank_before_leaving(terminal: &mut ratatui::DefaultTerminal) {
    use crossterm::{cursor::MoveTo, execute, terminal::Clear, terminal::ClearType};
    let _ = execute!(terminal.backend_mut(), Clear(ClearType::All), MoveTo(0, 0));
}

async fn event_loop(
    terminal: &mut ratatui::DefaultTerminal,
    engine: &Arc<EngineHandle>,
    options: ConsoleOptions,
) -> std::io::Result<()> {
    let theme = Theme::new(options.theme);
    let mut app =
        App::new(options.keys.clone(), options.readonly, options.default_vomo_url.clone(), Utc::now());
    let (results_tx, mut results) = mpsc::unbounded_channel::<Msg>();
    let mut snapshots = engine.watch();
    let mut events = engine.events();
    let mut keys = EventStream::new();
    let mut tick = tokio::time::interval(DLQ_REFRESH);
    let mut signals = Signals::new()?;
    if let Some(text) = &options.greeting {
        update(
            &mut app,
            Msg::Event(crate::engine::EngineEvent::new(None, crate::engine::EventLevel::Info, text.clone())),
        );
    }
    let pending = update(&mut app, Msg::Snapshot(snapshots.borrow_and_update().clone()));
    let context = Context { engine, options: &options, results: results_tx };
    let mut dirty = true;
    context.carry_out(pending, terminal)?;
    loop {
        if dirty {
            terminal.draw(|frame| view::draw(frame, &app, theme))?;
            dirty = false;
        }
        let msg = tokio::select! {
            () = signals.any() => break,
            event = keys.next() => match event {
                Some(Ok(Event::Key(key))) if key.kind != KeyEventKind::Release => Msg::Key(key),
                Some(Ok(Event::Resize(..) | Event::FocusGained)) => {
                    terminal.clear()?;
                    dirty = true;
                    continue;
                }
                Some(Ok(_)) => continue,
                // The terminal is gone (e.g. the SSH connection dropped).
                Some(Err(_)) | None => break,
            },
            changed = snapshots.changed() => {
                if changed.is_err() {
                    break;
                }
                Msg::Snapshot(snapshots.borrow_and_update().clone())
            }
            event = events.recv() => match event {
                Ok(event) => Msg::Event(event),
                Err(_) => continue,
            },
            Some(result) = results.recv() => result,
            _ = tick.tick() => Msg::Tick(Utc::now()),
        };
        let effects = update(&mut app, msg);
        dirty = true;
        if context.carry_out(effects, terminal)? || app.quit {
            break;
        }
    }
    Ok(())
}

/// What carrying out effects needs.
struct Context<'a> {
    engine: &'a Arc<EngineHandle>,
    options: &'a ConsoleOptions,
    results: mpsc::UnboundedSender<Msg>,
}

impl Context<'_> {
    /// Starts each effect; results come back as messages. True on quit.
    fn carry_out(
        &self,
        effects: Vec<Effect>,
        terminal: &mut ratatui::DefaultTerminal,
    ) -> std::io::Result<bool> {
        for effect in effects {
            match effect {
                Effect::Quit => return Ok(true),
                Effect::Redraw => terminal.clear()?,
                Effect::Engine(command) => self.engine_command(command),
                Effect::Onboard(request) => self.onboard(request),
                Effect::ReplaceToken { customer, token } => self.replace_token(customer, token),
                Effect::DiscardDlq { id, note } => self.discard(id, note),
                Effect::LoadDlq(customer) => self.load_dlq(customer),
            }
        }
        Ok(false)
    }

    fn spawn(&self, work: impl Future<Output = Msg> + Send + 'static) {
        let results = self.results.clone();
        tokio::spawn(async move {
            let _ = results.send(work.await);
        });
    }

    fn engine_command(&self, command: Command) {
        let engine = Arc::clone(self.engine);
        let actor = self.options.actor.clone();
        self.spawn(async move {
            let what = command.action().to_owned();
            let result =
                engine.send(command, &actor).await.map(|done| done.message).map_err(|e| e.to_string());
            Msg::Done { what, result, engine_logged: true }
        });
    }

    fn onboard(&self, request: OnboardText) {
        let engine = Arc::clone(self.engine);
        let (actor, settings) = (self.options.actor.clone(), self.options.default_settings.clone());
        self.spawn(async move {
            let OnboardText { name, token, vomo_url, destinations } = request;
            let result = match OnboardRequest::from_text(&name, &token, &vomo_url, &destinations, settings) {
                Ok(request) => engine.send(Command::Onboard(Box::new(request)), &actor).await,
                Err(e) => Err(e),
            };
            Msg::OnboardDone(
                result
                    .map(|_| format!("onboarded {name}; its backfill starts now"))
                    .map_err(|e| e.to_string()),
            )
        });
    }

    fn replace_token(&self, customer: String, token: String) {
        let engine = Arc::clone(self.engine);
        let actor = self.options.actor.clone();
        self.spawn(async move {
            let result = match ApiToken::new(&token) {
                Some(token) => {
                    let command = Command::ReplaceToken { customer: customer.clone(), token };
                    engine.send(command, &actor).await.map(|done| done.message).map_err(|e| e.to_string())
                }
                None => Err("the token is empty".to_owned()),
            };
            Msg::Done { what: format!("token of {customer}"), result, engine_logged: true }
        });
    }

    fn discard(&self, id: i64, note: String) {
        let engine = Arc::clone(self.engine);
        let actor = self.options.actor.clone();
        self.spawn(async move {
            let result = match engine.dlq_item(id).await {
                Ok(item) => {
                    let command = Command::DiscardDlq { customer: item.customer, id, note };
                    engine.send(command, &actor).await.map(|done| done.message).map_err(|e| e.to_string())
                }
                Err(e) => Err(e.to_string()),
            };
            Msg::Done { what: format!("DLQ entry #{id}"), result, engine_logged: true }
        });
    }

    fn load_dlq(&self, customer: String) {
        let engine = Arc::clone(self.engine);
        self.spawn(async move {
            match engine.dlq_entries(&customer).await {
                Ok(items) => Msg::Dlq { customer, items },
                // Said, not shown as an empty list.
                Err(e) => Msg::Done {
                    what: format!("DLQ of {customer}"),
                    result: Err(e.to_string()),
                    engine_logged: false,
                },
            }
        });
    }
}

/// SIGTERM, SIGHUP (the terminal went away) and SIGINT all end the console.
struct Signals {
    #[cfg(unix)]
    term: tokio::signal::unix::Signal,
    #[cfg(unix)]
    hup: tokio::signal::unix::Signal,
}

impl Signals {
    fn new() -> std::io::Result<Self> {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{SignalKind, signal};
            Ok(Self { term: signal(SignalKind::terminate())?, hup: signal(SignalKind::hangup())? })
        }
        #[cfg(not(unix))]
        Ok(Self {})
    }

    async fn any(&mut self) {
        #[cfg(unix)]
        tokio::select! {
            _ = self.term.recv() => {}
            _ = self.hup.recv() => {}
            _ = tokio::signal::ctrl_c() => {}
        }
        #[cfg(not(unix))]
        let _ = tokio::signal::ctrl_c().await;
    }
}
