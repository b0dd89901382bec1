//! The help pop-up: every action with its keys (those a read-only console
//! refuses are left out).

use ratatui::Frame;
use ratatui::layout::Rect;
use ratatui::text::{Line, Span};

use super::common::popup;
use crate::tui::keys::Action;
use crate::tui::state::App;
use crate::tui::theme::Theme;

/// The list scrolls (j/k, PgUp/PgDn, g/G) when the terminal is shorter
/// than it; the title says where it is and that there is more.
pub(super) fn render(frame: &mut Frame, area: Rect, app: &App, offset: u16, theme: Theme) {
    let lines = help_lines(app, theme);
    let room = usize::from(area.height.saturating_sub(4)).max(1);
    let last = lines.len().saturating_sub(room);
    let from = usize::from(offset).min(last);
    let title = if last == 0 {
        "Keys".to_owned()
    } else if from < last {
        format!("Keys {}–{} of {} · j/k scroll", from + 1, from + room, lines.len())
    } else {
        format!("Keys {}–{} of {} · end", from + 1, lines.len(), lines.len())
    };
    popup(frame, area, &title, lines.into_iter().skip(from).take(room).collect(), theme);
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
    // Short lines: the list scrolls by lines, so none may wrap.
    for note in [
        "Ctrl-C quits · Ctrl-L redraws",
        "Log pane: j/k scroll, G follows the tail, / searches",
        "Units: lag in s/m/h, a backfill in %, budget in requests/s",
        "(effective/configured; ∞ = no limit) · \u{b7} = none",
        "j/k scroll this help; any other key closes it",
    ] {
        lines.push(Line::from(Span::styled(note, theme.dim())));
    }
    lines
}
