//! The status bar: the filter or command line being typed, else the latest
//! outcome, else hints for the main keys (only those the console allows).

use ratatui::Frame;
use ratatui::layout::Rect;
use ratatui::style::Style;
use ratatui::text::{Line, Span};
use ratatui::widgets::Paragraph;

use crate::engine::EventLevel;
use crate::tui::keys::Action;
use crate::tui::state::{App, Health, Mode};
use crate::tui::theme::Theme;

pub(super) fn render(frame: &mut Frame, area: Rect, app: &App, theme: Theme) {
    let line = match &app.mode {
        Mode::Filter(input) => {
            Line::from(vec![Span::styled("/", theme.key()), Span::raw(input.value().to_owned())])
        }
        Mode::LogSearch(input) => Line::from(vec![
            Span::styled("search the log: ", theme.key()),
            Span::raw(input.value().to_owned()),
        ]),
        Mode::Command(input) => {
            Line::from(vec![Span::styled(":", theme.key()), Span::raw(input.value().to_owned())])
        }
        _ => match app.shown_status() {
            Some((level, text)) => {
                let style = match level {
                    EventLevel::Info => Style::new(),
                    EventLevel::Warn => theme.health(Health::Warn),
                    EventLevel::Error => theme.health(Health::Bad),
                };
                Line::from(Span::styled(text.clone(), style))
            }
            None => hints(app, area.width, theme),
        },
    };
    frame.render_widget(Paragraph::new(line), area);
}

/// Key hints by priority: `? help` and `q quit` always first, then as many
/// of the rest as the width holds (whole hints only; help lists them all).
fn hints(app: &App, width: u16, theme: Theme) -> Line<'static> {
    let mut actions = vec![Action::Help, Action::Quit, Action::Filter, Action::NextPane];
    if !app.readonly {
        actions.extend([
            Action::Token,
            Action::Retry,
            Action::Backfill,
            Action::Reconcile,
            Action::Sweep,
            Action::Pause,
            Action::Onboard,
            Action::Offboard,
        ]);
    }
    let mut spans = Vec::new();
    let mut used = 0usize;
    for action in actions {
        let Some(key) = app.keys.keys_of(action).first().cloned() else { continue };
        let text = format!(" {}  ", action.name());
        let needed = key.chars().count() + text.chars().count();
        if used + needed > usize::from(width) && used > 0 {
            break;
        }
        used += needed;
        spans.push(Span::styled(key, theme.key()));
        spans.push(Span::raw(text));
    }
    Line::from(spans)
}
