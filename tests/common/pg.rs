//! A throwaway PostgreSQL for tests. With `VOMO_SYNC_TEST_PG` set (a server
//! URL without a database), that server is used. Otherwise one cluster per
//! test binary is made with the system's `initdb` and `postgres` (as the
//! `postgres` user when running as root), on a free port in a temp dir; a
//! watchdog stops it and removes the dir when the test process exits. Each
//! test gets its own fresh database.
//!
//! Without PostgreSQL the tests that need it say so on stderr and return;
//! with `VOMO_SYNC_REQUIRE_PG=1` (CI) they fail instead.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use sqlx::{Connection, Executor, PgConnection, Row};
use vomo_sync::domain::User;

static SERVER: OnceLock<Result<String, String>> = OnceLock::new();
static DATABASES: AtomicU32 = AtomicU32::new(0);

/// A URL to a new, empty database, or `None` when PostgreSQL is not
/// available here (and not required).
pub async fn fresh_database() -> Option<String> {
    let base = match SERVER.get_or_init(start_or_find) {
        Ok(base) => base.clone(),
        Err(reason) => {
            let required = std::env::var("VOMO_SYNC_REQUIRE_PG").as_deref() == Ok("1");
            assert!(
                !required,
                "PostgreSQL is required here (VOMO_SYNC_REQUIRE_PG=1) but unavailable: {reason}"
            );
            eprintln!(
                "SKIPPED (no PostgreSQL: {reason}); install PostgreSQL or set VOMO_SYNC_TEST_PG to run it"
            );
            return None;
        }
    };
    let name = format!("vomo_test_{}_{}", std::process::id(), DATABASES.fetch_add(1, Ordering::SeqCst));
    let mut admin =
        PgConnection::connect(&format!("{base}/postgres")).await.expect("connect to test PostgreSQL");
    admin
        .execute(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
        .await
        .expect("create test database");
    Some(format!("{base}/{name}"))
}

fn start_or_find() -> Result<String, String> {
    if let Ok(url) = std::env::var("VOMO_SYNC_TEST_PG") {
        return Ok(url.trim_end_matches('/').to_owned());
    }
    let bin = find_bin_dir().ok_or("initdb not found on PATH or under /usr/lib/postgresql")?;
    start_cluster(&bin)
}

fn find_bin_dir() -> Option<PathBuf> {
    let on_path = std::env::var_os("PATH")
        .into_iter()
        .flat_map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .find(|dir| dir.join("initdb").is_file() && dir.join("postgres").is_file());
    on_path.or_else(|| {
        let mut versions: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
            .ok()?
            .filter_map(|e| e.ok().map(|e| e.path().join("bin")))
            .filter(|bin| bin.join("initdb").is_file())
            .collect();
        versions.sort();
        versions.pop()
    })
}

fn is_root() -> bool {
    Command::new("id").arg("-u").output().is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}

/// Runs a program, as `postgres` when we are root (PostgreSQL refuses root).
fn as_pg_user(program: &Path, root: bool) -> Command {
    if root {
        let mut command = Command::new("runuser");
        command.args(["-u", "postgres", "--"]).arg(program);
        command
    } else {
        Command::new(program)
    }
}

fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind a free port");
    listener.local_addr().expect("local addr").port()
}

fn start_cluster(bin: &Path) -> Result<String, String> {
    let root = is_root();
    let dir = std::env::temp_dir().join(format!("vomo-sync-pg-{}-{}", std::process::id(), free_port()));
    std::fs::create_dir_all(&dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    if root {
        let chown = Command::new("chown").args(["postgres:postgres"]).arg(&dir).status();
        if !chown.is_ok_and(|s| s.success()) {
            return Err("cannot hand the temp dir to the postgres user".into());
        }
    }
    let data = dir.join("data");
    let init = as_pg_user(&bin.join("initdb"), root)
        .arg("-D")
        .arg(&data)
        .args(["-A", "trust", "-U", "postgres", "-E", "UTF8", "--no-sync"])
        .output()
        .map_err(|e| format!("initdb: {e}"))?;
    if !init.status.success() {
        return Err(format!("initdb failed: {}", String::from_utf8_lossy(&init.stderr)));
    }
    let port = free_port();
    // The watchdog runs beside postgres and stops it (and removes the dir)
    // once this test process is gone: statics are never dropped.
    let script = format!(
        "{postgres} -D {data} -p {port} -k {dir} -c listen_addresses=127.0.0.1 -c fsync=off \
         -c synchronous_commit=off -c full_page_writes=off -c max_connections=300 > {dir}/log 2>&1 & \
         pg=$!; while [ -d /proc/{parent} ] && kill -0 $pg 2>/dev/null; do sleep 1; done; \
         kill -INT $pg 2>/dev/null; wait $pg; rm -rf {dir}",
        postgres = bin.join("postgres").display(),
        data = data.display(),
        dir = dir.display(),
        parent = std::process::id(),
    );
    as_pg_user(Path::new("/bin/sh"), root)
        .args(["-c", &script])
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .map_err(|e| format!("cannot start postgres: {e}"))?;
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        let log = std::fs::read_to_string(dir.join("log")).unwrap_or_default();
        if log.contains("ready to accept connections")
            && std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
        {
            return Ok(format!("postgres://postgres@127.0.0.1:{port}"));
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let log = std::fs::read_to_string(dir.join("log")).unwrap_or_default();
    Err(format!("postgres did not become ready on port {port}: {log}"))
}

/// The users of a destination table, as VOMO users (deleted rows as `None`).
#[allow(dead_code)] // the store benchmark includes this file and reads no tables
pub async fn table_users(url: &str, table: &str) -> std::collections::BTreeMap<i64, Option<User>> {
    let mut conn = PgConnection::connect(url).await.unwrap();
    let sql = format!(
        "SELECT vomo_user_id, first_name, last_name, full_name, email, address, phone, birthday, gender,
         created_at, updated_at, user_status, membership_status, membership_role, deleted_at FROM {table}"
    );
    let rows = sqlx::query(sqlx::AssertSqlSafe(sql)).fetch_all(&mut conn).await.unwrap();
    rows.iter()
        .map(|row| {
            let id: i64 = row.get("vomo_user_id");
            let deleted: Option<chrono::DateTime<chrono::Utc>> = row.get("deleted_at");
            let user = deleted.is_none().then(|| User {
                id,
                first_name: row.get("first_name"),
                last_name: row.get("last_name"),
                full_name: row.get("full_name"),
                email: row.get("email"),
                address: row.get("address"),
                phone: row.get("phone"),
                birthday: row.get("birthday"),
                gender: row.get("gender"),
                created_at: row.get("created_at"),
                updated_at: row.get("updated_at"),
                user_status: row.get("user_status"),
                membership_status: row.get("membership_status"),
                membership_role: row.get("membership_role"),
            });
            (id, user)
        })
        .collect()
}

/// A PostgreSQL cluster of one test's own, which the test may stop and
/// start again (a state DB that goes away and comes back). Removed when
/// dropped. `None` when PostgreSQL's binaries are not here (and not
/// required) or when the tests use an external server, which they must not
/// stop.
#[allow(dead_code)] // only the state-DB fault tests stop a server
pub struct StoppableCluster {
    bin: PathBuf,
    dir: PathBuf,
    port: u16,
    root: bool,
}

#[allow(dead_code)]
impl StoppableCluster {
    pub fn start() -> Option<Self> {
        let required = std::env::var("VOMO_SYNC_REQUIRE_PG").as_deref() == Ok("1");
        let Some(bin) = find_bin_dir() else {
            assert!(!required, "PostgreSQL is required here (VOMO_SYNC_REQUIRE_PG=1) but initdb is missing");
            eprintln!("SKIPPED (no PostgreSQL binaries to start a cluster of this test's own)");
            return None;
        };
        let root = is_root();
        let dir =
            std::env::temp_dir().join(format!("vomo-sync-pg-own-{}-{}", std::process::id(), free_port()));
        std::fs::create_dir_all(&dir).unwrap();
        if root {
            assert!(Command::new("chown").args(["postgres:postgres"]).arg(&dir).status().unwrap().success());
        }
        let init = as_pg_user(&bin.join("initdb"), root)
            .arg("-D")
            .arg(dir.join("data"))
            .args(["-A", "trust", "-U", "postgres", "-E", "UTF8", "--no-sync"])
            .output()
            .unwrap();
        assert!(init.status.success(), "initdb: {}", String::from_utf8_lossy(&init.stderr));
        let cluster = Self { bin, dir, port: free_port(), root };
        cluster.resume();
        Some(cluster)
    }

    pub fn url(&self, database: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{database}", self.port)
    }

    /// Starts (again) on the same port, waiting until it accepts connections.
    pub fn resume(&self) {
        let options = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=100",
            self.port,
            self.dir.display()
        );
        let out = as_pg_user(&self.bin.join("pg_ctl"), self.root)
            .arg("-D")
            .arg(self.dir.join("data"))
            .args(["-l"])
            .arg(self.dir.join("log"))
            .args(["-o", &options, "-w", "start"])
            .output()
            .unwrap();
        assert!(out.status.success(), "pg_ctl start: {}", String::from_utf8_lossy(&out.stderr));
    }

    /// Stops at once, as a crash or a network cut would look to clients.
    pub fn halt(&self) {
        let out = as_pg_user(&self.bin.join("pg_ctl"), self.root)
            .arg("-D")
            .arg(self.dir.join("data"))
            .args(["-m", "immediate", "-w", "stop"])
            .output()
            .unwrap();
        assert!(out.status.success(), "pg_ctl stop: {}", String::from_utf8_lossy(&out.stderr));
    }
}

impl Drop for StoppableCluster {
    fn drop(&mut self) {
        let _ = as_pg_user(&self.bin.join("pg_ctl"), self.root)
            .arg("-D")
            .arg(self.dir.join("data"))
            .args(["-m", "immediate", "-w", "stop"])
            .output();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
