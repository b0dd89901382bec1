//! A hostile VOMO for tests: a bare HTTP/1.1 server (so every header and
//! byte is ours — no framework adds a `Date`) serving `GET /{defect}/v1/users`
//! and `GET /{defect}/v1/users/{id}`, each path with one defect. A defect is
//! off until armed, so a customer can be onboarded against the well-behaved
//! server first; once armed, every answer on that path carries the defect.

use std::collections::HashSet;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use chrono::{DateTime, Duration, DurationRound, Utc};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

pub const TOKEN: &str = "hostile-test-token-0001";

/// What a path does wrong once armed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Defect {
    /// `Date: Fri, 01 Jan 2100 00:00:00 GMT`.
    FutureDate,
    /// `Date: Mon, 01 Jan 1990 00:00:00 GMT`.
    PastDate,
    /// No `Date` header at all.
    NoDate,
    /// `Date: yesterday-ish` (not a date).
    GarbageDate,
    /// A body far over any cap, without a length (it just keeps coming).
    EndlessBody,
    /// `meta.total` 10^12 with a consistent `last_page`.
    ImplausibleTotal,
    /// `last_page` 1000 (total 15000) but every page after the first empty.
    EmptyPagesBeforeTheEnd,
    /// Every window answered with every user: the date filters ignored.
    IgnoresFilter,
    /// `last_page` that contradicts `total`.
    LastPageLies,
    /// One user (id readable) with an unreadable field and personal data.
    OneUnreadableUser,
    /// One user whose id cannot be read.
    UnreadableId,
    /// A 500 whose body is a megabyte of text.
    HugeErrorBody,
}

impl Defect {
    pub fn path(self) -> &'static str {
        match self {
            Self::FutureDate => "future-date",
            Self::PastDate => "past-date",
            Self::NoDate => "no-date",
            Self::GarbageDate => "garbage-date",
            Self::EndlessBody => "endless-body",
            Self::ImplausibleTotal => "implausible-total",
            Self::EmptyPagesBeforeTheEnd => "empty-pages",
            Self::IgnoresFilter => "ignores-filter",
            Self::LastPageLies => "last-page-lies",
            Self::OneUnreadableUser => "one-unreadable-user",
            Self::UnreadableId => "unreadable-id",
            Self::HugeErrorBody => "huge-error-body",
        }
    }

    fn all() -> [Self; 12] {
        [
            Self::FutureDate,
            Self::PastDate,
            Self::NoDate,
            Self::GarbageDate,
            Self::EndlessBody,
            Self::ImplausibleTotal,
            Self::EmptyPagesBeforeTheEnd,
            Self::IgnoresFilter,
            Self::LastPageLies,
            Self::OneUnreadableUser,
            Self::UnreadableId,
            Self::HugeErrorBody,
        ]
    }
}

/// The personal data the unreadable user carries; it must never reach a
/// log, a run record or a DLQ message.
pub const PRIVATE_EMAIL: &str = "very.private.person@example.org";
pub const PRIVATE_NAME: &str = "Privatissima";

struct State {
    armed: Mutex<HashSet<Defect>>,
    /// Well-behaved users: (id, updated_at).
    users: Mutex<Vec<(i64, DateTime<Utc>)>>,
    requests: AtomicU64,
}

/// A running hostile VOMO.
#[derive(Clone)]
pub struct Hostile {
    addr: SocketAddr,
    state: Arc<State>,
}

impl Hostile {
    /// Starts with `users` well-behaved users updated over the last hour.
    pub async fn start(users: i64) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let start = whole_second(Utc::now()) - Duration::hours(1);
        let state = Arc::new(State {
            armed: Mutex::new(HashSet::new()),
            users: Mutex::new((1..=users).map(|id| (id, start + Duration::seconds(id * 7))).collect()),
            requests: AtomicU64::new(0),
        });
        let shared = Arc::clone(&state);
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let state = Arc::clone(&shared);
                tokio::spawn(async move {
                    let _ = serve(stream, &state).await;
                });
            }
        });
        Self { addr, state }
    }

    pub fn base_url(&self, defect: Defect) -> String {
        format!("http://{}/{}/v1", self.addr, defect.path())
    }

    pub fn arm(&self, defect: Defect) {
        self.state.armed.lock().unwrap().insert(defect);
    }

    pub fn disarm(&self, defect: Defect) {
        self.state.armed.lock().unwrap().remove(&defect);
    }

    /// Adds a user updated now (VOMO's clock is this machine's).
    pub fn add_user(&self, id: i64) {
        self.state.users.lock().unwrap().push((id, whole_second(Utc::now())));
    }

    pub fn requests(&self) -> u64 {
        self.state.requests.load(Ordering::Relaxed)
    }
}

/// VOMO keeps `updated_at` in whole seconds: what it lists and what its
/// filters compare are the same time.
fn whole_second(at: DateTime<Utc>) -> DateTime<Utc> {
    at.duration_trunc(Duration::seconds(1)).unwrap()
}

fn user_json(id: i64, updated_at: DateTime<Utc>) -> Value {
    let at = updated_at.format("%Y-%m-%dT%H:%M:%S+00:00").to_string();
    json!({
        "type": "user", "id": id, "first_name": format!("First{id}"), "last_name": "Tester",
        "full_name": format!("First{id} Tester"), "email": format!("user{id}@example.org"),
        "created_at": at, "updated_at": at, "membership_status": "ACCEPTED", "membership_role": "VOLUNTEER"
    })
}

/// Parses `updated_after`/`updated_before` and `page` from a query.
fn query_params(query: &str) -> (Option<DateTime<Utc>>, Option<DateTime<Utc>>, u64) {
    let (mut after, mut before, mut page) = (None, None, 1);
    for (key, value) in url::form_urlencoded::parse(query.as_bytes()) {
        let at = || DateTime::parse_from_rfc3339(&value).ok().map(|t| t.with_timezone(&Utc));
        match key.as_ref() {
            "updated_after" => after = at(),
            "updated_before" => before = at(),
            "page" => page = value.parse().unwrap_or(1),
            _ => {}
        }
    }
    (after, before, page.max(1))
}

async fn serve(mut stream: TcpStream, state: &State) -> std::io::Result<()> {
    let mut request = Vec::new();
    let mut buf = [0u8; 4096];
    while !request.windows(4).any(|w| w == b"\r\n\r\n") {
        let n = stream.read(&mut buf).await?;
        if n == 0 {
            return Ok(());
        }
        request.extend_from_slice(&buf[..n]);
    }
    state.requests.fetch_add(1, Ordering::Relaxed);
    let text = String::from_utf8_lossy(&request).into_owned();
    let target = text.split_whitespace().nth(1).unwrap_or("/").to_owned();
    let authorised = text.lines().any(|l| l.eq_ignore_ascii_case(&format!("authorization: Bearer {TOKEN}")));
    let (path, query) = target.split_once('?').unwrap_or((&target, ""));
    let defect = Defect::all().into_iter().find(|d| path.starts_with(&format!("/{}/v1/", d.path())));
    let Some(defect) = defect else { return respond(&mut stream, 404, None, b"{}").await };
    if !authorised {
        return respond(&mut stream, 401, Some(Utc::now()), br#"{"message":"Unauthenticated."}"#).await;
    }
    let armed = state.armed.lock().unwrap().contains(&defect);
    let rest = &path[defect.path().len() + 4..];
    if !armed {
        let body = good_answer(state, rest, query);
        return respond(&mut stream, 200, Some(Utc::now()), body.to_string().as_bytes()).await;
    }
    hostile_answer(&mut stream, state, defect, rest, query).await
}

/// A page (or a user) as a well-behaved VOMO answers it.
fn good_answer(state: &State, rest: &str, query: &str) -> Value {
    let users = state.users.lock().unwrap().clone();
    if let Some(id) = rest.strip_prefix("/users/") {
        let id: i64 = id.parse().unwrap_or(0);
        return match users.iter().find(|(u, _)| *u == id) {
            Some((id, at)) => json!({ "data": user_json(*id, *at) }),
            None => json!({ "message": "not found" }),
        };
    }
    let (_, _, page) = query_params(query);
    envelope(&matching(state, query), page, None)
}

/// The users a query's `updated_after`/`updated_before` select, by id.
fn matching(state: &State, query: &str) -> Vec<(i64, DateTime<Utc>)> {
    let (after, before, _) = query_params(query);
    let mut matching: Vec<(i64, DateTime<Utc>)> = state
        .users
        .lock()
        .unwrap()
        .iter()
        .copied()
        .filter(|(_, at)| after.is_none_or(|a| *at >= a) && before.is_none_or(|b| *at <= b))
        .collect();
    matching.sort();
    matching
}

fn envelope(users: &[(i64, DateTime<Utc>)], page: u64, total: Option<u64>) -> Value {
    let total = total.unwrap_or(users.len() as u64);
    let data: Vec<Value> =
        users.iter().skip((page as usize - 1) * 15).take(15).map(|(id, at)| user_json(*id, *at)).collect();
    json!({
        "data": data,
        "links": { "first": null, "last": null, "prev": null, "next": null },
        "meta": { "current_page": page, "per_page": 15, "total": total, "last_page": total.div_ceil(15).max(1) }
    })
}

async fn hostile_answer(
    stream: &mut TcpStream,
    state: &State,
    defect: Defect,
    rest: &str,
    query: &str,
) -> std::io::Result<()> {
    let good = good_answer(state, rest, query).to_string();
    let date = |text: &str| DateTime::parse_from_rfc2822(text).unwrap().with_timezone(&Utc);
    let (_, _, page) = query_params(query);
    match defect {
        Defect::FutureDate => {
            respond(stream, 200, Some(date("Fri, 01 Jan 2100 00:00:00 GMT")), good.as_bytes()).await
        }
        Defect::PastDate => {
            respond(stream, 200, Some(date("Mon, 01 Jan 1990 00:00:00 GMT")), good.as_bytes()).await
        }
        Defect::NoDate => respond(stream, 200, None, good.as_bytes()).await,
        Defect::GarbageDate => respond_with(stream, 200, "Date: yesterday-ish\r\n", good.as_bytes()).await,
        Defect::EndlessBody => {
            let head = format!(
                "HTTP/1.1 200 OK\r\nDate: {}\r\nContent-Type: application/json\r\nConnection: close\r\n\r\n",
                http_date(Utc::now())
            );
            stream.write_all(head.as_bytes()).await?;
            stream.write_all(br#"{"data":["#).await?;
            let chunk = vec![b' '; 1 << 16];
            // 300 MB unless the client hangs up first.
            for _ in 0..4800 {
                stream.write_all(&chunk).await?;
            }
            Ok(())
        }
        Defect::ImplausibleTotal => {
            let users = state.users.lock().unwrap().clone();
            let body = envelope(&users, page, Some(1_000_000_000_000));
            respond(stream, 200, Some(Utc::now()), body.to_string().as_bytes()).await
        }
        Defect::EmptyPagesBeforeTheEnd => {
            let users = matching(state, query);
            let shown: Vec<_> = if page == 1 { users } else { Vec::new() };
            let body = envelope(&shown, 1, Some(15_000));
            let mut body = body;
            body["meta"]["current_page"] = json!(page);
            respond(stream, 200, Some(Utc::now()), body.to_string().as_bytes()).await
        }
        Defect::IgnoresFilter => {
            let mut users = state.users.lock().unwrap().clone();
            users.sort();
            respond(stream, 200, Some(Utc::now()), envelope(&users, page, None).to_string().as_bytes()).await
        }
        Defect::LastPageLies => {
            let mut body: Value = serde_json::from_str(&good).unwrap();
            body["meta"]["last_page"] = json!(1000);
            respond(stream, 200, Some(Utc::now()), body.to_string().as_bytes()).await
        }
        Defect::OneUnreadableUser | Defect::UnreadableId => {
            let mut body: Value = serde_json::from_str(&good).unwrap();
            if let Some(first) = body["data"].get_mut(0) {
                first["email"] = json!(PRIVATE_EMAIL);
                first["first_name"] = json!({ "nested": PRIVATE_NAME });
                if defect == Defect::UnreadableId {
                    first["id"] = json!([PRIVATE_EMAIL]);
                }
            }
            respond(stream, 200, Some(Utc::now()), body.to_string().as_bytes()).await
        }
        Defect::HugeErrorBody => {
            let body = format!("<html>{}</html>", "internal error ".repeat(70_000));
            respond(stream, 500, Some(Utc::now()), body.as_bytes()).await
        }
    }
}

fn http_date(at: DateTime<Utc>) -> String {
    at.format("%a, %d %b %Y %H:%M:%S GMT").to_string()
}

async fn respond(
    stream: &mut TcpStream,
    status: u16,
    date: Option<DateTime<Utc>>,
    body: &[u8],
) -> std::io::Result<()> {
    let date = date.map(|d| format!("Date: {}\r\n", http_date(d))).unwrap_or_default();
    respond_with(stream, status, &date, body).await
}

async fn respond_with(
    stream: &mut TcpStream,
    status: u16,
    headers: &str,
    body: &[u8],
) -> std::io::Result<()> {
    let head = format!(
        "HTTP/1.1 {status} X\r\n{headers}Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes()).await?;
    stream.write_all(body).await?;
    stream.shutdown().await
}
