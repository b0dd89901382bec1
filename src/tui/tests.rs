//! The console without a terminal: the pure `update` step (selection,
//! filter, confirmations, read-only refusals) and screen snapshots drawn on
//! ratatui's `TestBackend` at 80×24 and 160×48, in colour and without.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests may panic on failure

use std::sync::Arc;

use chrono::{DateTime, Duration, TimeZone, Utc};
use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
use ratatui::Terminal;
use ratatui::backend::TestBackend;
use ratatui::style::Color;

use super::keys::KeyMap;
use super::state::{App, Effect, Guarded, Health, Mode, Msg, Pane, health, update};
use super::theme::{Theme, ThemeKind};
use super::view;
use crate::domain::{CustomerStatus, RunCounts, RunKind, RunOutcome, TokenState};
use crate::engine::DlqItem;
use crate::engine::{
    BudgetView, ClassRequests, Command, CustomerSnapshot, DeclaredView, DlqView, EngineEvent, EngineSnapshot,
    EventLevel, RunProgress, RunView, TokenView,
};

fn now() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 27, 9, 30, 0).unwrap()
}

fn customer(name: &str, status: CustomerStatus, lag_secs: i64, dlq: i64) -> CustomerSnapshot {
    CustomerSnapshot {
        name: name.to_owned(),
        status,
        status_reason: None,
        vomo_url: "https://api.vomo.org/v1".to_owned(),
        watermark: now() - Duration::seconds(lag_secs),
        lag_secs,
        checkpoint_ahead_secs: None,
        in_flight: None,
        users_synced: 1200,
        throughput_per_min: 340.0,
        budget: BudgetView {
            auto: true,
            configured: 0.0,
            effective: 2.9,
            used_per_s: 2.9,
            declared: Some(DeclaredView { limit: 3, remaining: 2, per_s: Some(3.0), age_secs: 1 }),
            requests: 812,
            by_class: ClassRequests { poll: 812, ..ClassRequests::default() },
            rate_limited: 0,
            paused: false,
        },
        token: Some(TokenView {
            fingerprint: "…a1b2".to_owned(),
            state: TokenState::Valid,
            validated_at: Some(now() - Duration::minutes(5)),
        }),
        dlq: DlqView { pending: dlq, permanent: dlq.min(1), oldest: None },
        current: None,
        background: None,
        last_runs: vec![RunView {
            id: 7,
            kind: RunKind::Poll,
            outcome: RunOutcome::Ok,
            started_at: now() - Duration::minutes(3),
            finished_at: Some(now() - Duration::minutes(3)),
            counts: RunCounts { created: 2, updated: 5, ..RunCounts::default() },
            requests_used: 1,
            message: None,
        }],
        next_poll_at: Some(now() + Duration::minutes(12)),
        failure: None,
        owned_here: true,
        owner: None,
        owner_seen_at: None,
        stalled: false,
        requests_total: 812,
        destinations: Vec::new(),
        reconcile_every_secs: 86_400,
        tail: None,
    }
}

fn snapshot(customers: Vec<CustomerSnapshot>) -> Msg {
    Msg::Snapshot(Arc::new(EngineSnapshot {
        at: Some(now()),
        owner: "test".into(),
        customers,
        ..Default::default()
    }))
}

/// Four customers in every state worth seeing.
fn fleet() -> Vec<CustomerSnapshot> {
    let mut rejected = customer("city-marathon", CustomerStatus::TokenRejected, 5400, 0);
    rejected.token.as_mut().unwrap().state = TokenState::Rejected;
    rejected.status_reason = Some("VOMO rejected the token (401)".to_owned());
    let mut backfilling = customer("red-cross-east", CustomerStatus::Backfilling, 0, 0);
    // Its first full copy is under way: no poll has run yet.
    backfilling.last_runs.clear();
    backfilling.users_synced = 18_000;
    backfilling.current = Some(RunProgress {
        kind: RunKind::Backfill,
        started_at: now() - Duration::minutes(4),
        pages: 1200,
        users: 18_000,
        total: 50_000,
        requests: 0,
    });
    vec![
        customer("harbour-food-bank", CustomerStatus::Active, 95, 1),
        rejected,
        backfilling,
        customer("alpine-club", CustomerStatus::Active, 40, 0),
    ]
}

fn app() -> App {
    let mut app = App::new(KeyMap::default(), false, "https://api.vomo.org/v1".into(), now());
    update(&mut app, snapshot(fleet()));
    app
}

fn key(code: KeyCode) -> Msg {
    Msg::Key(KeyEvent::new(code, KeyModifiers::NONE))
}

fn press(app: &mut App, c: char) -> Vec<Effect> {
    update(app, key(KeyCode::Char(c)))
}

fn type_text(app: &mut App, text: &str) {
    for c in text.chars() {
        press(app, c);
    }
}

#[test]
fn worst_health_sorts_first_and_selection_follows_the_customer() {
    let mut app = app();
    let names: Vec<&str> = app.shown().map(|c| c.name.as_str()).collect();
    assert_eq!(names, ["city-marathon", "harbour-food-bank", "red-cross-east", "alpine-club"]);
    assert_eq!(health(app.current_verdict().unwrap()), Health::Bad);
    press(&mut app, 'j');
    assert_eq!(app.current_name().as_deref(), Some("harbour-food-bank"));
    // A new snapshot that reorders keeps the selection on the same customer.
    let mut customers = fleet();
    customers[1].status = CustomerStatus::Active;
    customers[1].token.as_mut().unwrap().state = TokenState::Valid;
    customers[1].lag_secs = 10;
    update(&mut app, snapshot(customers));
    assert_eq!(app.current_name().as_deref(), Some("harbour-food-bank"));
    press(&mut app, 'G');
    assert_eq!(app.selected, 3);
    press(&mut app, 'j');
    assert_eq!(app.selected, 3, "stays on the last row");
}

#[test]
fn the_filter_narrows_the_list_and_esc_clears_it() {
    let mut app = app();
    press(&mut app, '/');
    press(&mut app, 'R');
    let effects = press(&mut app, 'E');
    assert_eq!(effects, [Effect::LoadDlq("red-cross-east".into())], "the new selection's DLQ is loaded");
    press(&mut app, 'D');
    assert_eq!(app.shown().map(|c| c.name.as_str()).collect::<Vec<_>>(), ["red-cross-east"]);
    update(&mut app, key(KeyCode::Enter));
    assert_eq!(app.filter, "RED");
    press(&mut app, '/');
    update(&mut app, key(KeyCode::Esc));
    assert_eq!(app.shown().count(), 4);
}

#[test]
fn offboarding_needs_the_customers_name_typed() {
    let mut app = app();
    assert!(press(&mut app, 'o').is_empty());
    assert!(
        matches!(&app.mode, Mode::Confirm { customer, what: Guarded::Offboard, .. } if customer == "city-marathon")
    );
    type_text(&mut app, "city");
    assert!(update(&mut app, key(KeyCode::Enter)).is_empty(), "a wrong name does nothing");
    assert!(matches!(app.mode, Mode::Normal));
    press(&mut app, 'o');
    type_text(&mut app, "city-marathon");
    let effects = update(&mut app, key(KeyCode::Enter));
    assert_eq!(
        effects,
        [Effect::Engine(Command::Offboard { customer: "city-marathon".into(), purge: false })]
    );
    press(&mut app, 'o');
    update(&mut app, key(KeyCode::Esc));
    assert!(matches!(app.mode, Mode::Normal), "Esc cancels");
}

#[test]
fn a_guarded_sweep_is_confirmed_by_name_and_ctrl_chords_do_nothing() {
    let mut customers = fleet();
    customers[0].last_runs.push(RunView {
        id: 42,
        kind: RunKind::Deletions,
        outcome: RunOutcome::NeedsConfirmation,
        started_at: now(),
        finished_at: None,
        counts: RunCounts { deletion_candidates: 61, ..RunCounts::default() },
        requests_used: 30,
        message: None,
    });
    let mut app = App::new(KeyMap::default(), false, String::new(), now());
    update(&mut app, snapshot(customers));
    press(&mut app, 'j');
    assert_eq!(app.current_name().as_deref(), Some("harbour-food-bank"));
    let ctrl_o = update(&mut app, Msg::Key(KeyEvent::new(KeyCode::Char('o'), KeyModifiers::CONTROL)));
    assert!(ctrl_o.is_empty() && matches!(app.mode, Mode::Normal));
    press(&mut app, 'c');
    assert!(matches!(app.mode, Mode::Confirm { what: Guarded::ConfirmDeletions { run: 42, users: 61 }, .. }));
    type_text(&mut app, "harbour-food-bank");
    let effects = update(&mut app, key(KeyCode::Enter));
    assert_eq!(
        effects,
        [Effect::Engine(Command::SettleDeletions {
            customer: "harbour-food-bank".into(),
            run: 42,
            confirm: true
        })]
    );
}

#[test]
fn read_only_refuses_every_mutation_and_allows_looking() {
    let mut app = App::new(KeyMap::default(), true, String::new(), now());
    update(&mut app, snapshot(fleet()));
    for c in ['b', 'r', 'd', 't', 'x', 'p', 'u', 'n', 'o', 'c', 'P'] {
        assert!(press(&mut app, c).is_empty(), "{c} did something");
        assert!(matches!(app.mode, Mode::Normal), "{c} opened a prompt");
        assert!(app.status.as_ref().is_some_and(|(_, s)| s.contains("read-only")), "{c}");
    }
    press(&mut app, ':');
    type_text(&mut app, "backfill alpine-club");
    assert!(update(&mut app, key(KeyCode::Enter)).is_empty());
    press(&mut app, 'j');
    assert_eq!(app.selected, 1, "moving is allowed");
    assert_eq!(press(&mut app, 'q'), [Effect::Quit]);
}

#[test]
fn keys_and_the_command_line_send_engine_commands() {
    let mut app = app();
    assert_eq!(
        press(&mut app, 'b'),
        [Effect::Engine(Command::Backfill { customer: "city-marathon".into() })]
    );
    assert_eq!(
        press(&mut app, 'r'),
        [Effect::Engine(Command::Reconcile { customer: "city-marathon".into() })]
    );
    press(&mut app, ':');
    type_text(&mut app, "dismiss harbour-food-bank 9");
    assert_eq!(
        update(&mut app, key(KeyCode::Enter)),
        [Effect::Engine(Command::SettleDeletions {
            customer: "harbour-food-bank".into(),
            run: 9,
            confirm: false
        })]
    );
    press(&mut app, ':');
    type_text(&mut app, "q");
    assert_eq!(update(&mut app, key(KeyCode::Enter)), [Effect::Quit]);
}

fn dlq_item(id: i64) -> DlqItem {
    DlqItem {
        id,
        customer: "harbour-food-bank".into(),
        vomo_user_id: 4,
        destination: "webhook".into(),
        change: "created".into(),
        class: "permanent".into(),
        message: "webhook answered 422 Unprocessable Entity".into(),
        attempts: 1,
        created_at: now() - Duration::minutes(2),
        next_retry_at: None,
        payload: serde_json::json!({"type": "user.created", "vomo_user_id": 4}),
    }
}

#[test]
fn dlq_entries_are_retried_one_by_one_and_discarded_with_a_note() {
    let mut app = app();
    press(&mut app, 'j');
    update(
        &mut app,
        Msg::Dlq { customer: "harbour-food-bank".into(), items: vec![dlq_item(11), dlq_item(12)] },
    );
    update(&mut app, key(KeyCode::Tab));
    assert_eq!(app.focus, Pane::Dlq);
    press(&mut app, 'j');
    assert_eq!(
        press(&mut app, 't'),
        [Effect::Engine(Command::RetryDlq { customer: "harbour-food-bank".into(), id: Some(12) })]
    );
    press(&mut app, 'x');
    assert!(update(&mut app, key(KeyCode::Enter)).is_empty(), "a note is required");
    press(&mut app, 'x');
    type_text(&mut app, "fixed by hand");
    assert_eq!(
        update(&mut app, key(KeyCode::Enter)),
        [Effect::DiscardDlq { id: 12, note: "fixed by hand".into() }]
    );
}

#[test]
fn the_onboarding_form_masks_the_token_and_stays_open_on_refusal() {
    let mut app = app();
    press(&mut app, 'n');
    type_text(&mut app, "acme");
    update(&mut app, key(KeyCode::Tab));
    type_text(&mut app, "s3cret-token");
    update(&mut app, key(KeyCode::Tab));
    update(&mut app, key(KeyCode::Tab));
    type_text(&mut app, "jsonl:/tmp/acme.jsonl");
    let effects = update(&mut app, key(KeyCode::Enter));
    let [Effect::Onboard(request)] = &effects[..] else { panic!("{effects:?}") };
    assert_eq!((request.name.as_str(), request.token.as_str()), ("acme", "s3cret-token"));
    assert_eq!(request.vomo_url, "https://api.vomo.org/v1", "prefilled");
    let screen = render(&app, 160, 48, ThemeKind::Dark);
    assert!(!screen.contains("s3cret"), "the token is masked on screen");
    update(&mut app, Msg::OnboardDone(Err("VOMO rejected this token (401 Unauthorized)".into())));
    assert!(
        matches!(&app.mode, Mode::Onboard(form) if form.error.as_deref().is_some_and(|e| e.contains("401")))
    );
    assert!(render(&app, 160, 48, ThemeKind::Dark).contains("VOMO rejected this token"));
    update(&mut app, Msg::OnboardDone(Ok("onboarded acme".into())));
    assert!(matches!(app.mode, Mode::Normal));
}

fn render(app: &App, width: u16, height: u16, theme: ThemeKind) -> String {
    let mut terminal = Terminal::new(TestBackend::new(width, height)).unwrap();
    terminal.draw(|frame| view::draw(frame, app, Theme::new(theme))).unwrap();
    terminal.backend().to_string()
}

fn with_log(mut app: App) -> App {
    for (customer, level, text) in [
        (Some("harbour-food-bank"), EventLevel::Info, "poll done: 7 users read, 2 created, 5 updated"),
        (Some("city-marathon"), EventLevel::Error, "VOMO rejected this customer's token (401)"),
        (None, EventLevel::Warn, "lease renewed late"),
    ] {
        let mut event = EngineEvent::new(customer, level, text);
        event.at = now();
        update(&mut app, Msg::Event(event));
    }
    app
}

#[test]
fn screens_at_80x24_and_160x48() {
    let app = with_log(app());
    insta::assert_snapshot!("main_80x24", render(&app, 80, 24, ThemeKind::Dark));
    insta::assert_snapshot!("main_160x48", render(&app, 160, 48, ThemeKind::Dark));
    let mut help = with_log(app_with(|_| {}));
    press(&mut help, '?');
    insta::assert_snapshot!("help_160x48", render(&help, 160, 48, ThemeKind::Dark));
    insta::assert_snapshot!("too_small", render(&help, 50, 12, ThemeKind::Dark));
}

fn app_with(change: impl FnOnce(&mut App)) -> App {
    let mut app = app();
    change(&mut app);
    app
}

#[test]
fn no_color_draws_no_colour() {
    let app = with_log(app());
    let mut terminal = Terminal::new(TestBackend::new(160, 48)).unwrap();
    terminal.draw(|frame| view::draw(frame, &app, Theme::new(ThemeKind::Mono))).unwrap();
    let buffer = terminal.backend().buffer();
    assert!(buffer.content().iter().all(|cell| cell.fg == Color::Reset && cell.bg == Color::Reset));
    insta::assert_snapshot!("main_80x24_no_color", render(&app, 80, 24, ThemeKind::Mono));
    // With colour, the unhealthy customer is drawn red.
    let mut terminal = Terminal::new(TestBackend::new(160, 48)).unwrap();
    terminal.draw(|frame| view::draw(frame, &app, Theme::new(ThemeKind::Dark))).unwrap();
    assert!(terminal.backend().buffer().content().iter().any(|cell| cell.fg == Color::LightRed));
}

#[test]
fn a_thousand_customers_draw_only_the_visible_rows() {
    let customers: Vec<CustomerSnapshot> =
        (0..1000).map(|n| customer(&format!("customer-{n:04}"), CustomerStatus::Active, n, 0)).collect();
    let mut app = App::new(KeyMap::default(), false, String::new(), now());
    update(&mut app, snapshot(customers));
    press(&mut app, 'G');
    let screen = render(&app, 160, 48, ThemeKind::Dark);
    let last = app.current_name().unwrap();
    assert!(screen.contains(&last), "the selected (last) customer is on screen");
    assert!(app.offset.get() > 900);
}

/// A HubSpot-backed customer: one destination halted by a rejected token,
/// the other showing its own request budget beside VOMO's.
fn crm_customer() -> CustomerSnapshot {
    use crate::engine::{DestinationBudget, DestinationHalt, DestinationView};
    let mut c = customer("crm-partner", CustomerStatus::Active, 30, 3);
    c.destinations = vec![
        DestinationView {
            name: "hubspot".into(),
            kind: "hubspot".into(),
            halt: Some(DestinationHalt {
                reason: "token_rejected".into(),
                message: "HubSpot answered 401 Unauthorized".into(),
                hint: "put a valid token where its spec points".into(),
                since: now() - Duration::minutes(3),
                retry_at: now() + Duration::minutes(2),
            }),
            budget: None,
        },
        DestinationView {
            name: "hubspot-2".into(),
            kind: "hubspot".into(),
            halt: None,
            budget: Some(DestinationBudget {
                configured_per_10s: 80.0,
                effective_per_10s: 40.0,
                requests: 1234,
                rate_limited: std::collections::BTreeMap::from([("TEN_SECONDLY_ROLLING".into(), 1)]),
                paused: false,
                daily_limit: Some(250_000),
                daily_remaining: Some(248_766),
                daily_stop_until: None,
            }),
        },
    ];
    c
}

#[test]
fn a_halted_destination_is_shown_with_what_to_do_and_a_budget_beside_vomos() {
    let mut app = App::new(KeyMap::default(), false, String::new(), now());
    update(&mut app, snapshot(vec![crm_customer(), customer("alpine-club", CustomerStatus::Active, 40, 0)]));
    assert_eq!(health(app.current_verdict().unwrap()), Health::Bad, "a halted destination needs attention");
    let screen = render(&app, 160, 48, ThemeKind::Dark);
    assert!(screen.contains("hubspot halted 3m ago (token rejected)"), "{screen}");
    assert!(screen.contains("hubspot-2 budget 40 of 80 req/10 s"), "{screen}");
    insta::assert_snapshot!("destination_halted_160x48", screen);
}

/// The states an on-call engineer must be able to tell apart, each as the
/// engine's verdict decides it.
fn hard_cases() -> Vec<CustomerSnapshot> {
    let backfill_run = |users, total| RunProgress {
        kind: RunKind::Backfill,
        started_at: now() - Duration::minutes(4),
        pages: users / 15,
        users,
        total,
        requests: 0,
    };
    let stopped_backfill = |outcome, message: &str| RunView {
        id: 9,
        kind: RunKind::Backfill,
        outcome,
        started_at: now() - Duration::minutes(10),
        finished_at: Some(now() - Duration::minutes(2)),
        counts: RunCounts { users_seen: 5_800, window_total: 10_000, ..RunCounts::default() },
        requests_used: 390,
        message: Some(message.into()),
    };
    let mut backfilling = customer("a-backfilling", CustomerStatus::Backfilling, 1_000_000_000, 0);
    backfilling.last_runs.clear();
    backfilling.users_synced = 5_800;
    backfilling.current = Some(backfill_run(5_800, 10_000));
    let mut rejected = customer("b-rejected-mid-backfill", CustomerStatus::TokenRejected, 1_000_000_000, 0);
    rejected.token.as_mut().unwrap().state = TokenState::Rejected;
    rejected.users_synced = 5_800;
    rejected.last_runs = vec![stopped_backfill(RunOutcome::Failed, "VOMO rejected the token (401)")];
    rejected.next_poll_at = Some(now());
    let mut paused = customer("c-paused-mid-backfill", CustomerStatus::Paused, 1_000_000_000, 0);
    paused.users_synced = 5_800;
    paused.last_runs = vec![stopped_backfill(RunOutcome::Aborted, "stopped before the window was complete")];
    let mut orphan = customer("d-no-live-instance", CustomerStatus::Active, 80, 0);
    orphan.owned_here = false;
    orphan.owner = Some("vm:4242:headless".into());
    orphan.owner_seen_at = Some(now() - Duration::seconds(70));
    orphan.throughput_per_min = 0.0;
    let mut db = customer("e-state-db-failing", CustomerStatus::Active, 300, 0);
    db.failure = Some(crate::engine::RunFailure {
        kind: crate::engine::FailureKind::StateDb,
        message: "state DB: disk I/O error (the file is read-only?)".into(),
        since: now() - Duration::minutes(3),
        last_at: now() - Duration::seconds(20),
        consecutive: 4,
        run_id: Some(12),
    });
    vec![backfilling, rejected, paused, orphan, db]
}

fn hard_app() -> App {
    let mut app = App::new(KeyMap::default(), false, String::new(), now());
    update(&mut app, snapshot(hard_cases()));
    app
}

#[test]
fn a_backfill_never_shows_a_lag_and_a_silent_owner_is_no_live_instance() {
    use crate::engine::verdict::{Freshness, State};
    let app = hard_app();
    let verdict = |name: &str| {
        let i = app.snapshot.customers.iter().position(|c| c.name == name).unwrap();
        app.verdict(i).unwrap().clone()
    };
    let running = verdict("a-backfilling");
    assert_eq!(
        (running.state, running.freshness_text()),
        (State::Backfilling, "backfill 58% · ETA 97s".into())
    );
    let rejected = verdict("b-rejected-mid-backfill");
    assert_eq!(rejected.freshness_text(), "backfill 58% · stopped 2m ago (token rejected)");
    let paused = verdict("c-paused-mid-backfill");
    assert_eq!(paused.freshness_text(), "backfill 58% · stopped 2m ago (paused)");
    assert!(!paused.needs_attention(), "a pause is on purpose");
    let orphan = verdict("d-no-live-instance");
    assert_eq!(orphan.state, State::NoLiveInstance);
    assert_eq!(orphan.state_text(), "no live instance (last seen 70s ago)");
    assert!(orphan.needs_attention());
    assert!(matches!(orphan.freshness, Freshness::Lag { secs: 80 }));
    let db = verdict("e-state-db-failing");
    assert_eq!(db.state, State::Failing);
    assert!(db.attention[0].text.contains("4 runs in a row failed: state DB"), "{:?}", db.attention);
    let screen = render(&app, 160, 48, ThemeKind::Dark);
    // No lag is ever counted in days here (they were, from the epoch).
    let in_days = screen.split("lag ").skip(1).any(|rest| {
        let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
        !digits.is_empty() && rest[digits.len()..].starts_with('d')
    });
    assert!(!in_days, "a lag in days:\n{screen}");
    // Header and rows agree with the verdicts: four need attention (the
    // pause does not).
    assert!(screen.contains("5 customers · 3 need attention"), "{screen}");
}

#[test]
fn hard_cases_at_80x24() {
    let mut app = hard_app();
    for name in [
        "a-backfilling",
        "b-rejected-mid-backfill",
        "c-paused-mid-backfill",
        "d-no-live-instance",
        "e-state-db-failing",
    ] {
        let i = app.order.iter().position(|&i| app.snapshot.customers[i].name == name).unwrap();
        app.selected = i;
        insta::assert_snapshot!(format!("hard_case_{name}_80x24"), render(&app, 80, 24, ThemeKind::Dark));
    }
    // The smallest size the console draws at.
    insta::assert_snapshot!("hard_cases_60x16", render(&app, 60, 16, ThemeKind::Dark));
}

#[test]
fn status_health_and_metrics_carry_the_consoles_state_and_freshness() {
    use crate::engine::verdict::Freshness;
    let app = hard_app();
    let metrics = crate::headless::render_metrics(&app.snapshot).unwrap();
    for (c, verdict) in app.snapshot.customers.iter().zip(&app.verdicts) {
        let engine = c.verdict(&app.snapshot.thresholds, app.now);
        assert_eq!(&engine, verdict, "status --json prints this verdict");
        let state = verdict.state.as_str().replace(' ', "_");
        let line = format!("vomo_sync_customer_state{{customer=\"{}\",state=\"{state}\"}} 1", c.name);
        assert!(metrics.contains(&line), "{line} in:\n{metrics}");
        let lag_line = format!("vomo_sync_checkpoint_lag_seconds{{customer=\"{}\"}}", c.name);
        let health = crate::engine::health::customer_health(c, &app.snapshot.thresholds, app.now);
        match verdict.freshness {
            Freshness::Lag { secs } => {
                assert_eq!(health.checkpoint_lag_secs, Some(secs));
                assert!(metrics.contains(&format!("{lag_line} {secs}")), "{lag_line}");
            }
            Freshness::Backfill { .. } => {
                assert_eq!(health.checkpoint_lag_secs, None, "{}", c.name);
                assert!(!metrics.contains(&lag_line), "no lag for {} while it backfills", c.name);
            }
        }
        let attention = format!(
            "vomo_sync_needs_attention{{customer=\"{}\"}} {}",
            c.name,
            i64::from(verdict.needs_attention())
        );
        assert!(metrics.contains(&attention), "{attention}");
    }
}

#[test]
fn ctrl_c_quits_ctrl_z_says_why_and_costly_actions_ask_or_refuse() {
    let mut app = app();
    let ctrl = |c| Msg::Key(KeyEvent::new(KeyCode::Char(c), KeyModifiers::CONTROL));
    assert!(update(&mut app, ctrl('z')).is_empty());
    assert!(app.shown_status().is_some_and(|(_, s)| s.contains("does not suspend")), "{:?}", app.status);
    // The message makes way for the key hints after a while.
    update(&mut app, Msg::Tick(now() + Duration::seconds(30)));
    assert!(app.shown_status().is_none());

    // b on a customer whose backfill runs: said, nothing queued.
    let mut app = app_with(|_| {});
    let i = app.order.iter().position(|&i| app.snapshot.customers[i].name == "red-cross-east").unwrap();
    app.selected = i;
    assert!(press(&mut app, 'b').is_empty());
    assert!(app.shown_status().is_some_and(|(_, s)| s.contains("already running")), "{:?}", app.status);
    // b on an active customer: a re-walk, which asks first with its cost.
    let i = app.order.iter().position(|&i| app.snapshot.customers[i].name == "alpine-club").unwrap();
    app.selected = i;
    assert!(press(&mut app, 'b').is_empty());
    let Mode::Confirm { what: Guarded::Costly { cost, .. }, .. } = &app.mode else {
        panic!("{:?}", app.mode)
    };
    assert_eq!((cost.requests, cost.secs), (80, Some(28)), "1,200 users at 2.9 req/s");
    let screen = render(&app, 160, 48, ThemeKind::Dark);
    assert!(screen.contains("about 80 requests to VOMO") && screen.contains("28s at its budget"), "{screen}");
    type_text(&mut app, "alpine-club");
    assert_eq!(
        update(&mut app, key(KeyCode::Enter)),
        [Effect::Engine(Command::Backfill { customer: "alpine-club".into() })]
    );

    // Ctrl-C quits from any mode, a half-typed prompt included.
    press(&mut app, '/');
    type_text(&mut app, "alp");
    assert_eq!(update(&mut app, ctrl('c')), [Effect::Quit]);
    assert!(app.quit);
}

#[test]
fn help_scrolls_to_its_end_at_80x24() {
    let mut app = app();
    press(&mut app, '?');
    let top = render(&app, 80, 24, ThemeKind::Dark);
    assert!(top.contains("j/k scroll") && !top.contains("q  quit"), "{top}");
    update(&mut app, key(KeyCode::End));
    press(&mut app, 'G');
    let end = render(&app, 80, 24, ThemeKind::Dark);
    assert!(end.contains("· end") && end.contains("quit"), "quit is reachable:\n{end}");
    insta::assert_snapshot!("help_80x24_end", end);
    press(&mut app, 'x');
    assert!(matches!(app.mode, Mode::Normal), "any other key closes the help");
}

#[test]
fn the_log_scrolls_searches_keeps_time_order_and_esc_clears_a_committed_filter() {
    let mut app = app();
    for i in 0..40 {
        let mut event = EngineEvent::new(Some("alpine-club"), EventLevel::Info, format!("poll {i} done"));
        event.at = now() + Duration::seconds(i);
        update(&mut app, Msg::Event(event));
    }
    // A late arrival stamped earlier lands in its place, not at the end.
    let mut early = EngineEvent::new(None, EventLevel::Warn, "lease renewed late");
    early.at = now() + Duration::seconds(5);
    update(&mut app, Msg::Event(early));
    let times: Vec<_> = app.log.iter().map(|e| e.at).collect();
    assert!(times.windows(2).all(|w| w[0] <= w[1]), "log in time order");

    update(&mut app, key(KeyCode::Tab));
    update(&mut app, key(KeyCode::Tab));
    assert_eq!(app.focus, Pane::Log);
    press(&mut app, 'k');
    press(&mut app, 'k');
    assert_eq!(app.log_scroll, 2);
    let screen = render(&app, 160, 48, ThemeKind::Dark);
    assert!(screen.contains("2 newer below (G follows)") && !screen.contains("poll 39 done"), "{screen}");
    // New events do not move a scrolled-back pane.
    update(&mut app, Msg::Event(EngineEvent::new(Some("alpine-club"), EventLevel::Info, "poll 40 done")));
    assert_eq!(app.log_scroll, 3);
    press(&mut app, 'G');
    assert_eq!(app.log_scroll, 0);
    press(&mut app, '/');
    type_text(&mut app, "LEASE");
    update(&mut app, key(KeyCode::Enter));
    assert_eq!(app.visible_log().map(|e| e.message.as_str()).collect::<Vec<_>>(), ["lease renewed late"]);
    assert!(render(&app, 160, 48, ThemeKind::Dark).contains("search \"LEASE\""));
    update(&mut app, key(KeyCode::Esc));
    assert!(app.log_search.is_empty() && app.focus == Pane::Customers);

    // A committed customer filter: Esc clears it.
    press(&mut app, '/');
    type_text(&mut app, "alp");
    update(&mut app, key(KeyCode::Enter));
    assert_eq!(app.order.len(), 1);
    update(&mut app, key(KeyCode::Esc));
    assert!(app.filter.is_empty() && app.order.len() == 4);
}

#[test]
fn the_command_line_completes_with_tab_and_recalls_with_up() {
    let mut app = app();
    press(&mut app, ':');
    type_text(&mut app, "rec");
    update(&mut app, key(KeyCode::Tab));
    type_text(&mut app, "alp");
    update(&mut app, key(KeyCode::Tab));
    let Mode::Command(input) = &app.mode else { panic!("{:?}", app.mode) };
    assert_eq!(input.value(), "reconcile alpine-club ");
    let effects = update(&mut app, key(KeyCode::Enter));
    assert_eq!(effects, [Effect::Engine(Command::Reconcile { customer: "alpine-club".into() })]);
    // Two verbs share "re": both are listed, the line keeps the prefix.
    press(&mut app, ':');
    type_text(&mut app, "re");
    update(&mut app, key(KeyCode::Tab));
    assert!(app.shown_status().is_some_and(|(_, s)| s.contains("reconcile") && s.contains("resume")));
    update(&mut app, key(KeyCode::Up));
    let Mode::Command(input) = &app.mode else { panic!("{:?}", app.mode) };
    assert_eq!(input.value(), "reconcile alpine-club ", "Up recalls the last line");
}
