//! The watchdog's ordering under CPU pressure: an offline event is published only once its
//! client is removed. Two busy threads compete for the CPU here, so this test has a binary of
//! its own: in `watchdog.rs` they would slow the short real-time watchdogs of the other tests
//! running beside it.

mod common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use common::TestServer;
use heartwatch::Event;

/// Busy threads that compete for the CPU until dropped (at most 30 s).
struct CpuLoad {
    stop: Arc<AtomicBool>,
    threads: Vec<std::thread::JoinHandle<()>>,
}

impl CpuLoad {
    fn start(threads: usize) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let threads = (0..threads)
            .map(|_| {
                let stop = stop.clone();
                std::thread::spawn(move || {
                    let deadline = std::time::Instant::now() + Duration::from_secs(30);
                    while !stop.load(Ordering::Relaxed) && std::time::Instant::now() < deadline {
                        std::hint::spin_loop();
                    }
                })
            })
            .collect();
        Self { stop, threads }
    }
}

impl Drop for CpuLoad {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        for thread in self.threads.drain(..) {
            let _ = thread.join();
        }
    }
}

#[actix_rt::test]
async fn an_offline_event_is_published_only_once_the_client_is_removed() {
    // CPU pressure, as on a busy server, widens any window between an event and the state
    // change it announces (with the event published before the removal, 15-25% of these
    // lookups found the client still online under this load).
    let _load = CpuLoad::start(2);

    let server = TestServer::start_default().await;
    let mut events = server.event_log();
    let mut clients = Vec::new();
    for _ in 0..20 {
        clients.push(server.client().await);
    }
    let mut still_online = Vec::new();
    for round in 0..3 {
        for (c, client) in clients.iter_mut().enumerate() {
            for p in 0..10 {
                client
                    .heartbeat_timeout(&format!("r{round}-c{c}-p{p}"), 100)
                    .await;
            }
        }
        // 200 onlines and 200 offlines; look each offline's client up as soon as it arrives.
        for _ in 0..400 {
            if let Event::Offline { proj, .. } = events.next().await {
                if server
                    .running()
                    .registry()
                    .get(proj.clone())
                    .await
                    .expect("the registry runs")
                    .is_some()
                {
                    still_online.push(proj.to_string());
                }
            }
        }
    }
    assert!(
        still_online.is_empty(),
        "{} of 600 clients were still online when their offline event arrived, e.g. {:?}",
        still_online.len(),
        &still_online[..still_online.len().min(3)]
    );
    server.stop().await;
}
