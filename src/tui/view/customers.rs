//! The customers table: one row per customer in the filtered, sorted
//! order, coloured by health. Only the visible rows are built, so a
//! thousand customers cost what a screenful does.

use ratatui::Frame;
use ratatui::layout::{Constraint, Rect};
use ratatui::style::Style;
use ratatui::text::Span;
use ratatui::widgets::{Cell, Paragraph, Row, Table};

use super::common::{block, visible_offset};
use crate::engine::CustomerSnapshot;
use crate::engine::verdict::Verdict;
use crate::tui::state::{App, Health, Pane, SortKey, health, token_health};
use crate::tui::theme::Theme;

const WIDTHS: [Constraint; 7] = [
    Constraint::Min(10),
    Constraint::Length(14),
    Constraint::Length(6),
    Constraint::Length(9),
    Constraint::Length(9),
    Constraint::Length(9),
    Constraint::Length(5),
];

/// The fixed columns' widths plus the six spaces between the seven columns.
const FIXED_WIDTH: usize = 14 + 6 + 9 + 9 + 9 + 5 + 6;

/// `text` in `width` columns, its end replaced by `…` when it is longer.
fn fit(text: &str, width: usize) -> String {
    if text.chars().count() <= width {
        text.to_owned()
    } else {
        let mut cut: String = text.chars().take(width.saturating_sub(1)).collect();
        cut.push('…');
        cut
    }
}

pub(super) fn render(frame: &mut Frame, area: Rect, app: &App, theme: Theme) {
    let focused = app.focus == Pane::Customers;
    let title = format!("Customers {}/{}", app.order.len(), app.snapshot.customers.len());
    let outer = block(&title, focused, theme);
    let inner = outer.inner(area);
    frame.render_widget(outer, area);
    let visible = usize::from(inner.height.saturating_sub(1)).max(1);
    // The name column takes what the fixed columns leave (and the spacing).
    let name_width = usize::from(inner.width).saturating_sub(FIXED_WIDTH).max(10);
    let offset = visible_offset(app.offset.get(), app.selected, visible, app.order.len());
    app.offset.set(offset);
    let rows: Vec<Row> = app
        .order
        .iter()
        .enumerate()
        .skip(offset)
        .take(visible)
        .filter_map(|(pos, &i)| Some((pos, app.snapshot.customers.get(i)?, app.verdict(i)?)))
        .map(|(pos, c, verdict)| {
            let style = if pos == app.selected { theme.selected() } else { Style::new() };
            customer_row(c, verdict, name_width, theme).style(style)
        })
        .collect();
    if rows.is_empty() {
        let hint = if app.snapshot.customers.is_empty() {
            if app.readonly {
                "No customers yet (read-only console: onboard with `vomo-sync customer add`)."
            } else {
                "No customers yet. Press n to onboard one."
            }
        } else {
            "No customer matches the filter (/ to change it)."
        };
        frame.render_widget(Paragraph::new(hint).style(theme.dim()), inner);
        return;
    }
    // The sorted column carries the direction (health, then lag, for Lag).
    let mut titles = ["Customer", "State", "Lag", "Users/min", "Budget", "Token", "DLQ"].map(str::to_owned);
    let (column, arrow) = match app.sort {
        SortKey::Lag => (2, "▼"),
        SortKey::Name => (0, "▲"),
        SortKey::Dlq => (6, "▼"),
        SortKey::Throughput => (3, "▼"),
    };
    titles[column].push_str(arrow);
    let header = Row::new(titles).style(theme.header());
    frame.render_widget(Table::new(rows, WIDTHS).header(header).column_spacing(1), inner);
}

fn customer_row(c: &CustomerSnapshot, verdict: &Verdict, name_width: usize, theme: Theme) -> Row<'static> {
    let h = health(verdict);
    let (token, token_h) = token_health(c);
    let state = verdict.state.as_str().to_owned();
    let budget = if c.budget.effective <= 0.0 {
        "∞".to_owned()
    } else {
        format!("{:.1}/{:.1}", c.budget.effective, c.budget.configured)
    };
    let dlq = if c.dlq.pending > 0 { c.dlq.pending.to_string() } else { "·".to_owned() };
    let dlq_style = if c.dlq.permanent > 0 {
        theme.health(Health::Bad)
    } else if c.dlq.pending > 0 {
        theme.health(Health::Warn)
    } else {
        theme.dim()
    };
    Row::new(vec![
        Cell::from(Span::styled(fit(&c.name, name_width), theme.health(h))),
        Cell::from(Span::styled(fit(&state, 14), theme.health(h))),
        Cell::from(verdict.freshness_short()),
        Cell::from(format!("{:.0}", c.throughput_per_min)),
        Cell::from(budget),
        Cell::from(Span::styled(token, theme.health(token_h))),
        Cell::from(Span::styled(dlq, dlq_style)),
    ])
}
