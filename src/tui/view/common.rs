//! Drawing helpers more than one panel uses: the bordered pane, the
//! centred pop-up, scrolling that keeps the selection in view, and the
//! short texts for durations, lag and masked secrets.

use chrono::{DateTime, Utc};
use ratatui::Frame;
use ratatui::layout::Rect;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, Clear, Paragraph, Wrap};

use crate::domain::duration_text;
use crate::tui::theme::Theme;

/// A bordered pane with a title; `focused` highlights the border.
pub(super) fn block(title: &str, focused: bool, theme: Theme) -> Block<'static> {
    Block::default()
        .borders(Borders::ALL)
        .border_style(theme.border(focused))
        .title(Span::styled(format!(" {title} "), theme.header()))
}

/// The first visible row so that `selected` is on screen, moving as little
/// as possible from `offset`.
pub(super) fn visible_offset(offset: usize, selected: usize, visible: usize, len: usize) -> usize {
    let offset = if selected < offset {
        selected
    } else if selected >= offset + visible {
        selected + 1 - visible
    } else {
        offset
    };
    offset.min(len.saturating_sub(visible))
}

fn centered(area: Rect, width: u16, height: u16) -> Rect {
    let width = width.min(area.width.saturating_sub(2));
    let height = height.min(area.height.saturating_sub(2));
    Rect { x: area.x + (area.width - width) / 2, y: area.y + (area.height - height) / 2, width, height }
}

/// A pop-up in the middle of `area`, as tall as its wrapped `lines`.
pub(super) fn popup(frame: &mut Frame, area: Rect, title: &str, lines: Vec<Line<'static>>, theme: Theme) {
    const WIDTH: u16 = 76;
    // Rows after wrapping, so nothing falls off the bottom.
    let inner = usize::from(WIDTH.min(area.width.saturating_sub(2)).saturating_sub(2)).max(1);
    let rows = wrapped_rows(&lines, inner);
    let height = u16::try_from(rows).unwrap_or(u16::MAX).saturating_add(2);
    let rect = centered(area, WIDTH, height);
    frame.render_widget(Clear, rect);
    let widget = Paragraph::new(lines).block(block(title, true, theme)).wrap(Wrap { trim: false });
    frame.render_widget(widget, rect);
}

/// Rows `lines` take when each is wrapped at `width` characters, counted
/// by characters (word wrapping can need a row more for a long line).
pub(super) fn wrapped_rows(lines: &[Line<'_>], width: usize) -> usize {
    let width = width.max(1);
    lines.iter().map(|l| l.width().div_ceil(width).max(1)).sum()
}

pub(super) fn masked(len: usize) -> String {
    "•".repeat(len)
}

pub(super) fn ago(now: DateTime<Utc>, then: DateTime<Utc>) -> String {
    duration_text((now - then).num_seconds())
}
