//! The cluster's state in Redis, as typed operations: one script or one pipeline each.
//!
//! This is the only file that speaks Redis commands for the state machine; the cluster task
//! decides when to call what. Every call has a deadline ([`Store::timeout`]): a frozen Redis
//! makes calls fail, never hang.

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use redis::aio::ConnectionManager;
use redis::streams::{StreamId, StreamRangeReply};
use redis::{AsyncCommands, FromRedisValue, Value};
use serde::Serialize;

use super::error::ClusterError;
use super::keys::Keys;
use super::scripts::Scripts;
use super::token::ClaimToken;
use crate::clock::serialize_rfc3339;
use crate::protocol::Proj;

/// Typed access to the cluster's keys. Cheap to clone; usable from any thread (the
/// connection's driver runs on the runtime that created it, the cluster task's).
#[derive(Clone)]
pub(crate) struct Store {
    conn: ConnectionManager,
    pub keys: Arc<Keys>,
    scripts: Arc<Scripts>,
    timeout: Duration,
}

/// A peer's entry in the renewal hash.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum PeerMark {
    /// Alive, with its renewal counter.
    Counter(String),
    /// Dead or departed; its clients are being taken over.
    Ending,
}

/// What a renewal answered.
#[derive(Debug)]
pub(crate) enum Renewal {
    /// This incarnation was declared dead (or left): it must join again.
    Fenced,
    /// Renewed; every incarnation in the renewal hash (this one included).
    Alive(Vec<(String, PeerMark)>),
}

/// One transition in a publish batch.
pub(crate) struct PublishItem<'a> {
    pub kind: PublishKind,
    pub proj: &'a str,
    pub token: &'a str,
    pub age_ms: u64,
    pub timeout_ms: u64,
    pub checkpoint_ms: u64,
    pub addr: String,
    pub json: String,
}

/// What one transition does in Redis.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum PublishKind {
    /// A claim (`on`).
    Claim,
    /// The end of a claim (`off`).
    End,
    /// An event that changes no claim, of this kind: only a stream entry.
    Note(&'static str),
}

/// What Redis made of one transition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Applied {
    /// A real transition: its event's id.
    Event(String),
    /// A claim of a client online on another node: it moved here silently.
    Moved,
    /// A claim of a client this node already owned under another token.
    Refresh,
    /// Already applied (a replay).
    Dup,
    /// A claim older than the one in force: nothing changed.
    Stale,
    /// An offline whose token is no longer in force: nothing changed.
    Fenced,
    /// A muted claim or offline, applied without a stream entry.
    Quiet,
}

/// One client taken over by [`Store::adopt`].
#[derive(Debug, Clone)]
pub(crate) struct Adopted {
    pub proj: Proj,
    pub token: ClaimToken,
    pub cap: SystemTime,
    pub seen: SystemTime,
    pub timeout: Duration,
    pub addr: Option<std::net::SocketAddr>,
}

/// A detached client as [`Store::detached`] reads it.
#[derive(Debug, Clone)]
pub(crate) struct Detached {
    pub proj: Proj,
    pub token: ClaimToken,
    pub cap: SystemTime,
    pub seen: SystemTime,
    pub timeout: Duration,
    pub lost_node: String,
    pub addr: Option<std::net::SocketAddr>,
}

/// What [`Store::adopt`] did.
#[derive(Debug)]
pub(crate) enum Adoption {
    /// The caller is not alive.
    Fenced,
    /// Nothing (left) to take over.
    Gone,
    /// A live peer is the reaper.
    Busy,
    /// A batch taken over; `done` when the dead incarnation owns nothing more.
    Batch {
        lost_node: String,
        clients: Vec<Adopted>,
        done: bool,
    },
}

/// A client as the merged view shows it, from any node.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ClusterClient {
    /// The client.
    pub proj: Proj,
    /// `online` (offline clients are not listed), or, for a client of the node answering, its
    /// detection state there (`late`, `paused`, `flapping`).
    pub state: &'static str,
    /// The node supervising it.
    pub node: String,
    /// Its last heartbeat as far as the cluster knows: its claim, or its last checkpoint (the
    /// owner knows it exactly).
    #[serde(serialize_with = "serialize_rfc3339")]
    pub last_seen: SystemTime,
    /// Since when it is online (its claim, on whichever node).
    #[serde(serialize_with = "serialize_rfc3339")]
    pub since: SystemTime,
    /// Heartbeats since it came online: known to its own node only.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub heartbeats: Option<u64>,
    /// Its watchdog timeout.
    pub timeout_ms: u64,
    /// Where its claiming heartbeat came from.
    pub addr: String,
    /// `true` while it is watched by a node that took it over from a lost one, without a
    /// connection (it has not beaten since).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub detached: bool,
}

/// A node as `/api/v1/nodes` shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct NodeInfo {
    /// Its name.
    pub node: String,
    /// `alive`, `dead` or `left`.
    pub state: String,
    /// Clients it supervises now.
    pub clients: u64,
    /// Its current incarnation (a new one per start, and after being fenced).
    pub incarnation: String,
    /// When that incarnation joined.
    #[serde(serialize_with = "serialize_rfc3339")]
    pub started: SystemTime,
    /// When it died or left, if it did.
    #[serde(
        skip_serializing_if = "Option::is_none",
        serialize_with = "serialize_opt_rfc3339"
    )]
    pub ended: Option<SystemTime>,
    /// What it said about itself at join (its listen and HTTP addresses).
    pub info: serde_json::Value,
}

fn serialize_opt_rfc3339<S: serde::Serializer>(
    t: &Option<SystemTime>,
    s: S,
) -> Result<S::Ok, S::Error> {
    match t {
        Some(t) => serialize_rfc3339(t, s),
        None => s.serialize_none(),
    }
}

/// One entry of the event stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamEvent {
    /// The entry id: the event's id on every node (SSE `id:`, webhook delivery id).
    pub id: String,
    /// `online`, `offline`, ...
    pub kind: String,
    /// The client.
    pub proj: String,
    /// The node that decided it.
    pub node: String,
    /// The event's JSON (with `node`).
    pub json: String,
}

impl StreamEvent {
    pub(crate) fn from_entry(entry: &StreamId) -> Option<Self> {
        Some(Self {
            id: entry.id.clone(),
            kind: entry.get("k")?,
            proj: entry.get("p")?,
            node: entry.get("n")?,
            json: entry.get("e")?,
        })
    }
}

/// Milliseconds since the Unix epoch as a wall time.
pub(crate) fn from_ms(ms: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_millis(ms)
}

fn parse_ms(s: Option<&String>) -> Option<u64> {
    s.and_then(|s| s.parse::<f64>().ok())
        .map(|f| f.max(0.0) as u64)
}

impl Store {
    pub fn new(conn: ConnectionManager, keys: Keys, timeout: Duration) -> Self {
        Self {
            conn,
            keys: Arc::new(keys),
            scripts: Arc::new(Scripts::new()),
            timeout,
        }
    }

    /// The deadline of every call.
    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// A connection handle (a clone of the manager).
    pub fn conn(&self) -> ConnectionManager {
        self.conn.clone()
    }

    async fn bounded<T>(
        &self,
        what: &'static str,
        call: impl Future<Output = redis::RedisResult<T>>,
    ) -> Result<T, ClusterError> {
        match tokio::time::timeout(self.timeout, call).await {
            Ok(result) => Ok(result?),
            Err(_) => Err(ClusterError::Timeout {
                what,
                ms: crate::clock::millis(self.timeout),
            }),
        }
    }

    async fn script<T: FromRedisValue>(
        &self,
        what: &'static str,
        script: &redis::Script,
        args: Vec<Vec<u8>>,
    ) -> Result<T, ClusterError> {
        let mut invocation = script.key(&self.keys.hb);
        invocation.arg(&self.keys.prefix);
        for arg in args {
            invocation.arg(arg);
        }
        let mut conn = self.conn.clone();
        self.bounded(what, invocation.invoke_async(&mut conn)).await
    }

    /// A round trip (connecting again if needed).
    pub async fn ping(&self) -> Result<(), ClusterError> {
        let mut conn = self.conn.clone();
        self.bounded("ping", redis::cmd("PING").query_async::<String>(&mut conn))
            .await
            .map(drop)
    }

    /// A new incarnation `id` of node `name` joins; answers the id of the earlier incarnation
    /// of the same name it replaced (declared dead), if one was alive.
    pub async fn register(
        &self,
        id: &str,
        name: &str,
        info: &str,
    ) -> Result<Option<String>, ClusterError> {
        let (replaced, prev): (i64, String) = self
            .script(
                "register",
                &self.scripts.register,
                vec![id.into(), name.into(), info.into()],
            )
            .await?;
        Ok((replaced == 1).then_some(prev))
    }

    /// Renews incarnation `id`.
    pub async fn renew(&self, id: &str) -> Result<Renewal, ClusterError> {
        let reply: Vec<String> = self
            .script("renew", &self.scripts.renew, vec![id.into()])
            .await?;
        match reply.first().map(String::as_str) {
            Some("fenced") => Ok(Renewal::Fenced),
            Some("ok") => Ok(Renewal::Alive(
                reply[1..]
                    .chunks_exact(2)
                    .map(|pair| {
                        let mark = if pair[1] == "x" {
                            PeerMark::Ending
                        } else {
                            PeerMark::Counter(pair[1].clone())
                        };
                        (pair[0].clone(), mark)
                    })
                    .collect(),
            )),
            _ => Err(unexpected("renew", &reply)),
        }
    }

    /// Declares `peer` dead if its counter is still `seen`; `Ok(None)` if `me` is fenced.
    pub async fn declare_dead(
        &self,
        me: &str,
        peer: &str,
        seen: &str,
    ) -> Result<Option<bool>, ClusterError> {
        let answer: i64 = self
            .script(
                "declare_dead",
                &self.scripts.declare_dead,
                vec![me.into(), peer.into(), seen.into()],
            )
            .await?;
        Ok(match answer {
            -1 => None,
            n => Some(n == 1),
        })
    }

    /// Applies a batch of transitions as incarnation `me` of node `name`; `Ok(None)` if `me`
    /// is fenced (nothing applied).
    pub async fn publish(
        &self,
        me: &str,
        name: &str,
        max_len: u64,
        items: &[PublishItem<'_>],
    ) -> Result<Option<Vec<Applied>>, ClusterError> {
        let mut args: Vec<Vec<u8>> = Vec::with_capacity(3 + items.len() * 8);
        args.push(me.into());
        args.push(name.into());
        args.push(max_len.to_string().into());
        for item in items {
            match item.kind {
                PublishKind::Claim => args.push("on".into()),
                PublishKind::End => args.push("off".into()),
                PublishKind::Note(_) => args.push("note".into()),
            }
            args.push(item.proj.into());
            match item.kind {
                // A note has no token: its slot carries its kind.
                PublishKind::Note(kind) => args.push(kind.into()),
                PublishKind::Claim | PublishKind::End => args.push(item.token.into()),
            }
            args.push(item.age_ms.to_string().into());
            args.push(item.timeout_ms.to_string().into());
            args.push(item.checkpoint_ms.to_string().into());
            args.push(item.addr.clone().into());
            args.push(item.json.clone().into());
        }
        let reply: Vec<String> = self.script("publish", &self.scripts.publish, args).await?;
        if reply.first().map(String::as_str) == Some("node fenced") {
            return Ok(None);
        }
        if reply.len() != items.len() {
            return Err(unexpected("publish", &reply));
        }
        let applied = reply
            .iter()
            .map(|r| match r.split_once(' ') {
                Some(("online" | "offline" | "note", id)) => Ok(Applied::Event(id.to_string())),
                _ => match r.as_str() {
                    "quiet" => Ok(Applied::Quiet),
                    "moved" => Ok(Applied::Moved),
                    "refresh" => Ok(Applied::Refresh),
                    "dup" => Ok(Applied::Dup),
                    "stale" => Ok(Applied::Stale),
                    "fenced" => Ok(Applied::Fenced),
                    _ => Err(unexpected("publish", &reply)),
                },
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Some(applied))
    }

    /// Takes over up to `batch` clients of the dead or departed incarnation `dead`.
    pub async fn adopt(
        &self,
        me: &str,
        name: &str,
        dead: &str,
        batch: usize,
    ) -> Result<Adoption, ClusterError> {
        let base = format!("{}.", super::token::random_hex());
        let reply: Vec<String> = self
            .script(
                "adopt",
                &self.scripts.adopt,
                vec![
                    me.into(),
                    name.into(),
                    dead.into(),
                    base.into(),
                    batch.to_string().into(),
                ],
            )
            .await?;
        let bad = || unexpected("adopt", &reply);
        match reply.first().map(String::as_str) {
            Some("fenced") => Ok(Adoption::Fenced),
            Some("gone") => Ok(Adoption::Gone),
            Some("busy") => Ok(Adoption::Busy),
            Some(state @ ("more" | "done")) if reply.len() >= 2 => {
                let mut clients = Vec::new();
                for c in reply[2..].chunks(6) {
                    let [proj, token, cap, seen, timeout, addr] = c else {
                        return Err(bad());
                    };
                    let (Ok(proj), Some(cap), Some(seen), Some(timeout)) = (
                        Proj::new(proj),
                        parse_ms(Some(cap)),
                        parse_ms(Some(seen)),
                        parse_ms(Some(timeout)),
                    ) else {
                        return Err(bad());
                    };
                    clients.push(Adopted {
                        proj,
                        token: ClaimToken::from_wire(token),
                        cap: from_ms(cap),
                        seen: from_ms(seen),
                        timeout: Duration::from_millis(timeout),
                        addr: addr.parse().ok(),
                    });
                }
                Ok(Adoption::Batch {
                    lost_node: reply[1].clone(),
                    clients,
                    done: state == "done",
                })
            }
            _ => Err(bad()),
        }
    }

    /// Records last heartbeats of clients `me` owns under the given tokens; `Ok(None)` if
    /// `me` is fenced, else how many were written.
    pub async fn checkpoint(
        &self,
        me: &str,
        items: &[(Proj, ClaimToken, SystemTime)],
    ) -> Result<Option<u64>, ClusterError> {
        let mut args: Vec<Vec<u8>> = Vec::with_capacity(1 + items.len() * 3);
        args.push(me.into());
        for (proj, token, seen) in items {
            args.push(proj.as_str().into());
            args.push(token.as_str().into());
            args.push(wall_ms(*seen).to_string().into());
        }
        let n: i64 = self
            .script("checkpoint", &self.scripts.checkpoint, args)
            .await?;
        Ok(u64::try_from(n).ok())
    }

    /// A client owned without a connection (adopted), with what its watchdog needs.
    pub async fn detached(&self, proj: &Proj) -> Result<Option<Detached>, ClusterError> {
        let mut conn = self.conn.clone();
        let row: Vec<Option<String>> = self
            .bounded(
                "reconcile",
                redis::cmd("HMGET")
                    .arg(self.keys.client(proj.as_str()))
                    .arg(&[
                        "state", "mode", "tok", "cap", "seen", "timeout", "lost", "addr",
                    ])
                    .query_async(&mut conn),
            )
            .await?;
        let get = |i: usize| row.get(i).cloned().flatten();
        if get(0).as_deref() != Some("online") || get(1).as_deref() != Some("detached") {
            return Ok(None);
        }
        let (Some(token), Some(cap), Some(seen), Some(timeout)) = (
            get(2),
            parse_ms(get(3).as_ref()),
            parse_ms(get(4).as_ref()),
            parse_ms(get(5).as_ref()),
        ) else {
            return Ok(None);
        };
        Ok(Some(Detached {
            proj: proj.clone(),
            token: ClaimToken::from_wire(&token),
            cap: from_ms(cap),
            seen: from_ms(seen),
            timeout: Duration::from_millis(timeout),
            lost_node: get(6).unwrap_or_default(),
            addr: get(7).and_then(|a| a.parse().ok()),
        }))
    }

    /// Marks incarnation `me` as left; `false` if it was already fenced.
    pub async fn leave(&self, me: &str) -> Result<bool, ClusterError> {
        let n: i64 = self
            .script("leave", &self.scripts.leave, vec![me.into()])
            .await?;
        Ok(n == 1)
    }

    /// Online clients in `proj` order, after `after`, at most `limit`.
    pub async fn clients(
        &self,
        after: Option<&Proj>,
        limit: usize,
    ) -> Result<Vec<ClusterClient>, ClusterError> {
        let min = match after {
            Some(p) => format!("({}", p.as_str()),
            None => "-".into(),
        };
        let mut conn = self.conn.clone();
        let limit = limit.min(isize::MAX as usize) as isize;
        let projs: Vec<String> = self
            .bounded(
                "list",
                conn.zrangebylex_limit(&self.keys.online, min, "+", 0, limit),
            )
            .await?;
        self.records(projs).await
    }

    /// One online client, wherever it is.
    pub async fn client(&self, proj: &Proj) -> Result<Option<ClusterClient>, ClusterError> {
        Ok(self
            .records(vec![proj.as_str().to_string()])
            .await?
            .into_iter()
            .next())
    }

    async fn records(&self, projs: Vec<String>) -> Result<Vec<ClusterClient>, ClusterError> {
        if projs.is_empty() {
            return Ok(Vec::new());
        }
        let mut pipe = redis::pipe();
        for proj in &projs {
            pipe.cmd("HMGET")
                .arg(self.keys.client(proj))
                .arg(&["state", "node", "seen", "since", "timeout", "addr", "mode"]);
        }
        let mut conn = self.conn.clone();
        let rows: Vec<Vec<Option<String>>> =
            self.bounded("list", pipe.query_async(&mut conn)).await?;
        Ok(projs
            .into_iter()
            .zip(rows)
            .filter_map(|(proj, row)| {
                if row.first()?.as_deref() != Some("online") {
                    return None;
                }
                Some(ClusterClient {
                    proj: Proj::new(&proj).ok()?,
                    state: "online",
                    node: row.get(1)?.clone().unwrap_or_default(),
                    last_seen: from_ms(parse_ms(row.get(2)?.as_ref())?),
                    since: from_ms(parse_ms(row.get(3)?.as_ref()).unwrap_or(0)),
                    heartbeats: None,
                    timeout_ms: parse_ms(row.get(4)?.as_ref())?,
                    addr: row.get(5)?.clone().unwrap_or_default(),
                    detached: row.get(6)?.as_deref() == Some("detached"),
                })
            })
            .collect())
    }

    /// How many clients are online in the cluster.
    pub async fn online_count(&self) -> Result<u64, ClusterError> {
        let mut conn = self.conn.clone();
        self.bounded("count", conn.zcard(&self.keys.online)).await
    }

    /// Every node by name, with its current incarnation's state and client count.
    pub async fn nodes(&self) -> Result<Vec<NodeInfo>, ClusterError> {
        let mut conn = self.conn.clone();
        let names: Vec<(String, String)> = self
            .bounded("nodes", conn.hgetall(&self.keys.nodes))
            .await?;
        let mut names = names;
        names.sort();
        let mut pipe = redis::pipe();
        for (_, id) in &names {
            pipe.cmd("HMGET")
                .arg(self.keys.node(id))
                .arg(&["state", "started", "ended", "info"]);
            pipe.cmd("SCARD").arg(self.keys.own(id));
        }
        let rows: Vec<Value> = self.bounded("nodes", pipe.query_async(&mut conn)).await?;
        let mut nodes = Vec::with_capacity(names.len());
        for ((name, id), pair) in names.into_iter().zip(rows.chunks(2)) {
            let [fields, count] = pair else { break };
            let fields: Vec<Option<String>> =
                redis::from_redis_value_ref(fields).map_err(|e| unexpected("nodes", &e))?;
            let clients: u64 =
                redis::from_redis_value_ref(count).map_err(|e| unexpected("nodes", &e))?;
            let Some(state) = fields.first().cloned().flatten() else {
                continue;
            };
            nodes.push(NodeInfo {
                node: name,
                state,
                clients,
                incarnation: id,
                started: from_ms(parse_ms(fields.get(1).and_then(Option::as_ref)).unwrap_or(0)),
                ended: parse_ms(fields.get(2).and_then(Option::as_ref)).map(from_ms),
                info: fields
                    .get(3)
                    .and_then(Option::as_ref)
                    .and_then(|s| serde_json::from_str(s).ok())
                    .unwrap_or(serde_json::Value::Null),
            });
        }
        Ok(nodes)
    }

    /// Events after `after` (an entry id; exclusive), at most `count`, oldest first.
    pub async fn events_after(
        &self,
        after: &str,
        count: usize,
    ) -> Result<Vec<StreamEvent>, ClusterError> {
        let mut conn = self.conn.clone();
        let reply: StreamRangeReply = self
            .bounded(
                "events",
                conn.xrange_count(&self.keys.events, format!("({after}"), "+", count),
            )
            .await?;
        Ok(reply
            .ids
            .iter()
            .filter_map(StreamEvent::from_entry)
            .collect())
    }

    /// The id of the newest event, `0-0` if none.
    pub async fn last_event_id(&self) -> Result<String, ClusterError> {
        let mut conn = self.conn.clone();
        let reply: StreamRangeReply = self
            .bounded(
                "events",
                conn.xrevrange_count(&self.keys.events, "+", "-", 1),
            )
            .await?;
        Ok(reply
            .ids
            .first()
            .map_or_else(|| "0-0".to_string(), |e| e.id.clone()))
    }

    /// How many clients incarnation `id` owns.
    pub async fn owned_count(&self, id: &str) -> Result<u64, ClusterError> {
        let mut conn = self.conn.clone();
        self.bounded("owned", conn.scard(self.keys.own(id))).await
    }

    /// The clients incarnation `id` owns, as far as Redis knows, with their tokens and modes.
    pub async fn owned(&self, id: &str) -> Result<Vec<(String, Option<String>)>, ClusterError> {
        let mut conn = self.conn.clone();
        let projs: Vec<String> = self
            .bounded("owned", conn.smembers(self.keys.own(id)))
            .await?;
        if projs.is_empty() {
            return Ok(Vec::new());
        }
        let mut pipe = redis::pipe();
        for proj in &projs {
            pipe.hget(self.keys.client(proj), "tok");
        }
        let tokens: Vec<Option<String>> =
            self.bounded("owned", pipe.query_async(&mut conn)).await?;
        Ok(projs.into_iter().zip(tokens).collect())
    }
}

/// Milliseconds since the Unix epoch of a wall time (0 before it).
pub(crate) fn wall_ms(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map(crate::clock::millis)
        .unwrap_or(0)
}

fn unexpected(what: &'static str, detail: &impl std::fmt::Debug) -> ClusterError {
    ClusterError::Unexpected {
        what,
        detail: format!("{detail:?}"),
    }
}
