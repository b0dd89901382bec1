//! The selected customer's runs: those in progress first with their
//! progress, then the finished ones, newest first, with their counts and
//! outcome (a deletion sweep waiting for confirmation says how to give it).

use chrono::{DateTime, Utc};
use ratatui::Frame;
use ratatui::layout::Rect;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Paragraph, Wrap};

use super::common::ago;
use crate::domain::RunKind;
use crate::engine::{CustomerSnapshot, RunView};
use crate::tui::state::{App, Health};
use crate::tui::theme::Theme;

pub(super) fn render(frame: &mut Frame, area: Rect, app: &App, c: &CustomerSnapshot, theme: Theme) {
    frame.render_widget(Paragraph::new(run_lines(c, app.now, theme)).wrap(Wrap { trim: true }), area);
}

fn run_lines(c: &CustomerSnapshot, now: DateTime<Utc>, theme: Theme) -> Vec<Line<'static>> {
    let mut lines = Vec::new();
    for (label, run) in [("now", &c.current), ("beside", &c.background)] {
        if let Some(run) = run {
            let of = if run.total > 0 { format!(" of {}", run.total) } else { String::new() };
            lines.push(Line::from(vec![
                Span::styled(format!("{label:<7}"), theme.header()),
                Span::raw(format!(
                    "{} running {} · {} pages · {} users{of}",
                    run.kind,
                    ago(now, run.started_at),
                    run.pages,
                    run.users
                )),
            ]));
        }
    }
    // A running run is shown above with its progress.
    let mut runs: Vec<_> = c.last_runs.iter().filter(|r| r.outcome.as_str() != "running").collect();
    runs.sort_by_key(|r| std::cmp::Reverse(r.started_at));
    lines.extend(runs.into_iter().map(|run| past_run_line(run, now, theme)));
    if lines.is_empty() {
        lines.push(Line::from(Span::styled("no runs yet", theme.dim())));
    }
    lines
}

fn past_run_line(run: &RunView, now: DateTime<Utc>, theme: Theme) -> Line<'static> {
    let outcome_style = match run.outcome.as_str() {
        "ok" | "confirmed" | "dismissed" => theme.health(Health::Good),
        "running" | "needs_confirmation" => theme.health(Health::Warn),
        _ => theme.health(Health::Bad),
    };
    let mut spans = vec![
        Span::styled(format!("{:<10}", run.kind.as_str()), theme.header()),
        Span::styled(run.outcome.as_str().replace('_', " "), outcome_style),
        Span::raw(format!(
            " {} ago · {} · {} req",
            ago(now, run.started_at),
            counts_text(run),
            run.requests_used
        )),
    ];
    if run.outcome.as_str() == "needs_confirmation" {
        spans.push(Span::styled(format!(" · run {}: c to confirm", run.id), theme.health(Health::Warn)));
    }
    Line::from(spans)
}

/// The counts that matter for the run's kind.
fn counts_text(run: &RunView) -> String {
    let c = &run.counts;
    match run.kind {
        RunKind::Reconcile => format!(
            "{} missed, {} drift, {} lost downstream",
            c.missed_create + c.missed_update,
            c.drift,
            c.lost_downstream
        ),
        RunKind::Deletions => format!("{} deleted, {} candidates", c.deleted, c.deletion_candidates),
        _ => format!("+{} ~{} -{} dlq {}", c.created, c.updated, c.deleted, c.dlq_parked),
    }
}
