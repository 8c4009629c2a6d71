//! Embedding heartwatch in an actix-web application.
//!
//! The application serves its own routes on 127.0.0.1:8080 and mounts heartwatch's API under
//! `/heartwatch`; heartwatch takes heartbeats on 127.0.0.1:7700, answers one custom frame type
//! (`whois`), and an `Alerts` actor of the application subscribes to the events.
//!
//! ```text
//! cargo run --example embed
//! printf '{"type":"heartbeat","proj":"P-17","timeout_ms":3000}\n{"type":"whois","proj":"P-17"}\n' | nc -q1 127.0.0.1 7700
//! curl -s 127.0.0.1:8080/heartwatch/api/v1/clients
//! curl -s 127.0.0.1:8080/alerts
//! ```

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use actix::prelude::*;
use actix_web::{web, App, HttpResponse, HttpServer};
use heartwatch::extension::{CustomFrame, HandlerContext, HandlerError, HandlerReply};
use heartwatch::protocol::Proj;
use heartwatch::{Builder, ConfigLoader, Event};
use serde_json::{json, Value};

/// The application's subscriber: counts offline clients (a real one would page someone).
struct Alerts {
    offline: Arc<AtomicU64>,
}

impl Actor for Alerts {
    type Context = Context<Self>;
}

impl Handler<Event> for Alerts {
    type Result = ();

    fn handle(&mut self, event: Event, _: &mut Context<Self>) {
        if let Event::Offline { proj, reason, .. } = event {
            self.offline.fetch_add(1, Ordering::Relaxed);
            println!("ALERT: {proj} is offline ({reason})");
        }
    }
}

/// `{"type":"whois","proj":"P-17"}` → `{"type":"whois","proj":"P-17","online":true,...}`.
async fn whois(frame: CustomFrame, ctx: HandlerContext) -> HandlerReply {
    #[derive(serde::Deserialize)]
    struct Whois {
        proj: String,
    }
    let ask: Whois = frame
        .parse()
        .map_err(|e| HandlerError::new(format!("whois needs a proj: {e}")))?;
    let proj = Proj::new(&ask.proj).map_err(|e| HandlerError::new(e.to_string()))?;
    // Through the context: refused unless this connection's token covers `proj`.
    let reply = match ctx.client(proj.clone()).await? {
        Some(client) => json!({ "proj": proj, "online": true, "client": client }),
        None => json!({ "proj": proj, "online": false }),
    };
    match reply {
        Value::Object(map) => Ok(map),
        _ => unreachable!("json! of an object literal is an object"),
    }
}

#[actix_web::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    // The defaults, HEARTWATCH__* environment variables, and loopback-only listeners.
    let config = ConfigLoader::new()
        .set("server.listen", "127.0.0.1:7700")
        .load()?;
    let offline = Arc::new(AtomicU64::new(0));
    let alerts = Alerts {
        offline: offline.clone(),
    }
    .start();

    let heartwatch = Builder::new(config.server)
        .session(config.session)
        .auth(config.auth)
        .http(false)
        .handler("whois", whois)
        .subscribe(alerts.recipient())
        .start()
        .await?;
    println!("heartbeats on {}", heartwatch.tcp_addr());

    let api = heartwatch.api_state();
    let app = HttpServer::new(move || {
        let offline = offline.clone();
        App::new()
            .service(web::scope("/heartwatch").configure(heartwatch::http::configure(api.clone())))
            .route(
                "/alerts",
                web::get().to(move || {
                    let n = offline.load(Ordering::Relaxed);
                    async move { HttpResponse::Ok().json(json!({ "offline_alerts": n })) }
                }),
            )
    })
    .workers(1)
    .disable_signals()
    .bind("127.0.0.1:8080")?
    .run();
    let app_handle = app.handle();
    actix_web::rt::spawn(app);
    println!("application on http://127.0.0.1:8080 (heartwatch API under /heartwatch)");

    heartwatch::shutdown::signal().await?;
    app_handle.stop(true).await;
    heartwatch.stop().await;
    Ok(())
}
