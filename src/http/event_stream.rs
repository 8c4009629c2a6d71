//! `GET /api/v1/events`: server-sent events, one JSON event per `data:` line.

use std::convert::Infallible;

use actix_web::{web, HttpRequest, HttpResponse};
use bytes::Bytes;
use tokio::sync::broadcast::{self, error::RecvError};

use super::ApiState;
use crate::events::{Published, Sink};

/// Events kept for a slow event-stream reader before it is cut off (with an `event: lagged`
/// message, so it knows to reconnect and re-read `/api/v1/clients`).
pub const STREAM_BUFFER: usize = 16_384;

/// The event-stream sink: serializes each event once, as an `id:` line (the event's number)
/// and a `data:` line, and broadcasts it to every open `/api/v1/events` response.
pub struct SseHub {
    sender: broadcast::Sender<Bytes>,
}

impl SseHub {
    /// A hub and the sender the API reads from.
    pub fn new() -> (Self, broadcast::Sender<Bytes>) {
        let (sender, _) = broadcast::channel(STREAM_BUFFER);
        (
            Self {
                sender: sender.clone(),
            },
            sender,
        )
    }
}

impl Sink for SseHub {
    fn publish(&mut self, published: &Published) {
        if published.muted || self.sender.receiver_count() == 0 {
            return;
        }
        let mut block = Vec::with_capacity(192);
        block.extend_from_slice(format!("id: {}\ndata: ", published.id).as_bytes());
        if serde_json::to_writer(&mut block, &published.event).is_ok() {
            block.extend_from_slice(b"\n\n");
            // No receiver left is not an error: nobody listens right now.
            let _ = self.sender.send(Bytes::from(block));
        }
    }
}

/// Streams every event from now on.
pub(crate) async fn events(req: HttpRequest, state: web::Data<ApiState>) -> HttpResponse {
    if let Some(refused) = state.refusal(&req) {
        return refused;
    }
    if let Some(cluster) = &state.cluster {
        return super::cluster_api::events(cluster, &req).await;
    }
    let receiver = state.events.subscribe();
    // Counted in `heartwatch_event_stream_subscribers` for as long as the body stream lives:
    // actix-web drops it when the response ends or a write finds the client gone (it does not
    // watch an idle streaming connection for a close).
    let subscriber = state.metrics.event_stream_subscriber();
    let hello = futures_util::stream::once(async {
        Ok::<_, Infallible>(Bytes::from_static(b": heartwatch events\n\n"))
    });
    let body = futures_util::stream::unfold(Some((receiver, subscriber)), |open| async move {
        let (mut receiver, subscriber) = open?;
        match receiver.recv().await {
            Ok(block) => Some((Ok::<_, Infallible>(block), Some((receiver, subscriber)))),
            Err(RecvError::Lagged(missed)) => Some((
                Ok(Bytes::from(format!(
                    "event: lagged\ndata: {{\"missed\":{missed}}}\n\n"
                ))),
                None,
            )),
            Err(RecvError::Closed) => None,
        }
    });
    use futures_util::StreamExt;
    HttpResponse::Ok()
        .content_type("text/event-stream")
        .insert_header(("Cache-Control", "no-cache"))
        .streaming(hello.chain(body))
}
