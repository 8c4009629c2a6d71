//! Embedding the heartbeat client in an actix application.
//!
//! The application starts a `HeartbeatClient` for its own `proj` and reacts to what it reports:
//! here it keeps a "server reachable" flag that the rest of the application could consult.
//!
//! ```text
//! cargo run --release -- serve &            # a server on 127.0.0.1:7700
//! cargo run --example client -- P-17        # this client; Ctrl-C sends offline and exits
//! ```

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use actix::prelude::*;
use heartwatch::client::{ClientConfig, ClientEvent, HeartbeatClient, Shutdown};
use heartwatch::protocol::Proj;

/// The application's view of the server.
struct Link {
    reachable: Arc<AtomicBool>,
}

impl Actor for Link {
    type Context = Context<Self>;
}

impl Handler<ClientEvent> for Link {
    type Result = ();

    fn handle(&mut self, event: ClientEvent, _: &mut Context<Self>) {
        match event {
            ClientEvent::Up { server } => {
                self.reachable.store(true, Ordering::Relaxed);
                println!("server {server} reachable");
            }
            ClientEvent::Down { reason, detail } => {
                self.reachable.store(false, Ordering::Relaxed);
                println!("server unreachable: {reason} ({detail})");
            }
            ClientEvent::Reconnecting { delay } => println!("retrying in {delay:?}"),
            ClientEvent::Acked { seq, rtt, .. } => println!("heartbeat {seq} acked in {rtt:?}"),
            ClientEvent::Rejected { code, message, .. } => println!("rejected: {code}: {message}"),
            ClientEvent::Stopped { offline_acked } => {
                println!("stopped, offline acked: {offline_acked}")
            }
        }
    }
}

#[actix::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let proj = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "example-client".into());
    let mut config = ClientConfig::new("127.0.0.1:7700", Proj::new(&proj)?);
    config.interval = Duration::from_secs(2);
    config.server_timeout = Some(Duration::from_secs(6));

    let reachable = Arc::new(AtomicBool::new(false));
    let link = Link {
        reachable: reachable.clone(),
    }
    .start();
    let client = HeartbeatClient::new(config, link.clone().recipient()).start();

    heartwatch::shutdown::signal().await?;
    client.send(Shutdown).await?;
    println!(
        "was reachable at exit: {}",
        reachable.load(Ordering::Relaxed)
    );
    Ok(())
}
