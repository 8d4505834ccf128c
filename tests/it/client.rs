//! `upgate upload|files|link`: the real binary as a client of a gateway started by the test —
//! uploads with receipts verified, an interrupted upload resumed from the state file, files
//! listed, downloaded, deleted, drop links made and used, and exit codes that say what failed.

use std::path::Path;
use std::process::{Command, Output};

use serde_json::Value;

use crate::api::tenant;
use crate::common::*;

const BIN: &str = env!("CARGO_BIN_EXE_upgate");
const MASTER: &str = "mk1:AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";

fn config() -> String {
    format!(
        "[storage.encryption]\nkeys = {MASTER:?}\n[accounts]\nenabled = true\n\
         [ratelimit.token_exchange]\nip = {{ rate = 0.0, burst = 1 }}\n\
         principal = {{ rate = 0.0, burst = 1 }}\n"
    )
}

/// Runs the binary off the test's runtime (the gateway runs on it).
async fn run(args: Vec<String>, env: Vec<(&'static str, String)>) -> Output {
    tokio::task::spawn_blocking(move || {
        let mut c = Command::new(BIN);
        c.args(&args)
            .env_remove("UPGATE_TOKEN")
            .env_remove("UPGATE_API_KEY")
            .env_remove("UPGATE_ENDPOINT");
        for (k, v) in env {
            c.env(k, v);
        }
        c.output().expect("runs")
    })
    .await
    .expect("joins")
}

fn args(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| s.to_string()).collect()
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn write(dir: &Path, name: &str, data: &[u8]) -> String {
    let p = dir.join(name);
    std::fs::write(&p, data).expect("write");
    p.display().to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_client_uploads_with_receipts_resumes_and_manages_files_and_links() {
    let app = spawn_app_with(&config()).await;
    let t = tenant(&app, "acme-cli").await;
    let dir = tempfile::tempdir().expect("tempdir");
    let state = dir.path().join("state.json").display().to_string();
    let endpoint = app.endpoint();
    let key_env = || {
        vec![
            ("UPGATE_API_KEY", t.api_key.clone()),
            ("UPGATE_ENDPOINT", endpoint.clone()),
        ]
    };

    // Two files, JSON lines out, receipts verified against the gateway's JWKS.
    let a = pdf(1_500_000);
    let b = png(40_000);
    let fa = write(dir.path(), "report.pdf", &a);
    let fb = write(dir.path(), "chart.png", &b);
    let out = run(
        args(&["upload", "--json", "--state-file", &state, &fa, &fb]),
        key_env(),
    )
    .await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let lines: Vec<Value> = text(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).expect("json line"))
        .collect();
    assert_eq!(lines.len(), 2);
    assert_eq!(lines[0]["sha256"], sha256_hex(&a));
    assert_eq!(lines[1]["sha256"], sha256_hex(&b));
    assert!(
        lines.iter().all(|l| l["receipt_verified"] == true),
        "{lines:?}"
    );
    assert_eq!(lines[0]["receipt"]["sha256"], sha256_hex(&a));

    // An interrupted upload (as Ctrl-C or a lost network would leave it) continues from where
    // it stopped: the same file record, the bytes already sent not sent again.
    let big = pdf(6_000_000);
    let fbig = write(dir.path(), "scan.pdf", &big);
    let resumable = |extra: &[&str]| {
        let mut a = args(&[
            "upload",
            "--json",
            "--state-file",
            &state,
            "--chunk-bytes",
            "1048576",
        ]);
        a.extend(args(extra));
        a.push(fbig.clone());
        a
    };
    let out = run(resumable(&["--stop-after", "3000000"]), key_env()).await;
    assert_eq!(out.status.code(), Some(130), "{}", text(&out.stderr));
    let kept = || -> Value {
        serde_json::from_str(&std::fs::read_to_string(&state).expect("state")).expect("json")
    };
    let entry = kept()
        .as_object()
        .expect("map")
        .values()
        .next()
        .expect("one kept upload")
        .clone();
    let url = entry["url"].as_str().expect("url").to_string();
    let (_, hm, _) = send(
        "HEAD",
        &url,
        &[
            ("authorization".into(), format!("Bearer {}", t.api_key)),
            ("tus-resumable".into(), "1.0.0".into()),
        ],
        Vec::new(),
    )
    .await;
    let offset: u64 = hm["upload-offset"].to_str().expect("h").parse().expect("n");
    assert!((3_000_000..6_000_000).contains(&offset), "{offset}");
    let out = run(resumable(&[]), key_env()).await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let done: Value = serde_json::from_str(text(&out.stdout).trim()).expect("json");
    assert_eq!(
        done["upload_id"], entry["upload_id"],
        "resumed the kept upload"
    );
    assert_eq!(done["sha256"], sha256_hex(&big));
    assert_eq!(done["receipt_verified"], true);
    assert_eq!(kept(), serde_json::json!({}), "nothing left to resume");

    // files ls / get / versions / rm.
    let out = run(args(&["files", "ls", "--json"]), key_env()).await;
    assert_eq!(out.status.code(), Some(0));
    let listed: Vec<Value> = text(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).expect("json"))
        .collect();
    assert_eq!(listed.len(), 3);
    let id = done["file_id"].as_str().expect("id").to_string();
    let got = dir.path().join("got.pdf").display().to_string();
    let out = run(args(&["files", "get", &id, "-o", &got]), key_env()).await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert_eq!(std::fs::read(&got).expect("read"), big);
    let out = run(args(&["files", "versions", &id]), key_env()).await;
    assert_eq!(text(&out.stdout).lines().count(), 1);
    let out = run(args(&["files", "ls", "--name", "chart"]), key_env()).await;
    assert!(text(&out.stdout).contains("chart.png") && !text(&out.stdout).contains("scan.pdf"));
    let out = run(args(&["files", "rm", &id]), key_env()).await;
    assert_eq!(out.status.code(), Some(0));
    let out = run(args(&["files", "get", &id, "-o", &got]), key_env()).await;
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("NotFound"),
        "{}",
        text(&out.stderr)
    );

    // A drop link made, used with --token until it is used up, listed, revoked.
    let out = run(
        args(&[
            "link",
            "create",
            "--json",
            "--files",
            "1",
            "--types",
            "application/pdf",
            "--note",
            "One PDF, please",
        ]),
        key_env(),
    )
    .await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let link: Value = serde_json::from_str(text(&out.stdout).trim()).expect("json");
    let token = link["token"].as_str().expect("token").to_string();
    assert!(
        link["drop_url"]
            .as_str()
            .expect("url")
            .ends_with(&format!("/drop#{token}"))
    );
    let tok_env = || {
        vec![
            ("UPGATE_TOKEN", token.clone()),
            ("UPGATE_ENDPOINT", endpoint.clone()),
        ]
    };
    let one = pdf(20_000);
    let f1 = write(dir.path(), "one.pdf", &one);
    let out = run(args(&["upload", "--state-file", &state, &f1]), tok_env()).await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("receipt verified"),
        "{}",
        text(&out.stderr)
    );
    let f2 = write(dir.path(), "two.pdf", &pdf(21_000));
    let out = run(args(&["upload", "--state-file", &state, &f2]), tok_env()).await;
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("AccessDenied"),
        "{}",
        text(&out.stderr)
    );
    let out = run(args(&["link", "ls"]), key_env()).await;
    let listed: Value =
        serde_json::from_str(text(&out.stdout).lines().next().expect("one")).expect("json");
    assert_eq!(listed["uploads_used"], 1);
    assert!(!text(&out.stdout).contains(&token));
    let out = run(
        args(&["link", "revoke", link["token_id"].as_str().expect("id")]),
        key_env(),
    )
    .await;
    assert_eq!(out.status.code(), Some(0));

    // Exit codes: refused content (1, with its code), a local problem (2), no gateway (3).
    let fake = write(dir.path(), "fake.pdf", &png(5000));
    let out = run(args(&["upload", "--state-file", &state, &fake]), key_env()).await;
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("ContentTypeMismatch"),
        "{}",
        text(&out.stderr)
    );
    let out = run(
        args(&["upload", "--state-file", &state, "/nonexistent/x.pdf"]),
        key_env(),
    )
    .await;
    assert_eq!(out.status.code(), Some(2));
    let out = run(
        args(&[
            "upload",
            "--state-file",
            &state,
            "--retries",
            "0",
            "--endpoint",
            "http://127.0.0.1:9",
            &f1,
        ]),
        vec![("UPGATE_API_KEY", t.api_key.clone())],
    )
    .await;
    assert_eq!(out.status.code(), Some(3), "{}", text(&out.stderr));
    // A bad credential is one plain line with the code.
    let out = run(
        args(&["files", "ls"]),
        vec![
            ("UPGATE_API_KEY", "ugk_x_y".into()),
            ("UPGATE_ENDPOINT", endpoint.clone()),
        ],
    )
    .await;
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(text(&out.stderr).lines().count(), 1);
    assert!(
        text(&out.stderr).contains("Unauthorized"),
        "{}",
        text(&out.stderr)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_client_uploads_with_s3_keys_and_resumes_a_multipart_upload() {
    let app = spawn_app().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let state = dir.path().join("state.json").display().to_string();
    let endpoint = app.endpoint();
    let env = || {
        vec![
            ("AWS_ACCESS_KEY_ID", ACCESS_KEY.to_string()),
            ("AWS_SECRET_ACCESS_KEY", SECRET_KEY.to_string()),
            ("UPGATE_ENDPOINT", endpoint.clone()),
        ]
    };
    let small = pdf(300_000);
    let fsmall = write(dir.path(), "small.pdf", &small);
    let big = pdf(12_000_000);
    let fbig = write(dir.path(), "big.pdf", &big);
    let s3 = |extra: &[&str], file: &str| {
        let mut a = args(&[
            "upload",
            "--json",
            "--state-file",
            &state,
            "--bucket",
            BUCKET,
            "--key-prefix",
            "cli/",
            "--chunk-bytes",
            "5242880",
        ]);
        a.extend(args(extra));
        a.push(file.to_string());
        a
    };
    // One PUT with the SHA-256 signed.
    let out = run(s3(&[], &fsmall), env()).await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let line: Value = serde_json::from_str(text(&out.stdout).trim()).expect("json");
    assert_eq!(
        (line["key"].as_str(), line["verified"].as_bool()),
        (Some("cli/small.pdf"), Some(true))
    );
    assert_eq!(get_bytes(&app, "cli/small.pdf").await, small);
    // Multipart, interrupted after two of three parts, then resumed: only the third is sent.
    let out = run(
        s3(&["--parallel", "1", "--stop-after", "6000000"], &fbig),
        env(),
    )
    .await;
    assert_eq!(out.status.code(), Some(130), "{}", text(&out.stderr));
    let kept: Value =
        serde_json::from_str(&std::fs::read_to_string(&state).expect("state")).expect("json");
    assert_eq!(kept.as_object().expect("map").len(), 1);
    let s3c = app.s3();
    let uploads = s3c
        .list_multipart_uploads()
        .bucket(BUCKET)
        .send()
        .await
        .expect("list uploads");
    let open = &uploads.uploads()[0];
    let parts = s3c
        .list_parts()
        .bucket(BUCKET)
        .key("cli/big.pdf")
        .upload_id(open.upload_id().expect("id"))
        .send()
        .await
        .expect("parts");
    assert_eq!(parts.parts().len(), 2, "two parts before the interruption");
    let out = run(s3(&["--parallel", "3"], &fbig), env()).await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let line: Value = serde_json::from_str(text(&out.stdout).trim()).expect("json");
    assert_eq!(line["sha256"], sha256_hex(&big));
    assert_eq!(line["verified"], true);
    assert_eq!(get_bytes(&app, "cli/big.pdf").await, big);
    assert_eq!(
        serde_json::from_str::<Value>(&std::fs::read_to_string(&state).expect("state"))
            .expect("json"),
        serde_json::json!({})
    );
    // Wrong keys: refused with the S3 code, exit 1.
    let out = run(
        s3(&[], &fsmall),
        vec![
            ("AWS_ACCESS_KEY_ID", ACCESS_KEY.to_string()),
            ("AWS_SECRET_ACCESS_KEY", "not-the-secret".to_string()),
            ("UPGATE_ENDPOINT", endpoint.clone()),
        ],
    )
    .await;
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("SignatureDoesNotMatch"),
        "{}",
        text(&out.stderr)
    );
}
