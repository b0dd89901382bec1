//! The help pop-up: every action with its keys (those a read-only console
//! refuses are left out).

use ratatui::Frame;
use ratatui::layout::Rect;
use ratatui::text::{Line, Span};

use super::common::popup;
use crate::tui::keys::Action;
use crate::tui::state::App;
use crate::tui::theme::Theme;

pub(super) fn render(frame: &mut Frame, area: Rect, app: &App, theme: Theme) {
    popup(frame, area, "Keys", help_lines(app, theme), theme);
}

fn help_lines(app: &App, theme: Theme) -> Vec<Line<'static>> {
    let mut lines: Vec<Line> = Action::ALL
        .iter()
        .filter(|a| !(app.readonly && a.mutates()))
        .map(|a| {
            let keys = app.keys.keys_of(*a).join(" ");
            Line::from(vec![Span::styled(format!("{keys:>8}  "), theme.key()), Span::raw(a.help())])
        })
        .collect();
    lines.push(Line::from(Span::styled("Ctrl-L redraws. Any key closes this help.", theme.dim())));
    lines
}
