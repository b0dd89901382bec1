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
        Mode::Command(input) => {
            Line::from(vec![Span::styled(":", theme.key()), Span::raw(input.value().to_owned())])
        }
        _ => match &app.status {
            Some((level, text)) => {
                let style = match level {
                    EventLevel::Info => Style::new(),
                    EventLevel::Warn => theme.health(Health::Warn),
                    EventLevel::Error => theme.health(Health::Bad),
                };
                Line::from(Span::styled(text.clone(), style))
            }
            None => hints(app, theme),
        },
    };
    frame.render_widget(Paragraph::new(line), area);
}

fn hints(app: &App, theme: Theme) -> Line<'static> {
    let mut actions = vec![Action::Help, Action::Filter, Action::NextPane];
    if !app.readonly {
        actions.extend([
            Action::Backfill,
            Action::Reconcile,
            Action::Sweep,
            Action::Retry,
            Action::Pause,
            Action::Token,
            Action::Onboard,
            Action::Offboard,
        ]);
    }
    actions.push(Action::Quit);
    let mut spans = Vec::new();
    for action in actions {
        if let Some(key) = app.keys.keys_of(action).first() {
            spans.push(Span::styled(key.clone(), theme.key()));
            spans.push(Span::raw(format!(" {}  ", action.name())));
        }
    }
    Line::from(spans)
}
