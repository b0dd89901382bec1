//! The pop-up showing one DLQ entry: where it was going, why it failed,
//! and its payload as pretty JSON, cut to what fits.

use ratatui::Frame;
use ratatui::layout::Rect;
use ratatui::text::{Line, Span};

use super::common::popup;
use crate::engine::DlqItem;
use crate::tui::state::{App, Health};
use crate::tui::theme::Theme;

/// Shows entry `index` of the selected customer's DLQ, if it is loaded.
pub(super) fn render(frame: &mut Frame, area: Rect, app: &App, index: usize, theme: Theme) {
    if let Some(entry) = app.dlq_entries().get(index) {
        popup(frame, area, "DLQ entry (Esc closes)", payload_lines(entry, area, theme), theme);
    }
}

fn payload_lines(entry: &DlqItem, area: Rect, theme: Theme) -> Vec<Line<'static>> {
    let payload = serde_json::to_string_pretty(&entry.payload).unwrap_or_default();
    let mut lines = vec![
        Line::from(format!(
            "#{} user {} → {} ({}), {}, {} attempt{}",
            entry.id,
            entry.vomo_user_id,
            entry.destination,
            entry.change,
            entry.class,
            entry.attempts,
            if entry.attempts == 1 { "" } else { "s" }
        )),
        Line::from(Span::styled(entry.message.clone(), theme.health(Health::Bad))),
        Line::from(""),
    ];
    let room = usize::from(area.height.saturating_sub(8));
    lines.extend(payload.lines().take(room).map(|l| Line::from(l.to_owned())));
    lines
}
