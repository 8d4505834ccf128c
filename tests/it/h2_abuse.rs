//! HTTP/2 abuse, spoken frame by frame over a plain TCP connection (h2c with prior knowledge):
//! rapid reset, a CONTINUATION flood, a SETTINGS flood and window-update abuse. Each must be
//! bounded — the abusive connection is closed (with a GOAWAY where the protocol names an error)
//! — while another client is served as usual.

use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::common::{TestApp, spawn_app};

const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
const HEADERS: u8 = 0x1;
const RST_STREAM: u8 = 0x3;
const SETTINGS: u8 = 0x4;
const GOAWAY: u8 = 0x7;
const WINDOW_UPDATE: u8 = 0x8;
const CONTINUATION: u8 = 0x9;
const END_STREAM: u8 = 0x1;
const END_HEADERS: u8 = 0x4;

fn frame(kind: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
    let len = u32::try_from(payload.len()).expect("len");
    let mut v = len.to_be_bytes()[1..].to_vec();
    v.push(kind);
    v.push(flags);
    v.extend_from_slice(&stream.to_be_bytes());
    v.extend_from_slice(payload);
    v
}

/// `GET /healthz` as an HPACK block: `:method GET`, `:scheme http` (static table), `:path`
/// as a literal without indexing.
fn get_healthz() -> Vec<u8> {
    let mut v = vec![0x82, 0x86, 0x04, 8];
    v.extend_from_slice(b"/healthz");
    v
}

async fn open(app: &TestApp) -> TcpStream {
    let mut s = TcpStream::connect(app.addr).await.expect("connect");
    let mut hello = PREFACE.to_vec();
    hello.extend(frame(SETTINGS, 0, 0, &[]));
    s.write_all(&hello).await.expect("preface");
    s
}

/// Reads frames until the server closes or `limit` passes: the GOAWAY error code if one came,
/// and whether the connection closed.
async fn drain(s: &mut TcpStream, limit: Duration) -> (Option<u32>, bool) {
    let mut buf = Vec::new();
    let mut chunk = vec![0u8; 64 * 1024];
    let deadline = Instant::now() + limit;
    let closed = loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, s.read(&mut chunk)).await {
            Ok(Ok(0)) | Ok(Err(_)) => break true,
            Ok(Ok(n)) => buf.extend_from_slice(&chunk[..n]),
            Err(_) => break false,
        }
    };
    let mut i = 0;
    let mut goaway = None;
    while i + 9 <= buf.len() {
        let len = u32::from_be_bytes([0, buf[i], buf[i + 1], buf[i + 2]]) as usize;
        if buf[i + 3] == GOAWAY && i + 9 + 8 <= buf.len() {
            let p = &buf[i + 9..];
            goaway = Some(u32::from_be_bytes([p[4], p[5], p[6], p[7]]));
        }
        i += 9 + len;
    }
    (goaway, closed)
}

/// Another client is served promptly while the abuse goes on.
async fn others_are_served(app: &TestApp) {
    let started = Instant::now();
    let r = tokio::time::timeout(
        Duration::from_secs(5),
        reqwest::get(format!("{}/healthz", app.endpoint())),
    )
    .await
    .expect("answered in time")
    .expect("answered");
    assert_eq!(r.status(), 200);
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
}

/// Writes `frames` until the server stops reading or closes; returns how many bytes went out.
async fn flood(s: &mut TcpStream, frames: impl Iterator<Item = Vec<u8>>) -> usize {
    let mut sent = 0;
    let mut batch = Vec::new();
    for f in frames {
        batch.extend(f);
        if batch.len() >= 64 * 1024 {
            match tokio::time::timeout(Duration::from_secs(2), s.write_all(&batch)).await {
                Ok(Ok(())) => sent += batch.len(),
                _ => return sent,
            }
            batch.clear();
        }
    }
    let _ = s.write_all(&batch).await;
    sent + batch.len()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rapid_reset_is_cut_off_and_others_are_served() {
    let app = spawn_app().await;
    let mut s = open(&app).await;
    let block = get_healthz();
    let frames = (0..50_000u32).flat_map(move |n| {
        let id = 2 * n + 1;
        [
            frame(HEADERS, END_HEADERS | END_STREAM, id, &block),
            frame(RST_STREAM, 0, id, &8u32.to_be_bytes()),
        ]
    });
    let abuse = tokio::spawn(async move {
        flood(&mut s, frames).await;
        drain(&mut s, Duration::from_secs(10)).await
    });
    others_are_served(&app).await;
    let (goaway, closed) = abuse.await.expect("abuse");
    assert!(closed, "a rapid-reset connection stayed open");
    // ENHANCE_YOUR_CALM (0xb), the code h2 uses for it.
    assert_eq!(goaway, Some(0xb), "{goaway:?}");
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_continuation_flood_is_cut_at_the_header_limit() {
    let app = spawn_app().await;
    let mut s = open(&app).await;
    // A header block that never ends: 16 KiB of literal headers per frame, up to 64 MiB.
    let mut junk = Vec::new();
    while junk.len() < 16 * 1024 {
        junk.extend_from_slice(&[0x40, 3, b'x', b'-', b'a', 8]);
        junk.extend_from_slice(b"aaaaaaaa");
    }
    let first = std::iter::once(frame(HEADERS, END_STREAM, 1, &get_healthz()));
    let rest = (0..4096).map(|_| frame(CONTINUATION, 0, 1, &junk));
    let sent = flood(&mut s, first.chain(rest)).await;
    let (_, closed) = drain(&mut s, Duration::from_secs(10)).await;
    assert!(closed, "a CONTINUATION flood stayed open");
    assert!(
        sent < 8 << 20,
        "the server read {sent} bytes of one header block"
    );
    others_are_served(&app).await;
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_settings_flood_stays_bounded() {
    let app = spawn_app().await;
    let mut s = open(&app).await;
    // Each SETTINGS asks for an ACK; the flooder never reads them.
    let one = frame(SETTINGS, 0, 0, &[0, 3, 0, 0, 0, 100]);
    let sent = flood(&mut s, std::iter::repeat_n(one, 2_000_000)).await;
    others_are_served(&app).await;
    // The server stops reading once its ACKs back up (or closes): it never takes them all.
    assert!(sent < 2_000_000 * 15, "the server read all {sent} bytes");
    drop(s);
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_window_overflow_is_a_flow_control_error() {
    let app = spawn_app().await;
    let mut s = open(&app).await;
    let inc = frame(WINDOW_UPDATE, 0, 0, &0x7fff_ffffu32.to_be_bytes());
    let mut twice = inc.clone();
    twice.extend(inc);
    s.write_all(&twice).await.expect("write");
    let (goaway, closed) = drain(&mut s, Duration::from_secs(5)).await;
    assert!(closed);
    assert_eq!(goaway, Some(0x3), "FLOW_CONTROL_ERROR: {goaway:?}");
    // A flood of small increments on a stream that does not exist is a protocol error too.
    let mut s = open(&app).await;
    let small = frame(WINDOW_UPDATE, 0, 99, &1u32.to_be_bytes());
    flood(&mut s, std::iter::repeat_n(small, 200_000)).await;
    let (goaway, closed) = drain(&mut s, Duration::from_secs(5)).await;
    assert!(closed, "window-update flood stayed open ({goaway:?})");
    others_are_served(&app).await;
    app.stop().await;
}
