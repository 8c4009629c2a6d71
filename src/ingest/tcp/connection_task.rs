//! The host of a connection that carries no client of its own: a plain task, no actor.
//!
//! Every connection starts here. Its first heartbeat brings its client online (or finds it
//! online), and the connection is then handed to that client's actor, which drives it from
//! then on ([`crate::supervision::Client`]). A connection whose client's actor already hosts
//! another connection (the client's second connection, or a reconnect while the old socket
//! is not yet closed) stays here and forwards each heartbeat to that actor; so does one that
//! never sends a heartbeat.

use std::panic::AssertUnwindSafe;
use std::sync::Arc;

use futures_util::FutureExt;
use serde_json::Value;

use super::connection::{Answer, Connection, Step};
use super::services::TcpServices;
use crate::auth::Grant;
use crate::extension::{CustomFrame, HandlerContext};
use crate::ingest::answers;
use crate::protocol::{ErrorCode, Proj, Reply};
use crate::supervision::{Attach, Heartbeats, Vacancy};

/// Serves `conn` until it closes or is handed to its client's actor.
pub(crate) async fn serve(mut conn: Connection) {
    loop {
        let Some(frame) = std::future::poll_fn(|cx| conn.poll_frame(cx)).await else {
            return;
        };
        let vacancy = match conn.on_frame(&frame) {
            Step::Done => continue,
            Step::Heartbeat {
                proj,
                seq,
                timeout_ms,
                ..
            } => {
                let proj = proj.to_proj();
                let heartbeats = conn.services().heartbeats.clone();
                let route = conn.route.take();
                let (result, route) = heartbeats
                    .deliver(proj.clone(), conn.peer(), timeout_ms, route, None)
                    .await;
                conn.route = route;
                match result {
                    Ok(delivered) => {
                        conn.ack(proj.clone(), seq, delivered.timeout);
                        Some((proj, delivered.vacancy))
                    }
                    Err(e) => {
                        conn.refuse(&e);
                        None
                    }
                }
            }
            Step::Offline { proj, seq } => {
                if conn.route.as_ref().is_some_and(|r| r.proj == proj) {
                    conn.route = None;
                }
                let heartbeats = conn.services().heartbeats.clone();
                conn.answer(offline(&heartbeats, proj, seq).await);
                None
            }
            Step::Custom(frame, grant) => {
                let answer = custom(conn.services(), frame, grant).await;
                conn.answer(answer);
                None
            }
        };
        if let Some((proj, vacancy)) = vacancy {
            conn = match hand_over(conn, proj, vacancy).await {
                Ok(()) => return,
                Err(conn) => conn,
            };
        }
    }
}

/// Hands `conn` to its client's actor if that actor has no connection: at once if it runs on
/// this thread, after moving it here (through the registry) otherwise. Gives the connection
/// back if it stays with this task.
async fn hand_over(conn: Connection, proj: Proj, vacancy: Vacancy) -> Result<(), Connection> {
    let client = match vacancy {
        Vacancy::Taken => return Err(conn),
        Vacancy::Here(client) => client,
        Vacancy::Elsewhere(from) => {
            let heartbeats = conn.services().heartbeats.clone();
            match heartbeats.relocate(proj, from).await {
                Some(client) => client,
                None => return Err(conn),
            }
        }
    };
    let (attach, returned) = Attach::new(conn);
    // A message refused here, declined by the actor or dropped with its mailbox gives the
    // connection back; one taken never comes back.
    drop(client.try_send(attach));
    match returned.await {
        Ok(conn) => Err(conn),
        Err(_) => Ok(()),
    }
}

/// Takes `proj` offline and says so: the answer to an `offline` frame.
pub(crate) async fn offline(heartbeats: &Heartbeats, proj: Proj, seq: Option<u64>) -> Answer {
    match heartbeats.offline(proj.clone()).await {
        Ok(_) => Ok(answers::offline_ack(proj, seq)),
        Err(e) => Err((ErrorCode::Unavailable, e.to_string())),
    }
}

/// Runs the handler registered for a custom frame's type and makes its answer a reply. A
/// panicking handler is caught: it must not take down the arbiter and every client on it.
pub(crate) fn custom(
    services: &Arc<TcpServices>,
    frame: CustomFrame,
    grant: Grant,
) -> impl std::future::Future<Output = Answer> + 'static {
    let handler = services.handlers.get(&frame.kind);
    let ctx = HandlerContext::new(services.heartbeats.clone(), grant);
    async move {
        let Some(handler) = handler else {
            let message = format!("unknown frame type {:?}", frame.kind);
            return Err((ErrorCode::UnknownType, message));
        };
        let kind = frame.kind.clone();
        let started = std::panic::catch_unwind(AssertUnwindSafe(|| handler.handle(frame, ctx)));
        let Ok(future) = started else {
            return Err((ErrorCode::HandlerError, "handler panicked".into()));
        };
        match AssertUnwindSafe(future).catch_unwind().await {
            Ok(Ok(mut reply)) => {
                reply.entry("type").or_insert_with(|| Value::String(kind));
                Ok(Reply::Custom(reply))
            }
            Ok(Err(e)) => Err((ErrorCode::HandlerError, e.message)),
            Err(_) => Err((ErrorCode::HandlerError, "handler panicked".into())),
        }
    }
}
