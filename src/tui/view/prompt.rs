//! The prompt pop-ups: the typed-name confirmation of a destructive action,
//! the masked token, the note a DLQ discard needs, and the onboarding form
//! (its token masked too). The filter and the command line are typed in
//! the status bar instead (`footer`).

use ratatui::Frame;
use ratatui::layout::Rect;
use ratatui::text::{Line, Span};
use tui_input::Input;

use super::common::{masked, popup};
use crate::tui::state::{CostlyAction, FORM_FIELDS, Guarded, Health, OnboardForm};
use crate::tui::theme::Theme;

fn prompt_line(value: String, theme: Theme) -> Line<'static> {
    Line::from(vec![Span::styled("> ", theme.key()), Span::raw(value)])
}

pub(super) fn confirm(
    frame: &mut Frame,
    area: Rect,
    customer: &str,
    what: &Guarded,
    typed: &Input,
    theme: Theme,
) {
    let question = match what {
        Guarded::Offboard => format!(
            "Offboard {customer}? Its work stops and its token is deleted at once; its state is kept for the retention period."
        ),
        Guarded::ConfirmDeletions { run, users } => format!(
            "Carry out run {run} of {customer}: {users} users missing from VOMO's listing are asked about again and deleted downstream if VOMO confirms."
        ),
        Guarded::Costly { action, cost } => {
            let what = match action {
                CostlyAction::Rewalk => "Re-walk every user of",
                CostlyAction::FullScan => "Scan every user of (deletions and drift)",
            };
            let time = cost.secs.map_or_else(
                || "no budget limit".to_owned(),
                |secs| {
                    format!(
                        "about {} at its budget",
                        crate::domain::duration_text(i64::try_from(secs).unwrap_or(i64::MAX))
                    )
                },
            );
            format!(
                "{what} {customer}? That is about {} requests to VOMO, {time}; polls go on beside it and unchanged users are not sent again.",
                cost.requests
            )
        }
    };
    let lines = vec![
        Line::from(question),
        Line::from(""),
        Line::from(format!("Type the customer's name ({customer}) and press Enter; Esc cancels.")),
        prompt_line(typed.value().to_owned(), theme),
    ];
    popup(frame, area, "Confirm", lines, theme);
}

pub(super) fn token(frame: &mut Frame, area: Rect, customer: &str, input: &Input, theme: Theme) {
    let lines = vec![
        Line::from(format!(
            "New VOMO token for {customer} (validated before it is stored). Enter saves, Esc cancels."
        )),
        prompt_line(masked(input.value().chars().count()), theme),
    ];
    popup(frame, area, "Replace token", lines, theme);
}

pub(super) fn discard_note(frame: &mut Frame, area: Rect, id: i64, input: &Input, theme: Theme) {
    let lines = vec![
        Line::from(format!("Discard DLQ entry #{id}: why? (kept with the entry and in the audit log)")),
        prompt_line(input.value().to_owned(), theme),
    ];
    popup(frame, area, "Discard", lines, theme);
}

pub(super) fn onboard(frame: &mut Frame, area: Rect, form: &OnboardForm, theme: Theme) {
    popup(frame, area, "Onboard a customer", form_lines(form, theme), theme);
}

fn form_lines(form: &OnboardForm, theme: Theme) -> Vec<Line<'static>> {
    let mut lines = vec![
        Line::from(
            "Tab moves between fields, Enter onboards (the token is validated with VOMO), Esc cancels.",
        ),
        Line::from(""),
    ];
    for (i, (label, input)) in FORM_FIELDS.iter().zip(&form.fields).enumerate() {
        let value = if i == 1 { masked(input.value().chars().count()) } else { input.value().to_owned() };
        let marker = if i == form.focus { theme.key() } else { theme.dim() };
        lines.push(Line::from(vec![Span::styled(format!("{label:>13}: "), marker), Span::raw(value)]));
    }
    lines.push(Line::from(Span::styled(
        "Destinations: jsonl:/path, postgres://…, webhook:URL,secret-env=VAR (space-separated)",
        theme.dim(),
    )));
    if form.busy {
        lines.push(Line::from(Span::styled(
            "checking the token and the destinations…",
            theme.health(Health::Warn),
        )));
    }
    if let Some(error) = &form.error {
        lines.push(Line::from(Span::styled(error.clone(), theme.health(Health::Bad))));
    }
    lines
}
