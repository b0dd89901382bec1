//! The selected customer's DLQ pane: its pending and permanent counts and
//! one row per loaded entry, scrolled so the selected entry stays in view.

use chrono::{DateTime, Utc};
use ratatui::Frame;
use ratatui::layout::{Constraint, Rect};
use ratatui::style::Style;
use ratatui::text::Span;
use ratatui::widgets::{Cell, Paragraph, Row, Table};

use super::common::{ago, block, visible_offset};
use crate::engine::CustomerSnapshot;
use crate::engine::DlqItem;
use crate::tui::state::{App, Health, Pane};
use crate::tui::theme::Theme;

const WIDTHS: [Constraint; 6] = [
    Constraint::Length(5),
    Constraint::Length(10),
    Constraint::Length(9),
    Constraint::Length(4),
    Constraint::Length(4),
    Constraint::Min(10),
];

pub(super) fn render(frame: &mut Frame, area: Rect, app: &App, c: &CustomerSnapshot, theme: Theme) {
    let focused = app.focus == Pane::Dlq;
    let title = format!("DLQ {} pending, {} permanent", c.dlq.pending, c.dlq.permanent);
    let outer = block(&title, focused, theme);
    let inner = outer.inner(area);
    frame.render_widget(outer, area);
    let entries = app.dlq_entries();
    if entries.is_empty() {
        // The counts come with the snapshot, the entries a moment later.
        let text = if c.dlq.pending > 0 { "loading the entries…" } else { "empty" };
        frame.render_widget(Paragraph::new(Span::styled(text, theme.dim())), inner);
        return;
    }
    let visible = usize::from(inner.height).max(1);
    let offset = visible_offset(0, app.dlq_selected, visible, entries.len());
    let rows: Vec<Row> = entries
        .iter()
        .enumerate()
        .skip(offset)
        .take(visible)
        .map(|(i, e)| {
            let style = if focused && i == app.dlq_selected { theme.selected() } else { Style::new() };
            entry_row(e, app.now, theme).style(style)
        })
        .collect();
    frame.render_widget(Table::new(rows, WIDTHS).column_spacing(1), inner);
}

fn entry_row(e: &DlqItem, now: DateTime<Utc>, theme: Theme) -> Row<'static> {
    let class_style =
        if e.class == "permanent" { theme.health(Health::Bad) } else { theme.health(Health::Warn) };
    Row::new(vec![
        Cell::from(format!("#{}", e.id)),
        Cell::from(format!("user {}", e.vomo_user_id)),
        Cell::from(Span::styled(e.class.clone(), class_style)),
        Cell::from(format!("×{}", e.attempts)),
        Cell::from(ago(now, e.created_at)),
        Cell::from(e.message.clone()),
    ])
}
