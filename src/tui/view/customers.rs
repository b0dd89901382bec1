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

/// The columns after the name, with their widths: State, Lag, Users/min,
/// Budget, Token, DLQ.
const FIXED: [u16; 6] = [14, 6, 9, 9, 9, 5];
/// Which of them a narrow pane gives up first (Users/min, Budget, Token)
/// before the name would get fewer than [`NAME_MIN`] columns.
const DROP_ORDER: [usize; 3] = [3, 4, 5];
const NAME_MIN: usize = 16;

/// The columns shown (0 is the name) and the name's width.
fn columns(width: u16) -> (Vec<usize>, usize) {
    let mut kept: Vec<usize> = (0..=FIXED.len()).collect();
    let name_width = |kept: &[usize]| {
        let fixed: usize = kept.iter().skip(1).map(|&c| usize::from(FIXED[c - 1]) + 1).sum();
        usize::from(width).saturating_sub(fixed)
    };
    for drop in DROP_ORDER {
        if name_width(&kept) >= NAME_MIN {
            break;
        }
        kept.retain(|&c| c != drop);
    }
    let name = name_width(&kept).max(10);
    (kept, name)
}

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
    // The name column takes what the fixed columns leave (and the spacing);
    // a narrow pane drops the least needed columns first.
    let (kept, name_width) = columns(inner.width);
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
            let cells = customer_cells(c, verdict, name_width, theme);
            Row::new(kept.iter().map(|&i| cells[i].clone()).collect::<Vec<_>>()).style(style)
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
    let header = Row::new(kept.iter().map(|&i| titles[i].clone()).collect::<Vec<_>>()).style(theme.header());
    let widths: Vec<Constraint> = kept
        .iter()
        .map(|&i| if i == 0 { Constraint::Min(10) } else { Constraint::Length(FIXED[i - 1]) })
        .collect();
    frame.render_widget(Table::new(rows, widths).header(header).column_spacing(1), inner);
}

fn customer_cells(
    c: &CustomerSnapshot,
    verdict: &Verdict,
    name_width: usize,
    theme: Theme,
) -> [Cell<'static>; 7] {
    let h = health(verdict);
    let (token, token_h) = token_health(c);
    let state = verdict.state.as_str().to_owned();
    let budget = match (c.budget.effective, c.budget.setting()) {
        (e, _) if e <= 0.0 => "∞".to_owned(),
        (e, crate::domain::RateSetting::Auto) => format!("{e:.1} auto"),
        (e, crate::domain::RateSetting::Cap(cap)) => format!("{e:.1}/{cap:.1}"),
    };
    let dlq = if c.dlq.pending > 0 { c.dlq.pending.to_string() } else { "·".to_owned() };
    let dlq_style = if c.dlq.permanent > 0 {
        theme.health(Health::Bad)
    } else if c.dlq.pending > 0 {
        theme.health(Health::Warn)
    } else {
        theme.dim()
    };
    [
        Cell::from(Span::styled(fit(&c.name, name_width), theme.health(h))),
        Cell::from(Span::styled(fit(&state, 14), theme.health(h))),
        Cell::from(verdict.freshness_short()),
        Cell::from(format!("{:.0}", c.throughput_per_min)),
        Cell::from(budget),
        Cell::from(Span::styled(token, theme.health(token_h))),
        Cell::from(Span::styled(dlq, dlq_style)),
    ]
}
