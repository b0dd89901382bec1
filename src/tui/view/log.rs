//! The log pane: engine events and action outcomes, of every customer or
//! only the selected one. Long messages wrap; the newest stay in view at
//! the bottom.

use ratatui::Frame;
use ratatui::layout::Rect;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Paragraph, Wrap};

use super::common::{block, wrapped_rows};
use crate::engine::{EngineEvent, EventLevel};
use crate::tui::state::{App, Health, Pane};
use crate::tui::theme::Theme;

pub(super) fn render(frame: &mut Frame, area: Rect, app: &App, theme: Theme) {
    let mut title = if app.log_selected_only {
        format!("Log · {}", app.current_name().unwrap_or_default())
    } else {
        "Log · all customers".to_owned()
    };
    if !app.log_search.is_empty() {
        title.push_str(&format!(" · search \"{}\"", app.log_search));
    }
    if app.log_scroll > 0 {
        title.push_str(&format!(" · {} newer below (G follows)", app.log_scroll));
    }
    let outer = block(&title, app.focus == Pane::Log, theme);
    let inner = outer.inner(area);
    frame.render_widget(outer, area);
    let events: Vec<_> = app.visible_log().collect();
    // Scrolled back: the newest `log_scroll` events are below the pane.
    let end = events.len().saturating_sub(app.log_scroll);
    let start = end.saturating_sub(usize::from(inner.height));
    let lines: Vec<Line> = events[start..end].iter().map(|e| event_line(e, theme)).collect();
    // Long messages wrap; the newest stay in view at the bottom.
    let width = usize::from(inner.width).max(1);
    let rows = wrapped_rows(&lines, width);
    let scroll = u16::try_from(rows.saturating_sub(usize::from(inner.height))).unwrap_or(u16::MAX);
    frame.render_widget(Paragraph::new(lines).wrap(Wrap { trim: false }).scroll((scroll, 0)), inner);
}

fn event_line(e: &EngineEvent, theme: Theme) -> Line<'static> {
    let level = match e.level {
        EventLevel::Info => theme.dim(),
        EventLevel::Warn => theme.health(Health::Warn),
        EventLevel::Error => theme.health(Health::Bad),
    };
    Line::from(vec![
        Span::styled(e.at.format("%H:%M:%S ").to_string(), theme.dim()),
        Span::styled(format!("{:<5} ", format!("{:?}", e.level).to_lowercase()), level),
        Span::styled(e.customer.clone().map(|c| format!("{c}: ")).unwrap_or_default(), theme.header()),
        Span::raw(e.message.clone()),
    ])
}
