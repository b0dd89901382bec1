//! Drawing the console from its state, one file per panel as trippy keeps
//! them: `header` (the title line), `customers` (the table), `detail` (the
//! selected customer) with its `runs` and `dlq` panes, `log`, `footer` (the
//! status bar), and the pop-ups `help`, `prompt` (typed-name confirmation,
//! masked token, discard note, onboarding form) and `payload` (one DLQ
//! entry). `common` holds the drawing helpers several panels share. This
//! file lays out the frame and calls each panel's `render`. Nothing here
//! reads a clock or does IO: the same state draws the same screen.

mod common;
mod customers;
mod detail;
mod dlq;
mod footer;
mod header;
mod help;
mod log;
mod payload;
mod prompt;
mod runs;

use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::widgets::{Paragraph, Wrap};

use crate::tui::state::{App, Mode};
use crate::tui::theme::Theme;

/// Below this the layout would break; a message is shown instead.
pub const MIN_WIDTH: u16 = 60;
pub const MIN_HEIGHT: u16 = 16;

/// Draws the whole screen.
pub fn draw(frame: &mut Frame, app: &App, theme: Theme) {
    let area = frame.area();
    if area.width < MIN_WIDTH || area.height < MIN_HEIGHT {
        too_small(frame, area);
        return;
    }
    let log_height = if area.height >= 40 {
        10
    } else if area.height >= 28 {
        7
    } else {
        5
    };
    let [title_area, body, log_area, status_area] = Layout::vertical([
        Constraint::Length(1),
        Constraint::Min(6),
        Constraint::Length(log_height),
        Constraint::Length(1),
    ])
    .areas(area);
    header::render(frame, title_area, app, theme);
    let (list_area, detail_area) = if body.width >= 120 {
        let [a, b] = Layout::horizontal([Constraint::Percentage(55), Constraint::Percentage(45)]).areas(body);
        (a, b)
    } else {
        let [a, b] = Layout::vertical([Constraint::Percentage(45), Constraint::Percentage(55)]).areas(body);
        (a, b)
    };
    customers::render(frame, list_area, app, theme);
    detail::render(frame, detail_area, app, theme);
    log::render(frame, log_area, app, theme);
    footer::render(frame, status_area, app, theme);
    draw_popup(frame, area, app, theme);
}

fn too_small(frame: &mut Frame, area: Rect) {
    let text = format!(
        "The terminal is {}×{}; vomo-sync needs at least {MIN_WIDTH}×{MIN_HEIGHT}.\nEnlarge the window (the engine keeps running).",
        area.width, area.height
    );
    frame.render_widget(Paragraph::new(text).wrap(Wrap { trim: true }), area);
}

/// The pop-up the mode opens, drawn over everything else.
fn draw_popup(frame: &mut Frame, area: Rect, app: &App, theme: Theme) {
    match &app.mode {
        Mode::Help(offset) => help::render(frame, area, app, *offset, theme),
        Mode::Confirm { customer, what, typed } => prompt::confirm(frame, area, customer, what, typed, theme),
        Mode::Token { customer, input } => prompt::token(frame, area, customer, input, theme),
        Mode::DiscardNote { id, input } => prompt::discard_note(frame, area, *id, input, theme),
        Mode::Payload(i) => payload::render(frame, area, app, *i, theme),
        Mode::Onboard(form) => prompt::onboard(frame, area, form, theme),
        Mode::Normal | Mode::Filter(_) | Mode::Command(_) | Mode::LogSearch(_) => {}
    }
}
