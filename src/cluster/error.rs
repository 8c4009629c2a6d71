//! What can go wrong talking to the cluster's Redis.

/// A cluster operation failed. Every one is retried or answered as "unavailable": none is
/// fatal to the node, which keeps supervising its own clients while Redis is away.
#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    /// Redis answered with an error, or the connection failed.
    #[error("redis: {0}")]
    Redis(#[from] redis::RedisError),
    /// Redis did not answer in time (down, frozen, or overloaded).
    #[error("redis did not answer {what} within {ms} ms")]
    Timeout {
        /// The operation.
        what: &'static str,
        /// The deadline it had.
        ms: u64,
    },
    /// Redis answered something a script or command cannot return (another program's data
    /// under the same key prefix?).
    #[error("redis: unexpected answer to {what}: {detail}")]
    Unexpected {
        /// The operation.
        what: &'static str,
        /// What came back.
        detail: String,
    },
    /// The cluster task has stopped (the server is shutting down).
    #[error("the cluster task has stopped")]
    Stopped,
}
