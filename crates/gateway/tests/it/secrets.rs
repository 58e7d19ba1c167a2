//! The gateway binary as a process. It never writes a secret to its log: not the API keys (right
//! or wrong ones presented), not the Redis password, whether Redis accepts it, refuses it, or the
//! URL is malformed. And it runs with transparent huge pages off (its memory stays flat).

use std::{
    io::{BufRead, BufReader, Read, Write},
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use redrec_testkit::{TestSpace, with_user};

const API_KEY: &str = "key-SECRET-4d1f";
const WRONG_KEY: &str = "wrong-SECRET-77aa";
const PASSWORD: &str = "pw-SECRET-9c3e";
const BAD_PASSWORD: &str = "badpw-SECRET-0b5d";

fn gateway(space: &TestSpace, redis_url: &str) -> Child {
    Command::new(env!("CARGO_BIN_EXE_redrec-gateway"))
        .env_remove("REDREC_CONFIG")
        .env("REDREC_REDIS__URL", redis_url)
        .env("REDREC_INDEX__NAMESPACE", space.ns.name())
        .env("REDREC_GATEWAY__LISTEN", "127.0.0.1:0")
        .env("REDREC_GATEWAY__API_KEYS", format!("[\"{API_KEY}\"]"))
        .env("REDREC_GATEWAY__LOG_FORMAT", "json")
        .env("REDREC_GATEWAY__POPULARITY_FOLD_SECS", "0")
        // no model: the embedder error path logs too
        .env("REDREC_EMBEDDER__MODEL_DIR", "/nonexistent/model")
        .env("RUST_LOG", "debug")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start redrec-gateway")
}

/// Everything the child writes to stdout, collected by a thread.
type Log = std::sync::Arc<std::sync::Mutex<String>>;

/// Collects stdout into a shared log and returns the address from the "listening" line.
fn wait_listening(child: &mut Child) -> (String, Log) {
    let stdout = child.stdout.take().unwrap();
    let log: Log = Default::default();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn({
        let log = log.clone();
        move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if line.contains("listening")
                    && let Some(at) = line.find("\"address\":\"")
                {
                    let rest = &line[at + 11..];
                    let _ = tx.send(rest[..rest.find('"').unwrap()].to_owned());
                }
                let mut l = log.lock().unwrap();
                l.push_str(&line);
                l.push('\n');
            }
        }
    });
    match rx.recv_timeout(Duration::from_secs(60)) {
        Ok(addr) => (addr, log),
        Err(_) => panic!(
            "the gateway did not say where it listens:\n{}",
            log.lock().unwrap()
        ),
    }
}

fn http(addr: &str, request: &str) -> String {
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    s.write_all(request.as_bytes()).unwrap();
    let mut out = String::new();
    let _ = s.read_to_string(&mut out);
    out
}

fn post_event(addr: &str, key: &str) -> String {
    let body = r#"{"type":"click","user_id":"u1","item_id":"nope"}"#;
    http(
        addr,
        &format!(
            "POST /v1/events HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {key}\r\n\
             Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        ),
    )
}

/// Stops the gateway (SIGTERM, then KILL) and returns everything it logged.
fn stop(mut child: Child, log: Log) -> String {
    let _ = Command::new("kill")
        .arg("-TERM")
        .arg(child.id().to_string())
        .status();
    let deadline = Instant::now() + Duration::from_secs(20);
    while child.try_wait().unwrap().is_none() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = child.kill();
    let _ = child.wait();
    // the reader thread ends at EOF, shortly after the exit
    std::thread::sleep(Duration::from_millis(200));
    let mut out = log.lock().unwrap().clone();
    if let Some(mut e) = child.stderr.take() {
        let _ = e.read_to_string(&mut out);
    }
    out
}

fn assert_clean(log: &str, what: &str) {
    for secret in [API_KEY, WRONG_KEY, PASSWORD, BAD_PASSWORD] {
        assert!(
            !log.contains(secret),
            "{what}: the log holds the secret `{secret}`:\n{log}"
        );
    }
}

#[tokio::test]
async fn secrets_never_reach_the_log() {
    let space = TestSpace::new("gw_secrets");
    let user = space.acl_user(
        "s",
        PASSWORD,
        &["~*".to_owned(), "&*".to_owned(), "+@all".to_owned()],
    );
    let base = redrec_testkit::redis_url();

    // 1. Redis accepts the password; right and wrong API keys are presented.
    let mut gw = gateway(&space, &with_user(&base, &user.name, PASSWORD));
    let (addr, log) = wait_listening(&mut gw);
    let ok = post_event(&addr, API_KEY);
    assert!(!ok.starts_with("HTTP/1.1 401"), "{ok}");
    let denied = post_event(&addr, WRONG_KEY);
    assert!(denied.starts_with("HTTP/1.1 401"), "{denied}");
    let ready = http(
        &addr,
        "GET /readyz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    );
    assert!(ready.contains("\"redis\":\"ok\""), "{ready}");
    let log = stop(gw, log);
    assert!(
        log.contains("/v1/events"),
        "requests are logged at debug: {log}"
    );
    assert_clean(&log, "accepted password");

    // 2. Redis refuses the password: readiness says so, the log still holds no password.
    let mut gw = gateway(&space, &with_user(&base, &user.name, BAD_PASSWORD));
    let (addr, log) = wait_listening(&mut gw);
    let ready = http(
        &addr,
        "GET /readyz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    );
    assert!(ready.starts_with("HTTP/1.1 503"), "{ready}");
    assert_clean(&ready, "readyz body");
    let _ = post_event(&addr, API_KEY);
    let log = stop(gw, log);
    assert_clean(&log, "refused password");

    // 3. A malformed URL stops the start; the message does not echo the password.
    let out = Command::new(env!("CARGO_BIN_EXE_redrec-gateway"))
        .env_remove("REDREC_CONFIG")
        .env(
            "REDREC_REDIS__URL",
            format!("redis://{}:{PASSWORD}@127.0.0.1:notaport", user.name),
        )
        .env("REDREC_GATEWAY__LISTEN", "127.0.0.1:0")
        .env("REDREC_EMBEDDER__MODEL_DIR", "/nonexistent/model")
        .output()
        .unwrap();
    assert!(!out.status.success(), "a malformed URL must stop the start");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        text.contains("redis.url"),
        "the error names the setting: {text}"
    );
    assert_clean(&text, "malformed URL");
}

/// mimalloc advises huge pages for its arenas; the binary turns them off for the whole process
/// (`PR_SET_THP_DISABLE`), which the kernel reports in `/proc/<pid>/status`. Without it a soak's
/// resident set rose in 12-20 MiB steps at constant load (docs/RELIABILITY.md, soak run 6).
#[cfg(target_os = "linux")]
#[tokio::test]
async fn the_binary_runs_with_transparent_huge_pages_off() {
    let space = TestSpace::new("gw_thp");
    let mut gw = gateway(&space, &redrec_testkit::redis_url());
    let (_addr, log) = wait_listening(&mut gw);
    let status = std::fs::read_to_string(format!("/proc/{}/status", gw.id())).unwrap();
    let log = stop(gw, log);
    let thp = status
        .lines()
        .find_map(|l| l.strip_prefix("THP_enabled:"))
        .map(str::trim);
    // Kernels before 5.0 do not report the flag; every kernel these tests run on does.
    assert_eq!(
        thp,
        Some("0"),
        "THP must be off for the gateway:\n{status}\n{log}"
    );
    assert!(
        !log.contains("cannot turn transparent huge pages off"),
        "the prctl failed: {log}"
    );
}
