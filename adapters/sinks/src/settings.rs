//! Process-wide sink settings: what the stored sink configuration does not say (a private CA,
//! queue sizes, time-outs, rotation); QoS and whether to use TLS are per sink, in the stored
//! configuration. The server maps its `sinks` settings section onto these; the defaults are what
//! a sink gets when nothing is configured. The close time-outs stay under the two seconds the
//! pipeline gives a sink task to stop before aborting it.

use std::path::PathBuf;
use std::time::Duration;

/// Everything [`crate::Sinks`] needs besides a stored `SinkConfig`.
#[derive(Clone, Debug, Default)]
pub struct SinkSettings {
    pub mqtt: MqttSettings,
    pub webhook: WebhookSettings,
    pub file: FileSettings,
    pub backoff: BackoffSettings,
}

/// How long a sink waits between failed attempts: `initial`, doubled after each failure up to
/// `max`, back to `initial` after a success.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BackoffSettings {
    pub initial: Duration,
    pub max: Duration,
}

impl Default for BackoffSettings {
    fn default() -> Self {
        Self {
            initial: Duration::from_millis(500),
            max: Duration::from_secs(10),
        }
    }
}

#[derive(Clone, Debug)]
pub struct MqttSettings {
    /// PEM file with the certificate authorities that sign the brokers' certificates, for the
    /// sinks whose configuration asks for TLS; when unset, the operating system's trusted roots
    /// are used. For private CAs (and the tests); a broker with a public certificate needs none.
    pub ca_file: Option<PathBuf>,
    /// Requests the client keeps for its event loop; `publish` drops a result when it is full
    /// (for example while the broker is down) instead of waiting.
    pub queue_capacity: usize,
    /// MQTT keep-alive; whole seconds, at least one (the client library refuses less).
    pub keep_alive: Duration,
    /// A larger result is not published (`publish` reports `Failed`): the client library would
    /// otherwise drop the whole connection over one oversized packet.
    pub max_payload_bytes: usize,
    /// How long `close` waits for queued results and the disconnect to reach the broker.
    pub close_timeout: Duration,
}

impl Default for MqttSettings {
    fn default() -> Self {
        Self {
            ca_file: None,
            queue_capacity: 64,
            keep_alive: Duration::from_secs(30),
            max_payload_bytes: 8 * 1024 * 1024,
            close_timeout: Duration::from_secs(1),
        }
    }
}

#[derive(Clone, Debug)]
pub struct WebhookSettings {
    /// Results waiting for delivery; when full the oldest is dropped, so the newest always gets
    /// through first after an outage.
    pub queue_capacity: usize,
    /// Whole request, connecting included.
    pub request_timeout: Duration,
    /// How long `close` keeps delivering what is queued (one attempt each) before giving up.
    pub close_timeout: Duration,
}

impl Default for WebhookSettings {
    fn default() -> Self {
        Self {
            queue_capacity: 8,
            request_timeout: Duration::from_secs(5),
            close_timeout: Duration::from_millis(1500),
        }
    }
}

#[derive(Clone, Debug)]
pub struct FileSettings {
    /// The file is rotated before a line would take it past this size.
    pub max_bytes: u64,
    /// Rotated files kept (`path.1` newest … `path.N` oldest); 0 keeps none.
    pub keep: u32,
    /// Lines waiting for the writer thread; when full, new lines are dropped.
    pub queue_capacity: usize,
    /// How long `close` waits for queued lines to be written.
    pub close_timeout: Duration,
}

impl Default for FileSettings {
    fn default() -> Self {
        Self {
            max_bytes: 64 * 1024 * 1024,
            keep: 3,
            queue_capacity: 256,
            close_timeout: Duration::from_millis(1500),
        }
    }
}
