//! A large PATCH is streamed: the server's memory does not grow with the body.

use bytes::Bytes;
use futures_util::{StreamExt, stream};

use crate::support::*;

fn rss_kib(pid: u32, field: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap()
}

#[tokio::test]
async fn a_one_gib_patch_does_not_grow_rss() {
    const GIB: u64 = 1 << 30;
    const CHUNK: usize = 256 * 1024;
    let server = Server::start(&[]).await;
    // Warm up: one small upload so allocations of the first request are in the baseline.
    let warm = server.create(4).await;
    assert_eq!(patch(&warm, 0, b"warm".to_vec()).await.0, 204);
    let idle = rss_kib(server.pid(), "VmRSS:");

    let url = server.create(GIB).await;
    let block = Bytes::from(pattern(CHUNK, 42));
    let chunks = (GIB as usize) / CHUNK;
    let body = stream::iter((0..chunks).map(move |_| Ok::<_, std::io::Error>(block.clone())));
    let resp = client()
        .patch(&url)
        .header(TUS.0, TUS.1)
        .header(OCTETS.0, OCTETS.1)
        .header("Upload-Offset", "0")
        .header("Content-Length", GIB.to_string())
        .body(reqwest::Body::wrap_stream(body))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 204);
    assert_eq!(resp.headers()["upload-offset"], GIB.to_string().as_str());
    let peak = rss_kib(server.pid(), "VmHWM:");
    let growth_mib = peak.saturating_sub(idle) as f64 / 1024.0;
    eprintln!(
        "idle RSS {idle} KiB, peak {peak} KiB, growth {growth_mib:.1} MiB over a 1 GiB PATCH"
    );
    assert!(growth_mib < 16.0, "RSS grew {growth_mib:.1} MiB");
    let len = std::fs::metadata(server.data_dir.join(id_of(&url)))
        .unwrap()
        .len();
    assert_eq!(len, GIB);

    // The download streams too: reading the whole GiB back leaves the peak where it was.
    let resp = client().get(&url).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.content_length(), Some(GIB));
    let mut stream = resp.bytes_stream();
    let mut read = 0u64;
    let mut first_bad = None;
    let expected = pattern(CHUNK, 42);
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.unwrap();
        for (i, b) in chunk.iter().enumerate() {
            let at = read + i as u64;
            if first_bad.is_none() && *b != expected[(at % CHUNK as u64) as usize] {
                first_bad = Some(at);
            }
        }
        read += chunk.len() as u64;
    }
    assert_eq!(read, GIB);
    assert_eq!(first_bad, None, "downloaded bytes differ");
    let peak_after = rss_kib(server.pid(), "VmHWM:");
    let growth_mib = peak_after.saturating_sub(idle) as f64 / 1024.0;
    eprintln!("peak after a 1 GiB GET: {peak_after} KiB, growth {growth_mib:.1} MiB over idle");
    assert!(growth_mib < 16.0, "RSS grew {growth_mib:.1} MiB");
}
