//! The selected customer's detail: its state, token and owner, the lag and
//! throughput sparklines of the last hour, the request-budget gauge, then
//! its runs (`runs`) and its DLQ entries (`dlq`). A short pane drops the
//! sparklines and keeps one DLQ row.

use chrono::{DateTime, Utc};
use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::text::{Line, Span};
use ratatui::widgets::{LineGauge, Paragraph, Sparkline, Wrap};

use super::common::{self, ago, block};
use super::{dlq, runs};
use crate::domain::duration_text;
use crate::engine::CustomerSnapshot;
use crate::engine::verdict::{Level, State, Verdict};
use crate::tui::state::{App, Health, health, token_health};
use crate::tui::theme::Theme;

pub(super) fn render(frame: &mut Frame, area: Rect, app: &App, theme: Theme) {
    let Some(c) = app.current() else {
        frame.render_widget(block("Detail", false, theme), area);
        return;
    };
    let outer = block(&c.name, false, theme);
    let inner = outer.inner(area);
    frame.render_widget(outer, area);
    // A short pane drops the sparklines and keeps one DLQ row.
    let roomy = inner.height >= 16;
    let dlq_rows = if roomy { app.dlq_entries().len().clamp(1, 6) } else { 1 };
    // Destinations worth a word take the rows their wrapped text needs, in
    // a roomy pane only: a short one keeps its facts and runs.
    let destinations = if roomy { destination_lines(c, app.now, theme) } else { Vec::new() };
    let dest_rows = fact_rows(&destinations, inner.width);
    let Some(verdict) = app.current_verdict() else { return };
    // The facts wrap, never cut: a short pane gives the rest up first.
    let info_text = info_lines(c, verdict, app, theme);
    let info_rows = if roomy { fact_rows(&info_text, inner.width).max(3) } else { 3 };
    // The facts come first: a pane too short for them and the DLQ box
    // drops the box (its count is in the customers table).
    let dlq_height = u16::try_from(dlq_rows).unwrap_or(6) + 2;
    let dlq_height = if inner.height >= info_rows + 1 + dlq_height { dlq_height } else { 0 };
    let mut rows = vec![
        Constraint::Length(info_rows),
        Constraint::Length(if roomy { 2 } else { 0 }),
        // A very short pane gives the budget gauge up before the facts.
        Constraint::Length(u16::from(inner.height >= 8)),
        // Runs take what is left, after the facts.
        Constraint::Min(0),
        Constraint::Length(dlq_height),
    ];
    if dest_rows > 0 {
        rows.insert(3, Constraint::Length(dest_rows));
    }
    let areas = Layout::vertical(rows).split(inner);
    let (info, sparks, gauge) = (areas[0], areas[1], areas[2]);
    let (runs_area, dlq_area) = (areas[areas.len() - 2], areas[areas.len() - 1]);
    frame.render_widget(Paragraph::new(info_text).wrap(Wrap { trim: true }), info);
    if roomy {
        sparklines(frame, sparks, app, &c.name, theme);
    }
    frame.render_widget(budget_gauge(c, theme), gauge);
    if dest_rows > 0 {
        frame.render_widget(Paragraph::new(destinations).wrap(Wrap { trim: true }), areas[3]);
    }
    runs::render(frame, runs_area, app, c, theme);
    dlq::render(frame, dlq_area, app, c, theme);
}

fn info_lines(c: &CustomerSnapshot, verdict: &Verdict, app: &App, theme: Theme) -> Vec<Line<'static>> {
    let now = app.now;
    let mut status = vec![
        Span::styled(verdict.state_text(), theme.health(health(verdict))),
        Span::raw(format!(" · {} · {} users synced", verdict.freshness_text(), c.users_synced)),
    ];
    // A next poll only means something while a live worker will make it.
    let polling = matches!(verdict.state, State::Active | State::Failing | State::Backfilling);
    if let Some(at) = c.next_poll_at.filter(|at| polling && c.current.is_none() && *at > now) {
        status.push(Span::raw(format!(" · next poll in {}", duration_text((at - now).num_seconds()))));
    }
    let (token_text, token_h) = token_health(c);
    let token = match &c.token {
        Some(t) => format!(
            "token …{} {token_text}{}",
            t.fingerprint.trim_start_matches('…'),
            t.validated_at.map(|at| format!(", checked {} ago", ago(now, at))).unwrap_or_default()
        ),
        None => "no token".to_owned(),
    };
    // Which process runs it matters once several instances share the DB.
    let runner = match (&c.owner, c.owned_here) {
        (_, true) => " · running here".to_owned(),
        (Some(owner), false) if *owner == app.snapshot.owner => " · held here, not running".to_owned(),
        // Its figures are as old as its last heartbeat.
        (Some(owner), false) => match c.owner_seen_at {
            Some(at) => format!(" · run by {owner} · figures {} old", ago(now, at)),
            None => format!(" · run by {owner}"),
        },
        (None, false) => " · not running".to_owned(),
    };
    // The worst matter, whole (it wraps): what happened and what to do.
    let problem = verdict.attention.first().filter(|a| a.level >= Level::Warn).map_or_else(
        || Span::styled(c.vomo_url.clone(), theme.dim()),
        |a| Span::styled(a.text.clone(), theme.health(health(verdict))),
    );
    let token_line =
        Line::from(vec![Span::styled(token, theme.health(token_h)), Span::styled(runner, theme.dim())]);
    let mut lines = vec![Line::from(status), token_line, Line::from(problem)];
    lines.extend(tail_line(c, now, theme));
    lines
}

/// The live tail, when it is on: how often, when it last read, what it
/// delivered, and its share of the customer's requests.
fn tail_line(c: &CustomerSnapshot, now: DateTime<Utc>, theme: Theme) -> Option<Line<'static>> {
    let tail = c.tail.as_ref()?;
    if let Some(why) = &tail.failing {
        let text = format!("live tail failing: {why} · the verified polls go on");
        return Some(Line::from(Span::styled(text, theme.health(Health::Warn))));
    }
    let last =
        tail.last_read_at.map_or_else(|| "no read yet".to_owned(), |at| format!("read {} ago", ago(now, at)));
    let share = match c.budget.requests {
        0 => String::new(),
        all => format!(" · {:.0} % of requests", c.budget.by_class.tail as f64 * 100.0 / all as f64),
    };
    let text = format!(
        "live tail every {} · {last} · {} changes delivered{share}",
        duration_text(i64::try_from(tail.every_secs).unwrap_or(i64::MAX)),
        tail.changes
    );
    Some(Line::from(Span::styled(text, theme.dim())))
}

fn sparklines(frame: &mut Frame, area: Rect, app: &App, name: &str, theme: Theme) {
    let [lag_area, rate_area] =
        Layout::horizontal([Constraint::Percentage(50), Constraint::Percentage(50)]).areas(area);
    let history = app.history.get(name);
    for (area, label, data) in [
        (lag_area, "lag (1 h)", history.map(|h| h.lag.iter().copied().collect::<Vec<u64>>())),
        (rate_area, "users/min (1 h)", history.map(|h| h.throughput.iter().copied().collect::<Vec<u64>>())),
    ] {
        let [label_area, spark_area] =
            Layout::vertical([Constraint::Length(1), Constraint::Length(1)]).areas(area);
        frame.render_widget(Paragraph::new(Span::styled(label, theme.dim())), label_area);
        let data = data.unwrap_or_default();
        let start = data.len().saturating_sub(usize::from(spark_area.width));
        frame.render_widget(Sparkline::default().data(&data[start..]).style(theme.gauge()), spark_area);
    }
}

/// Rows the facts take wrapped at `width`, never too few: a line that wraps
/// gets a row of slack, since word wrapping can leave a row part empty.
fn fact_rows(lines: &[Line<'_>], width: u16) -> u16 {
    let width = usize::from(width);
    let slack = lines.iter().filter(|l| l.width() > width).count();
    u16::try_from(common::wrapped_rows(lines, width) + slack).unwrap_or(u16::MAX)
}

/// One line per destination worth a word: a halted one (why, what to do,
/// the next try) and one with a request budget of its own (HubSpot's, shown
/// beside VOMO's gauge). Destinations that just work take no room.
fn destination_lines(c: &CustomerSnapshot, now: DateTime<Utc>, theme: Theme) -> Vec<Line<'static>> {
    let mut lines = Vec::new();
    for d in &c.destinations {
        if let Some(halt) = &d.halt {
            let text = format!(
                "{} halted {} ago ({}): {} · next try in {}",
                d.name,
                ago(now, halt.since),
                halt.reason.replace('_', " "),
                halt.hint,
                duration_text((halt.retry_at - now).num_seconds().max(0))
            );
            lines.push(Line::from(Span::styled(text, theme.health(Health::Bad))));
        } else if let Some(b) = &d.budget {
            let limited: u64 = b.rate_limited.values().sum();
            let daily = match (b.daily_remaining, b.daily_limit) {
                (Some(left), Some(limit)) => format!(" · {left} of {limit} left today"),
                _ => String::new(),
            };
            let text = format!(
                "{} budget {:.0} of {:.0} req/10 s · {} requests · {limited} × 429{daily}{}",
                d.name,
                b.effective_per_10s,
                b.configured_per_10s,
                b.requests,
                if b.paused { " · paused by 429" } else { "" }
            );
            lines.push(Line::from(Span::styled(text, theme.dim())));
        }
    }
    lines
}

/// The rate in force, what VOMO declares and the rate used, side by side
/// on one line, so no terminal is too small to show them; the bar is the
/// used share of what is allowed.
fn budget_gauge(c: &CustomerSnapshot, theme: Theme) -> LineGauge<'static> {
    let b = &c.budget;
    let ratio = if b.effective > 0.0 { (b.used_per_s / b.effective).clamp(0.0, 1.0) } else { 0.0 };
    let allowed = if b.effective > 0.0 { format!("{:.1}/s", b.effective) } else { "unlimited".to_owned() };
    let label = format!(
        "budget {allowed} {} · {} · used {:.1}/s · {} req · {} × 429{}",
        b.setting(),
        b.declared_text(),
        b.used_per_s,
        b.requests,
        b.rate_limited,
        if b.paused { " · paused by 429" } else { "" }
    );
    // The caption beside a line, not printed over a bar.
    LineGauge::default().ratio(ratio).label(label).filled_style(theme.gauge())
}
