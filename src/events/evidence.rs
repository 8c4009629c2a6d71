//! Why a client was judged late or offline: the figures behind the verdict.

use serde::{Deserialize, Serialize};

pub use crate::supervision::PhiValue;

/// Which rule judges silent clients (`server.detector`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DetectorKind {
    /// Offline after the client's timeout, `late` after `server.late_ratio` of it.
    #[default]
    Fixed,
    /// Offline when the phi-accrual value of the silence exceeds `phi.threshold`, and never
    /// later than the timeout (docs/detection.md).
    Phi,
}

impl DetectorKind {
    /// As written in the configuration and in evidence.
    pub fn as_str(self) -> &'static str {
        match self {
            DetectorKind::Fixed => "fixed",
            DetectorKind::Phi => "phi",
        }
    }
}

/// The figures behind a `late` or `offline` verdict, carried by the event, its log line and
/// its webhook, so that a reader can see why it was made.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Evidence {
    /// The detector in force.
    pub detector: DetectorKind,
    /// Time since the client's last heartbeat when the verdict was made, or since the server
    /// started watching it again (after a restart, or at the end of a pause), if later.
    pub silent_ms: u64,
    /// The client's timeout (the latest an offline verdict can come).
    pub timeout_ms: u64,
    /// The mean of its recent heartbeat intervals, if it has sent two heartbeats since it
    /// came online (or since the server started).
    pub mean_interval_ms: Option<u64>,
    /// Heartbeats it missed: the silence divided by its mean interval (0 when unknown).
    pub missed_beats: u64,
    /// The phi value of the silence (phi detector, once the client has enough intervals).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phi: Option<PhiValue>,
}

impl std::fmt::Display for Evidence {
    /// `detector=phi silent_ms=2400 timeout_ms=20000 mean_interval_ms=1001 missed_beats=2
    /// phi=8.01`: the log line's form.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "detector={} silent_ms={} timeout_ms={}",
            self.detector.as_str(),
            self.silent_ms,
            self.timeout_ms
        )?;
        match self.mean_interval_ms {
            Some(mean) => write!(f, " mean_interval_ms={mean}")?,
            None => f.write_str(" mean_interval_ms=-")?,
        }
        write!(f, " missed_beats={}", self.missed_beats)?;
        if let Some(phi) = self.phi {
            write!(f, " phi={:.2}", phi.get())?;
        }
        Ok(())
    }
}
