//! The title line: how many customers, how many need attention, the sort
//! order, the filter, and whether the console is read-only.

use ratatui::Frame;
use ratatui::layout::Rect;
use ratatui::text::{Line, Span};
use ratatui::widgets::Paragraph;

use crate::tui::state::{App, Health};
use crate::tui::theme::Theme;

pub(super) fn render(frame: &mut Frame, area: Rect, app: &App, theme: Theme) {
    let customers = &app.snapshot.customers;
    let bad = app.verdicts.iter().filter(|v| v.needs_attention()).count();
    let mut spans = vec![
        Span::styled(" vomo-sync ", theme.title()),
        Span::raw(format!("· {} customers · ", customers.len())),
        Span::styled(
            format!("{bad} need attention"),
            if bad > 0 { theme.health(Health::Bad) } else { theme.dim() },
        ),
        Span::raw(format!(" · sorted by {}", app.sort.label())),
    ];
    if !app.filter.is_empty() {
        spans.push(Span::raw(format!(" · filter \"{}\"", app.filter)));
    }
    if app.readonly {
        spans.push(Span::styled(" · READ-ONLY", theme.health(Health::Warn)));
    }
    spans.push(Span::styled(" · ? help", theme.dim()));
    frame.render_widget(Paragraph::new(Line::from(spans)), area);
}
