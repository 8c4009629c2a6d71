//! A webhook receiver on a free loopback port that records every delivery (its
//! `x-heartwatch-delivery` id, the status it answered and its JSON body), answering 500 while
//! told to fail. Shared by the cluster's layer tests (`src/cluster/tests`, through `#[path]`)
//! and the real-process tests.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;

use actix_web::dev::ServerHandle;
use actix_web::{web, App, HttpRequest, HttpResponse, HttpServer};
use serde_json::Value;

/// What the receiver saw.
#[derive(Default)]
pub struct HookRecorder {
    /// Answer 500 (instead of 200) while set.
    pub failing: AtomicBool,
    /// (delivery id, status answered, body) of every request, in order.
    pub hits: Mutex<Vec<(String, u16, Value)>>,
}

impl HookRecorder {
    /// Starts a receiver (on the current actix system) that fails until told otherwise.
    pub fn start_failing() -> (web::Data<HookRecorder>, SocketAddr, ServerHandle) {
        let recorder = web::Data::new(HookRecorder::default());
        recorder.failing.store(true, Ordering::SeqCst);
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let data = recorder.clone();
        let server = HttpServer::new(move || {
            App::new()
                .app_data(data.clone())
                .default_service(web::to(record))
        })
        .workers(1)
        .listen(listener)
        .unwrap()
        .run();
        let handle = server.handle();
        actix_rt::spawn(server);
        (recorder, addr, handle)
    }

    /// The ids of the deliveries answered 200, each as often as it was.
    pub fn delivered(&self) -> Vec<String> {
        let hits = self.hits.lock().unwrap();
        hits.iter()
            .filter(|h| h.1 == 200)
            .map(|h| h.0.clone())
            .collect()
    }
}

async fn record(
    req: HttpRequest,
    body: web::Bytes,
    state: web::Data<HookRecorder>,
) -> HttpResponse {
    let id = req
        .headers()
        .get("x-heartwatch-delivery")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    let failing = state.failing.load(Ordering::SeqCst);
    let status = if failing { 500 } else { 200 };
    let json = serde_json::from_slice(&body).unwrap_or(Value::Null);
    state.hits.lock().unwrap().push((id, status, json));
    if failing {
        HttpResponse::InternalServerError().finish()
    } else {
        HttpResponse::Ok().finish()
    }
}
