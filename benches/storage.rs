//! Storage seam figures.
//!
//! `cargo bench --bench storage`: write and read throughput per backend (memory, local, local
//! with envelope encryption, S3 against moto when `moto_server` is installed) for 2 MiB and
//! 20 MiB objects, next to SHA-256 over the same bytes in the same run as the baseline.
//!
//! `cargo bench --bench storage -- rss [uploads] [MiB]`: the memory bound of remote writes:
//! 200 concurrent 20 MiB uploads to the S3 backend (moto), sampling this process's RSS; prints
//! the peak next to the configured budget (`upload_buffer_bytes`). Input frames are slices of
//! one shared buffer, so the input itself costs no memory.

use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures_util::TryStreamExt;
use sha2::{Digest, Sha256};
use upgate::config::{BackendConfig, ConfigSecret, S3BackendConfig, StorageConfig};
use upgate::storage::Storage;

const MIB: usize = 1 << 20;
const FRAME: usize = 64 * 1024;
const KEY: &str = "k1:AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";

struct Moto {
    child: Child,
    port: u16,
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start_moto() -> Option<Moto> {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .ok()?
        .port();
    let child = Command::new("moto_server")
        .args(["-H", "127.0.0.1", "-p", &port.to_string()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .ok()?;
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        if TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return Some(Moto { child, port });
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    None
}

async fn create_bucket(port: u16, bucket: &str) {
    // moto accepts unsigned requests.
    let url = format!("http://127.0.0.1:{port}/{bucket}");
    let r = reqwest::Client::new().put(url).send().await;
    assert!(r.is_ok_and(|r| r.status().is_success()), "create bucket");
}

fn body(len: usize) -> Bytes {
    let mut v = Vec::with_capacity(len);
    let mut x: u32 = 0x9e37_79b9;
    while v.len() < len {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        v.push((x & 0xff) as u8);
    }
    Bytes::from(v)
}

fn s3_config(dir: &std::path::Path, port: u16) -> StorageConfig {
    let mut c = StorageConfig::local(dir);
    c.backend = "moto".into();
    c.backends.insert(
        "moto".into(),
        BackendConfig::S3(S3BackendConfig {
            endpoint: format!("http://127.0.0.1:{port}"),
            bucket: "bench".into(),
            access_key_id: ConfigSecret::new("testing"),
            secret_access_key: ConfigSecret::new("testing"),
            ..Default::default()
        }),
    );
    c
}

async fn write(s: &Storage, id: &str, data: &Bytes) {
    let path = Storage::path_for("bench", id);
    let mut st = s.begin(&path).await.expect("begin");
    let mut off = 0;
    while off < data.len() {
        let end = (off + FRAME).min(data.len());
        st.write(data.slice(off..end)).await.expect("write");
        off = end;
    }
    st.commit().await.expect("commit");
}

async fn read(s: &Storage, id: &str) -> usize {
    let path = Storage::path_for("bench", id);
    let b = s.get(&path, None).await.expect("get");
    b.stream
        .try_fold(0usize, |n, c| async move { Ok(n + c.len()) })
        .await
        .expect("read")
}

fn mibs(bytes: usize, d: Duration) -> f64 {
    bytes as f64 / MIB as f64 / d.as_secs_f64()
}

fn throughput() {
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let dir = tempfile::tempdir().expect("tmp");
    let moto = start_moto();
    let mut backends: Vec<(&str, Storage)> = vec![
        (
            "memory",
            Storage::from_store(Arc::new(object_store::memory::InMemory::new()), 0),
        ),
        (
            "local",
            Storage::open(&StorageConfig::local(dir.path().join("plain"))).expect("local"),
        ),
    ];
    let mut enc = StorageConfig::local(dir.path().join("enc"));
    enc.local.encrypt = true;
    enc.encryption.keys = ConfigSecret::new(KEY);
    backends.push(("local+encrypt", Storage::open(&enc).expect("enc")));
    if let Some(m) = &moto {
        rt.block_on(create_bucket(m.port, "bench"));
        let c = s3_config(&dir.path().join("s3"), m.port);
        backends.push(("s3 (moto)", Storage::open(&c).expect("s3")));
    } else {
        println!("moto_server not installed: no S3 row");
    }
    println!("| backend | object | write MiB/s | read MiB/s | SHA-256 MiB/s (baseline) |");
    println!("|---|---|---|---|---|");
    for size in [2 * MIB, 20 * MIB] {
        let data = body(size);
        let iters = if size == 2 * MIB { 10 } else { 3 };
        let t = Instant::now();
        for _ in 0..iters {
            std::hint::black_box(Sha256::digest(&data));
        }
        let sha = mibs(size * iters, t.elapsed());
        for (name, s) in &backends {
            let (w, r) = rt.block_on(async {
                let t = Instant::now();
                for i in 0..iters {
                    write(s, &format!("{size:x}{i:04x}"), &data).await;
                }
                let w = mibs(size * iters, t.elapsed());
                let t = Instant::now();
                for i in 0..iters {
                    assert_eq!(read(s, &format!("{size:x}{i:04x}")).await, size);
                }
                (w, mibs(size * iters, t.elapsed()))
            });
            println!(
                "| {name} | {} MiB | {w:.0} | {r:.0} | {sha:.0} |",
                size / MIB
            );
        }
    }
}

fn rss_kib(field: &str) -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with(field))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(0)
}

fn rss(uploads: usize, mib: usize) {
    let Some(moto) = start_moto() else {
        println!("moto_server not installed: cannot run the RSS scenario");
        return;
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let dir = tempfile::tempdir().expect("tmp");
    let mut cfg = s3_config(dir.path(), moto.port);
    cfg.part_bytes = 5 * MIB as u64;
    cfg.upload_buffer_bytes = 64 * MIB as u64;
    cfg.spool_max_bytes = (uploads * 6 * MIB) as u64;
    cfg.request_timeout_secs = 300;
    let budget = cfg.upload_buffer_bytes;
    let storage = Storage::open(&cfg).expect("open");
    rt.block_on(create_bucket(moto.port, "bench"));
    // One shared 64 KiB frame: every upload sends slices of it.
    let frame = body(FRAME);
    let before = rss_kib("VmRSS:");
    let peak = Arc::new(AtomicU64::new(before));
    let peak_spool = Arc::new(AtomicU64::new(0));
    let done = Arc::new(AtomicBool::new(false));
    let sampler = {
        let (peak, peak_spool, done) = (
            Arc::clone(&peak),
            Arc::clone(&peak_spool),
            Arc::clone(&done),
        );
        let spool_dir = dir.path().join("spool");
        std::thread::spawn(move || {
            while !done.load(Ordering::Relaxed) {
                peak.fetch_max(rss_kib("VmRSS:"), Ordering::Relaxed);
                let on_disk: u64 = std::fs::read_dir(&spool_dir)
                    .map(|d| {
                        d.flatten()
                            .filter_map(|e| e.metadata().ok())
                            .map(|m| m.len())
                            .sum()
                    })
                    .unwrap_or(0);
                peak_spool.fetch_max(on_disk, Ordering::Relaxed);
                std::thread::sleep(Duration::from_millis(20));
            }
        })
    };
    let started = Instant::now();
    rt.block_on(async {
        let mut tasks = Vec::new();
        for n in 0..uploads {
            let s = storage.clone();
            let frame = frame.clone();
            tasks.push(tokio::spawn(async move {
                let path = Storage::path_for("bench", &format!("{n:02x}{n:030x}"));
                let mut st = s.begin(&path).await.expect("begin");
                for _ in 0..(mib * MIB / FRAME) {
                    st.write(frame.clone()).await.expect("write");
                }
                st.commit().await.expect("commit");
                // Free moto's memory as we go; upgate's side is what is measured.
                s.delete(&path).await.expect("delete");
            }));
        }
        for t in tasks {
            t.await.expect("upload task");
        }
    });
    let elapsed = started.elapsed();
    done.store(true, Ordering::Relaxed);
    let _ = sampler.join();
    let peak = peak.load(Ordering::Relaxed);
    println!(
        "{uploads} concurrent uploads x {mib} MiB to S3 (moto) in {:.1} s ({:.0} MiB/s)",
        elapsed.as_secs_f64(),
        (uploads * mib) as f64 / elapsed.as_secs_f64()
    );
    println!(
        "RSS before {:.1} MiB, peak {:.1} MiB, growth {:.1} MiB; part-buffer budget (upload_buffer_bytes) {:.0} MiB; \
         VmHWM {:.1} MiB; peak spool on disk {:.0} MiB (budget {:.0} MiB); spool empty after: {}",
        before as f64 / 1024.0,
        peak as f64 / 1024.0,
        (peak.saturating_sub(before)) as f64 / 1024.0,
        budget as f64 / MIB as f64,
        rss_kib("VmHWM:") as f64 / 1024.0,
        peak_spool.load(Ordering::Relaxed) as f64 / MIB as f64,
        cfg.spool_max_bytes as f64 / MIB as f64,
        std::fs::read_dir(dir.path().join("spool"))
            .map(|d| d.count() == 0)
            .unwrap_or(true),
    );
}

fn main() {
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with("--"))
        .collect();
    match args.first().map(String::as_str) {
        Some("rss") => {
            let uploads = args.get(1).and_then(|a| a.parse().ok()).unwrap_or(200);
            let mib = args.get(2).and_then(|a| a.parse().ok()).unwrap_or(20);
            rss(uploads, mib);
        }
        _ => throughput(),
    }
}
