//! The binary's command line: config validation and first-start credentials.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_upgate");

fn clean_command(dir: &std::path::Path) -> Command {
    let mut c = Command::new(BIN);
    c.env_remove("UPGATE_ROOT_ACCESS_KEY")
        .env_remove("UPGATE_ROOT_SECRET_KEY")
        .env("UPGATE__STORAGE__DATA_DIR", dir)
        .env("UPGATE__SERVER__LISTEN", "127.0.0.1:0")
        .env("UPGATE__ADMIN__LISTEN", "127.0.0.1:0");
    c
}

#[test]
fn bad_config_fails_at_start_listing_every_problem() {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("bad.toml");
    std::fs::write(
        &file,
        "[s3]\nmax_presign_expiry_secs = 604801\n[buckets.Bad_Name]\nallowed_types = [\"text/html\"]\n",
    )
    .expect("write");
    for sub in ["check-config", "serve"] {
        let out = clean_command(dir.path())
            .args([sub, "--config"])
            .arg(&file)
            .output()
            .expect("run");
        assert_eq!(out.status.code(), Some(2), "{sub}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("3 problem(s)"), "{sub}: {err}");
        assert!(err.contains("max_presign_expiry_secs"), "{err}");
        assert!(err.contains("Bad_Name"), "{err}");
        assert!(err.contains("text/html"), "{err}");
    }
    // Environment overrides are validated the same way.
    let out = clean_command(dir.path())
        .arg("check-config")
        .env("UPGATE__SERVER__MAX_CONNECTIONS", "0")
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("max_connections"));
    let out = clean_command(dir.path())
        .arg("check-config")
        .output()
        .expect("run");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Starts `serve`, collects stdout until the listener is up (its log line goes to stdout too),
/// then kills it.
fn start_and_capture(dir: &std::path::Path) -> String {
    let mut child = clean_command(dir)
        .arg("serve")
        .env("RUST_LOG", "info")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn");
    let stdout = child.stdout.take().expect("stdout");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let mut out = String::new();
    let deadline = Instant::now() + Duration::from_secs(20);
    while Instant::now() < deadline {
        if let Ok(line) = rx.recv_timeout(Duration::from_millis(200)) {
            out.push_str(&line);
            out.push('\n');
            if line.contains("upgate listening") {
                break;
            }
        }
    }
    let _ = child.kill();
    let _ = child.wait();
    out
}

#[test]
fn first_start_generates_root_credentials_once_and_keeps_them_private() {
    let dir = tempfile::tempdir().expect("tempdir");
    let first = start_and_capture(dir.path());
    assert!(first.contains("Generated root credentials"), "{first}");
    let creds = dir.path().join("root-credentials");
    let text = std::fs::read_to_string(&creds).expect("stored");
    let mut lines = text.lines();
    let (id, secret) = (lines.next().expect("id"), lines.next().expect("secret"));
    assert!(first.contains(id) && first.contains(secret));
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&creds)
            .expect("meta")
            .permissions()
            .mode()
            & 0o777;
        assert_eq!(mode, 0o600);
    }
    let second = start_and_capture(dir.path());
    assert!(second.contains("upgate listening"), "{second}");
    assert!(!second.contains(secret), "secret printed again: {second}");
}

#[test]
fn json_logs_with_a_flag_carry_no_secrets() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut child = clean_command(dir.path())
        .args(["serve", "--log-format", "json"])
        .env("RUST_LOG", "info")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn");
    let stdout = child.stdout.take().expect("stdout");
    let mut lines = BufReader::new(stdout).lines().map_while(Result::ok);
    let mut json_line = None;
    let deadline = Instant::now() + Duration::from_secs(20);
    for line in lines.by_ref() {
        if line.contains("upgate listening") {
            json_line = Some(line);
            break;
        }
        assert!(Instant::now() < deadline, "no listening line");
    }
    let _ = child.kill();
    let _ = child.wait();
    let line = json_line.expect("listening line");
    let v: serde_json::Value = serde_json::from_str(&line).expect("a JSON log line");
    assert_eq!(v["fields"]["message"], "upgate listening");
}

/// The subcommands `upgate [PATH...] --help` lists under "Commands:" (without `help`).
fn subcommands(path: &[&str]) -> Vec<String> {
    let out = Command::new(BIN)
        .args(path)
        .arg("--help")
        .output()
        .expect("help runs");
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    let Some((_, rest)) = text.split_once("Commands:\n") else {
        return Vec::new();
    };
    rest.lines()
        .take_while(|l| l.starts_with("  "))
        .filter_map(|l| l.split_whitespace().next())
        .filter(|c| *c != "help")
        .map(str::to_string)
        .collect()
}

#[test]
fn every_command_says_what_it_does_and_shows_an_example() {
    let mut checked = 0;
    let mut queue: Vec<Vec<String>> = vec![Vec::new()];
    while let Some(path) = queue.pop() {
        let args: Vec<&str> = path.iter().map(String::as_str).collect();
        let out = Command::new(BIN)
            .args(&args)
            .arg("--help")
            .output()
            .expect("help runs");
        let help = String::from_utf8_lossy(&out.stdout).to_string();
        assert!(out.status.success(), "{path:?}");
        assert!(
            help.contains("Example"),
            "no example in `upgate {path:?} --help`:\n{help}"
        );
        let about = help.lines().next().unwrap_or("");
        assert!(about.len() > 10, "no description for {path:?}: {help}");
        checked += 1;
        for sub in subcommands(&args) {
            let mut next = path.clone();
            next.push(sub);
            queue.push(next);
        }
    }
    // serve, check-config, receipt (+ verify), admin (+ 8), and the binary itself.
    assert!(checked >= 14, "{checked}");
}
