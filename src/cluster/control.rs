//! The control channel: what other nodes ask of this one, over Redis pub/sub.
//!
//! A node that claims a client online here publishes `evict <token> <proj>` on
//! `{p}:ctl:<incarnation>` (inside the claim script): this node then stops supervising it
//! without an event (EMQX's session takeover). A message lost while the connection is down
//! costs nothing but a stale watchdog here, whose offline is fenced when it fires.

use std::time::Duration;

use futures_util::StreamExt;
use tokio::sync::{mpsc, watch};

use super::keys::Keys;
use super::task::Input;
use super::token::ClaimToken;
use crate::protocol::Proj;

/// Pause before connecting again after a failure.
const RETRY: Duration = Duration::from_millis(500);

/// Subscribes to this node's channel (following its incarnation) until `inputs` closes.
pub(crate) async fn listen(
    client: redis::Client,
    keys: Keys,
    mut id: watch::Receiver<String>,
    inputs: mpsc::UnboundedSender<Input>,
    timeout: Duration,
) {
    loop {
        if inputs.is_closed() {
            return;
        }
        let channel = keys.control(&id.borrow_and_update());
        let pubsub = tokio::time::timeout(timeout, async {
            let mut pubsub = client.get_async_pubsub().await?;
            pubsub.subscribe(&channel).await?;
            Ok::<_, redis::RedisError>(pubsub)
        })
        .await;
        let mut pubsub = match pubsub {
            Ok(Ok(pubsub)) => pubsub,
            _ => {
                tokio::time::sleep(RETRY).await;
                continue;
            }
        };
        let mut messages = pubsub.on_message();
        loop {
            tokio::select! {
                message = messages.next() => {
                    let Some(message) = message else { break };
                    let Ok(payload) = message.get_payload::<String>() else { continue };
                    if let Some(input) = parse(&payload) {
                        if inputs.send(input).is_err() {
                            return;
                        }
                    }
                }
                changed = id.changed() => {
                    if changed.is_err() {
                        return;
                    }
                    break;
                }
            }
        }
    }
}

fn parse(payload: &str) -> Option<Input> {
    let rest = payload.strip_prefix("evict ")?;
    let (token, proj) = rest.split_once(' ')?;
    Some(Input::Evicted {
        proj: Proj::new(proj).ok()?,
        token: ClaimToken::from_wire(token),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn evict_messages_parse_and_others_are_ignored() {
        let Some(Input::Evicted { proj, token }) = parse("evict abc P 1") else {
            panic!("not parsed");
        };
        assert_eq!(proj.as_str(), "P 1");
        assert_eq!(token.as_str(), "abc");
        assert!(parse("evict abc").is_none());
        assert!(parse("hello").is_none());
    }
}
