//! The names of the cluster's Redis keys.
//!
//! Every key starts with `{<key_prefix>}`: the braces are a Redis Cluster hash tag, so all the
//! keys of one heartwatch cluster share one slot and a script may touch any of them.

/// The key names of one cluster (one `cluster.key_prefix`).
#[derive(Debug, Clone)]
pub(crate) struct Keys {
    /// `{prefix}`, passed to every script, which builds the per-client and per-node names.
    pub prefix: String,
    /// Hash: incarnation id → renewal counter, or `x` while a dead or departed incarnation's
    /// clients are being taken over.
    pub hb: String,
    /// Hash: node name → its current incarnation id.
    pub nodes: String,
    /// Sorted set (all scores 0, so ordered by name): the online clients.
    pub online: String,
    /// Stream: every transition of every node; its entry ids are the events' ids.
    pub events: String,
}

impl Keys {
    /// The keys under `key_prefix`.
    pub fn new(key_prefix: &str) -> Self {
        let prefix = format!("{{{key_prefix}}}");
        Self {
            hb: format!("{prefix}:hb"),
            nodes: format!("{prefix}:nodes"),
            online: format!("{prefix}:online"),
            events: format!("{prefix}:events"),
            prefix,
        }
    }

    /// Hash: one client's owner, token, state and deadlines.
    pub fn client(&self, proj: &str) -> String {
        format!("{}:c:{proj}", self.prefix)
    }

    /// Hash: one incarnation's name, state, reaper and times.
    pub fn node(&self, id: &str) -> String {
        format!("{}:node:{id}", self.prefix)
    }

    /// Set: the clients an incarnation owns.
    pub fn own(&self, id: &str) -> String {
        format!("{}:own:{id}", self.prefix)
    }

    /// Pub/sub channel: commands to one incarnation (`evict <token> <proj>`).
    pub fn control(&self, id: &str) -> String {
        format!("{}:ctl:{id}", self.prefix)
    }

    /// The consumer group of one webhook on the event stream.
    pub fn webhook_group(&self, name: &str) -> String {
        format!("wh:{name}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_key_carries_the_hash_tag() {
        let k = Keys::new("hw");
        for key in [
            k.hb.clone(),
            k.nodes.clone(),
            k.online.clone(),
            k.events.clone(),
            k.client("P-1"),
            k.node("ab"),
            k.own("ab"),
            k.control("ab"),
        ] {
            assert!(key.starts_with("{hw}:"), "{key}");
        }
    }
}
