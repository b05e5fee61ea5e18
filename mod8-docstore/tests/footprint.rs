//! The in-memory store keeps a small event in at most 500 bytes beyond its payload (the target
//! is in BENCHMARKS.md at the repository root). Measured as the growth of the process's
//! resident memory while 200,000 small events are built and stored, minus the payload bytes
//! (user id and event type strings). Memory, not time, so the assertion is deterministic enough
//! for a test; the figure is printed for the report.
#![cfg(target_os = "linux")]

use mod8_docstore::{Event, EventStore, MemoryDocStore, MemoryLimits, TimeWindow};

fn resident_bytes() -> usize {
    let status = std::fs::read_to_string("/proc/self/status").expect("Linux /proc");
    let line = status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .expect("VmRSS line");
    let kb: usize = line
        .split_whitespace()
        .nth(1)
        .and_then(|v| v.parse().ok())
        .expect("VmRSS in kB");
    kb * 1024
}

#[tokio::test(flavor = "current_thread")]
async fn small_events_cost_at_most_500_bytes_beyond_payload() {
    const N: usize = 200_000;
    // Bounds that hold every event: this measures what an event costs, not the eviction.
    let store = MemoryDocStore::with_limits(MemoryLimits {
        max_events: N,
        max_event_bytes: usize::MAX,
        event_retention: None,
    });
    let mut payload = 0usize;
    let before = resident_bytes();
    // Events are built in chunks inside the measured region, so their strings (with the
    // allocator's own overhead) count, and each chunk is consumed by the store.
    for start in (0..N).step_by(10_000) {
        let chunk: Vec<Event> = (start..start + 10_000)
            .map(|i| Event::new(format!("user-{:06}", i % 5_000), "page_view"))
            .collect();
        payload += chunk
            .iter()
            .map(|e| e.user_id.len() + e.event_type.len())
            .sum::<usize>();
        store.log_events(chunk).await.unwrap();
    }
    let after = resident_bytes();
    let overhead = (after.saturating_sub(before)).saturating_sub(payload) / N;
    eprintln!(
        "in-memory store: {overhead} bytes per small event beyond its payload \
         (size_of::<Event>() = {}, RSS growth {} bytes for {N} events)",
        std::mem::size_of::<Event>(),
        after.saturating_sub(before)
    );
    let counted = store.event_distribution(TimeWindow::all()).await.unwrap();
    assert_eq!(counted[0].count, N as u64);
    assert!(overhead <= 500, "{overhead} bytes per event");
}
