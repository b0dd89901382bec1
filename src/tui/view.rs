//! Drawing the console from its state: the customers pane (only the visible
//! rows are built, so a thousand customers cost what a screenful does), the
//! selected customer's detail with sparklines, budget gauge, token, runs and
//! DLQ, the log pane, the status bar, and the prompts and pop-ups. Nothing
//! here reads a clock or does IO: the same state draws the same screen.

use chrono::{DateTime, Utc};
use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::Style;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, Cell, Clear, Gauge, Paragraph, Row, Sparkline, Table, Wrap};

use super::keys::Action;
use super::state::{App, FORM_FIELDS, Guarded, Health, Mode, Pane, health, token_health};
use super::theme::Theme;
use crate::domain::{RunKind, duration_text};
use crate::engine::{CustomerSnapshot, EventLevel};

/// Below this the layout would break; a message is shown instead.
pub const MIN_WIDTH: u16 = 60;
pub const MIN_HEIGHT: u16 = 16;

/// Draws the whole screen.
pub fn draw(frame: &mut Frame, app: &App, theme: Theme) {
    let area = frame.area();
    if area.width < MIN_WIDTH || area.height < MIN_HEIGHT {
        let text = format!(
            "The terminal is {}×{}; vomo-sync needs at least {MIN_WIDTH}×{MIN_HEIGHT}.\nEnlarge the window (the engine keeps running).",
            area.width, area.height
        );
        frame.render_widget(Paragraph::new(text).wrap(Wrap { trim: true }), area);
        return;
    }
    let log_height = if area.height >= 40 {
        10
    } else if area.height >= 28 {
        7
    } else {
        5
    };
    let [title, body, log, status] = Layout::vertical([
        Constraint::Length(1),
        Constraint::Min(6),
        Constraint::Length(log_height),
        Constraint::Length(1),
    ])
    .areas(area);
    draw_title(frame, title, app, theme);
    let (list, detail) = if body.width >= 120 {
        let [a, b] = Layout::horizontal([Constraint::Percentage(55), Constraint::Percentage(45)]).areas(body);
        (a, b)
    } else {
        let [a, b] = Layout::vertical([Constraint::Percentage(45), Constraint::Percentage(55)]).areas(body);
        (a, b)
    };
    draw_customers(frame, list, app, theme);
    draw_detail(frame, detail, app, theme);
    draw_log(frame, log, app, theme);
    draw_status(frame, status, app, theme);
    draw_popup(frame, area, app, theme);
}

fn draw_title(frame: &mut Frame, area: Rect, app: &App, theme: Theme) {
    let customers = &app.snapshot.customers;
    let bad = customers.iter().filter(|c| health(c) == Health::Bad).count();
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

fn block(title: &str, focused: bool, theme: Theme) -> Block<'static> {
    Block::default()
        .borders(Borders::ALL)
        .border_style(theme.border(focused))
        .title(Span::styled(format!(" {title} "), theme.header()))
}

fn draw_customers(frame: &mut Frame, area: Rect, app: &App, theme: Theme) {
    let focused = app.focus == Pane::Customers;
    let title = format!("Customers {}/{}", app.order.len(), app.snapshot.customers.len());
    let outer = block(&title, focused, theme);
    let inner = outer.inner(area);
    frame.render_widget(outer, area);
    let visible = usize::from(inner.height.saturating_sub(1)).max(1);
    let offset = visible_offset(app.offset.get(), app.selected, visible, app.order.len());
    app.offset.set(offset);
    let rows: Vec<Row> = app
        .order
        .iter()
        .enumerate()
        .skip(offset)
        .take(visible)
        .filter_map(|(pos, &i)| app.snapshot.customers.get(i).map(|c| (pos, c)))
        .map(|(pos, c)| {
            let style = if pos == app.selected { theme.selected() } else { Style::new() };
            customer_row(c, theme).style(style)
        })
        .collect();
    let header =
        Row::new(["Customer", "State", "Lag", "Users/min", "Budget", "Token", "DLQ"]).style(theme.header());
    let widths = [
        Constraint::Min(10),
        Constraint::Length(14),
        Constraint::Length(6),
        Constraint::Length(9),
        Constraint::Length(9),
        Constraint::Length(9),
        Constraint::Length(5),
    ];
    if rows.is_empty() {
        let hint = if app.snapshot.customers.is_empty() {
            "No customers yet. Press n to onboard one."
        } else {
            "No customer matches the filter (/ to change it)."
        };
        frame.render_widget(Paragraph::new(hint).style(theme.dim()), inner);
        return;
    }
    frame.render_widget(Table::new(rows, widths).header(header).column_spacing(1), inner);
}

/// The first visible row so that `selected` is on screen, moving as little
/// as possible from `offset`.
pub fn visible_offset(offset: usize, selected: usize, visible: usize, len: usize) -> usize {
    let offset = if selected < offset {
        selected
    } else if selected >= offset + visible {
        selected + 1 - visible
    } else {
        offset
    };
    offset.min(len.saturating_sub(visible))
}

fn customer_row(c: &CustomerSnapshot, theme: Theme) -> Row<'static> {
    let h = health(c);
    let (token, token_h) = token_health(c);
    let state = if c.stalled { "stalled".to_owned() } else { c.status.as_str().replace('_', " ") };
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
        Cell::from(Span::styled(c.name.clone(), theme.health(h))),
        Cell::from(Span::styled(state, theme.health(h))),
        Cell::from(lag_text(c)),
        Cell::from(format!("{:.0}", c.throughput_per_min)),
        Cell::from(budget),
        Cell::from(Span::styled(token, theme.health(token_h))),
        Cell::from(Span::styled(dlq, dlq_style)),
    ])
}

fn draw_detail(frame: &mut Frame, area: Rect, app: &App, theme: Theme) {
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
    let [info, sparks, gauge, runs, dlq] = Layout::vertical([
        Constraint::Length(3),
        Constraint::Length(if roomy { 2 } else { 0 }),
        Constraint::Length(1),
        Constraint::Min(1),
        Constraint::Length(u16::try_from(dlq_rows).unwrap_or(6) + 2),
    ])
    .areas(inner);
    frame.render_widget(Paragraph::new(info_lines(c, app.now, theme)), info);
    if roomy {
        draw_sparklines(frame, sparks, app, &c.name, theme);
    }
    let ratio = if c.budget.configured > 0.0 {
        (c.budget.effective / c.budget.configured).clamp(0.0, 1.0)
    } else {
        1.0
    };
    let label = if c.budget.configured > 0.0 {
        format!(
            "budget {:.1} of {:.1} req/s · {} requests · {} × 429{}",
            c.budget.effective,
            c.budget.configured,
            c.budget.requests,
            c.budget.rate_limited,
            if c.budget.paused { " · paused by 429" } else { "" }
        )
    } else {
        format!("budget unlimited · {} requests · {} × 429", c.budget.requests, c.budget.rate_limited)
    };
    frame.render_widget(Gauge::default().ratio(ratio).label(label).gauge_style(theme.gauge()), gauge);
    frame.render_widget(Paragraph::new(run_lines(c, app.now, theme)).wrap(Wrap { trim: true }), runs);
    draw_dlq(frame, dlq, app, c, theme);
}

fn info_lines(c: &CustomerSnapshot, now: DateTime<Utc>, theme: Theme) -> Vec<Line<'static>> {
    let h = health(c);
    let mut status = vec![
        Span::styled(c.status.as_str().replace('_', " "), theme.health(h)),
        Span::raw(format!(" · lag {} · {} users synced", lag_text(c), c.users_synced)),
    ];
    if let Some(at) = c.next_poll_at {
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
        (Some(owner), false) => format!(" · run by {owner}"),
        (None, false) => " · not running".to_owned(),
    };
    let problem =
        c.failure.as_ref().map(|f| f.message.clone()).or_else(|| c.status_reason.clone()).map_or_else(
            || Span::styled(c.vomo_url.clone(), theme.dim()),
            |e| Span::styled(e, theme.health(Health::Bad)),
        );
    let token_line =
        Line::from(vec![Span::styled(token, theme.health(token_h)), Span::styled(runner, theme.dim())]);
    vec![Line::from(status), token_line, Line::from(problem)]
}

fn draw_sparklines(frame: &mut Frame, area: Rect, app: &App, name: &str, theme: Theme) {
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
    for run in runs {
        let count = |k: &str| run.counts.get(k).copied().unwrap_or(0);
        let counts = match run.kind {
            RunKind::Reconcile => format!(
                "{} missed, {} drift, {} lost downstream",
                count("missed_create") + count("missed_update"),
                count("drift"),
                count("lost_downstream")
            ),
            RunKind::Deletions => {
                format!("{} deleted, {} candidates", count("deleted"), count("deletion_candidates"))
            }
            _ => format!(
                "+{} ~{} -{} dlq {}",
                count("created"),
                count("updated"),
                count("deleted"),
                count("dlq_parked")
            ),
        };
        let outcome_style = match run.outcome.as_str() {
            "ok" | "confirmed" | "dismissed" => theme.health(Health::Good),
            "running" | "needs_confirmation" => theme.health(Health::Warn),
            _ => theme.health(Health::Bad),
        };
        let mut spans = vec![
            Span::styled(format!("{:<10}", run.kind.as_str()), theme.header()),
            Span::styled(run.outcome.as_str().replace('_', " "), outcome_style),
            Span::raw(format!(" {} ago · {counts} · {} req", ago(now, run.started_at), run.requests_used)),
        ];
        if run.outcome.as_str() == "needs_confirmation" {
            spans.push(Span::styled(format!(" · run {}: c to confirm", run.id), theme.health(Health::Warn)));
        }
        lines.push(Line::from(spans));
    }
    if lines.is_empty() {
        lines.push(Line::from(Span::styled("no runs yet", theme.dim())));
    }
    lines
}

fn draw_dlq(frame: &mut Frame, area: Rect, app: &App, c: &CustomerSnapshot, theme: Theme) {
    let focused = app.focus == Pane::Dlq;
    let title = format!("DLQ {} pending, {} permanent", c.dlq.pending, c.dlq.permanent);
    let outer = block(&title, focused, theme);
    let inner = outer.inner(area);
    frame.render_widget(outer, area);
    let entries = app.dlq_entries();
    if entries.is_empty() {
        frame.render_widget(Paragraph::new(Span::styled("empty", theme.dim())), inner);
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
            let class_style =
                if e.class == "permanent" { theme.health(Health::Bad) } else { theme.health(Health::Warn) };
            Row::new(vec![
                Cell::from(format!("#{}", e.id)),
                Cell::from(format!("user {}", e.vomo_user_id)),
                Cell::from(Span::styled(e.class.clone(), class_style)),
                Cell::from(format!("×{}", e.attempts)),
                Cell::from(ago(app.now, e.created_at)),
                Cell::from(e.message.clone()),
            ])
            .style(style)
        })
        .collect();
    let widths = [
        Constraint::Length(5),
        Constraint::Length(10),
        Constraint::Length(9),
        Constraint::Length(4),
        Constraint::Length(4),
        Constraint::Min(10),
    ];
    frame.render_widget(Table::new(rows, widths).column_spacing(1), inner);
}

fn draw_log(frame: &mut Frame, area: Rect, app: &App, theme: Theme) {
    let title = if app.log_selected_only {
        format!("Log · {}", app.current_name().unwrap_or_default())
    } else {
        "Log · all customers".to_owned()
    };
    let outer = block(&title, app.focus == Pane::Log, theme);
    let inner = outer.inner(area);
    frame.render_widget(outer, area);
    let events: Vec<_> = app.visible_log().collect();
    let start = events.len().saturating_sub(usize::from(inner.height));
    let lines: Vec<Line> = events[start..]
        .iter()
        .map(|e| {
            let level = match e.level {
                EventLevel::Info => theme.dim(),
                EventLevel::Warn => theme.health(Health::Warn),
                EventLevel::Error => theme.health(Health::Bad),
            };
            Line::from(vec![
                Span::styled(e.at.format("%H:%M:%S ").to_string(), theme.dim()),
                Span::styled(format!("{:<5} ", format!("{:?}", e.level).to_lowercase()), level),
                Span::styled(
                    e.customer.clone().map(|c| format!("{c}: ")).unwrap_or_default(),
                    theme.header(),
                ),
                Span::raw(e.message.clone()),
            ])
        })
        .collect();
    // Long messages wrap; the newest stay in view at the bottom.
    let width = usize::from(inner.width).max(1);
    let rows: usize = lines.iter().map(|l| l.width().div_ceil(width).max(1)).sum();
    let scroll = u16::try_from(rows.saturating_sub(usize::from(inner.height))).unwrap_or(u16::MAX);
    frame.render_widget(Paragraph::new(lines).wrap(Wrap { trim: false }).scroll((scroll, 0)), inner);
}

fn draw_status(frame: &mut Frame, area: Rect, app: &App, theme: Theme) {
    let line = match &app.mode {
        Mode::Filter(input) => {
            Line::from(vec![Span::styled("/", theme.key()), Span::raw(input.value().to_owned())])
        }
        Mode::Command(input) => {
            Line::from(vec![Span::styled(":", theme.key()), Span::raw(input.value().to_owned())])
        }
        _ => match &app.status {
            Some((level, text)) => {
                let style = match level {
                    EventLevel::Info => Style::new(),
                    EventLevel::Warn => theme.health(Health::Warn),
                    EventLevel::Error => theme.health(Health::Bad),
                };
                Line::from(Span::styled(text.clone(), style))
            }
            None => hints(app, theme),
        },
    };
    frame.render_widget(Paragraph::new(line), area);
}

fn hints(app: &App, theme: Theme) -> Line<'static> {
    let mut actions = vec![Action::Help, Action::Filter, Action::NextPane];
    if !app.readonly {
        actions.extend([
            Action::Backfill,
            Action::Reconcile,
            Action::Sweep,
            Action::Retry,
            Action::Pause,
            Action::Token,
            Action::Onboard,
            Action::Offboard,
        ]);
    }
    actions.push(Action::Quit);
    let mut spans = Vec::new();
    for action in actions {
        if let Some(key) = app.keys.keys_of(action).first() {
            spans.push(Span::styled(key.clone(), theme.key()));
            spans.push(Span::raw(format!(" {}  ", action.name())));
        }
    }
    Line::from(spans)
}

fn centered(area: Rect, width: u16, height: u16) -> Rect {
    let width = width.min(area.width.saturating_sub(2));
    let height = height.min(area.height.saturating_sub(2));
    Rect { x: area.x + (area.width - width) / 2, y: area.y + (area.height - height) / 2, width, height }
}

fn popup(frame: &mut Frame, area: Rect, title: &str, lines: Vec<Line<'static>>, theme: Theme) {
    const WIDTH: u16 = 76;
    // Rows after wrapping, so nothing falls off the bottom.
    let inner = usize::from(WIDTH.min(area.width.saturating_sub(2)).saturating_sub(2)).max(1);
    let rows: usize = lines.iter().map(|l| l.width().div_ceil(inner).max(1)).sum();
    let height = u16::try_from(rows).unwrap_or(u16::MAX).saturating_add(2);
    let rect = centered(area, WIDTH, height);
    frame.render_widget(Clear, rect);
    let widget = Paragraph::new(lines).block(block(title, true, theme)).wrap(Wrap { trim: false });
    frame.render_widget(widget, rect);
}

fn masked(len: usize) -> String {
    "•".repeat(len)
}

fn draw_popup(frame: &mut Frame, area: Rect, app: &App, theme: Theme) {
    let prompt_line = |value: String| Line::from(vec![Span::styled("> ", theme.key()), Span::raw(value)]);
    match &app.mode {
        Mode::Help => popup(frame, area, "Keys", help_lines(app, theme), theme),
        Mode::Confirm { customer, what, typed } => {
            let question = match what {
                Guarded::Offboard => format!(
                    "Offboard {customer}? Its work stops and its token is deleted at once; its state is kept for the retention period."
                ),
                Guarded::ConfirmDeletions { run, users } => format!(
                    "Carry out run {run} of {customer}: {users} users missing from VOMO's listing are asked about again and deleted downstream if VOMO confirms."
                ),
            };
            let lines = vec![
                Line::from(question),
                Line::from(""),
                Line::from(format!("Type the customer's name ({customer}) and press Enter; Esc cancels.")),
                prompt_line(typed.value().to_owned()),
            ];
            popup(frame, area, "Confirm", lines, theme);
        }
        Mode::Token { customer, input } => {
            let lines = vec![
                Line::from(format!(
                    "New VOMO token for {customer} (validated before it is stored). Enter saves, Esc cancels."
                )),
                prompt_line(masked(input.value().chars().count())),
            ];
            popup(frame, area, "Replace token", lines, theme);
        }
        Mode::DiscardNote { id, input } => {
            let lines = vec![
                Line::from(format!(
                    "Discard DLQ entry #{id}: why? (kept with the entry and in the audit log)"
                )),
                prompt_line(input.value().to_owned()),
            ];
            popup(frame, area, "Discard", lines, theme);
        }
        Mode::Payload(i) => {
            if let Some(entry) = app.dlq_entries().get(*i) {
                popup(frame, area, "DLQ entry (Esc closes)", payload_lines(entry, area, theme), theme);
            }
        }
        Mode::Onboard(form) => popup(frame, area, "Onboard a customer", form_lines(form, theme), theme),
        Mode::Normal | Mode::Filter(_) | Mode::Command(_) => {}
    }
}

fn help_lines(app: &App, theme: Theme) -> Vec<Line<'static>> {
    let mut lines: Vec<Line> = Action::ALL
        .iter()
        .filter(|a| !(app.readonly && a.mutates()))
        .map(|a| {
            let keys = app.keys.keys_of(*a).join(" ");
            Line::from(vec![Span::styled(format!("{keys:>8}  "), theme.key()), Span::raw(a.help())])
        })
        .collect();
    lines.push(Line::from(Span::styled("Ctrl-L redraws. Any key closes this help.", theme.dim())));
    lines
}

fn payload_lines(entry: &crate::engine::DlqItem, area: Rect, theme: Theme) -> Vec<Line<'static>> {
    let payload = serde_json::to_string_pretty(&entry.payload).unwrap_or_default();
    let mut lines = vec![
        Line::from(format!(
            "#{} user {} → {} ({}), {}, {} attempts",
            entry.id, entry.vomo_user_id, entry.destination, entry.change, entry.class, entry.attempts
        )),
        Line::from(Span::styled(entry.message.clone(), theme.health(Health::Bad))),
        Line::from(""),
    ];
    let room = usize::from(area.height.saturating_sub(8));
    lines.extend(payload.lines().take(room).map(|l| Line::from(l.to_owned())));
    lines
}

fn form_lines(form: &super::state::OnboardForm, theme: Theme) -> Vec<Line<'static>> {
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

/// The lag, or while backfilling (when the lag is "since the epoch") how
/// far the backfill has read.
fn lag_text(c: &CustomerSnapshot) -> String {
    match (&c.status, &c.current) {
        (crate::domain::CustomerStatus::Backfilling, Some(run)) if run.total > 0 => {
            format!("{}%", (run.users * 100 / run.total.max(1)).min(99))
        }
        (crate::domain::CustomerStatus::Backfilling, _) => "—".to_owned(),
        _ => duration_text(c.lag_secs),
    }
}

fn ago(now: DateTime<Utc>, then: DateTime<Utc>) -> String {
    duration_text((now - then).num_seconds())
}
