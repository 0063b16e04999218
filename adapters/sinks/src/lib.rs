//! Result sinks: the adapters behind the runtime's sink port, which publish every processed frame's
//! prediction JSON to an MQTT broker, a webhook or a JSON Lines file. Each sink hands the work to
//! its own task, so `publish` only queues (or drops) and never makes the pipeline wait; what the
//! delivery side is doing is reported through the sink's [`SinkHealthReporter`].
//!
//! # Layout
//!
//! - [`Sinks`]: the [`SinkFactory`] that turns a stored [`SinkConfig`] into a running sink.
//! - [`settings`]: process-wide knobs (a private CA, queue sizes, time-outs, rotation size).
//! - [`mqtt`], [`webhook`], [`file`]: one adapter per technology.
//! - `backoff`, `tls`: the retry schedule and the rustls client set-up the adapters share.
//!
//! The payload is `FrameResult::payload_json()`, the same document for every sink; its schema is
//! in `docs/payload.md`.

mod backoff;
pub mod file;
pub mod mqtt;
pub mod settings;
mod tls;
pub mod webhook;

use async_trait::async_trait;
use visprompt_domain::{MediaRoots, SinkConfig};
use visprompt_runtime::{Confinement, ResultSink, SinkError, SinkFactory, SinkHealthReporter};

pub use file::FileSink;
pub use mqtt::MqttSink;
pub use settings::{BackoffSettings, FileSettings, MqttSettings, SinkSettings, WebhookSettings};
pub use webhook::WebhookSink;

/// Makes ring the process-wide rustls provider, for HTTP clients built without an explicit TLS
/// configuration (the workspace builds rustls with more than one provider, so none is chosen by
/// itself). Programs call it once at start-up; later calls do nothing.
pub fn install_crypto_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// Builds the sink a stored configuration asks for, with the process-wide [`SinkSettings`].
/// File sinks write only inside the media roots given to [`Sinks::confined_to`]; by default there
/// are none, so file sinks are refused.
#[derive(Clone, Debug, Default)]
pub struct Sinks {
    settings: SinkSettings,
    confinement: Confinement,
}

impl Sinks {
    /// File sinks may write inside `roots` (symlinks resolved), nowhere else.
    pub fn confined_to(mut self, roots: &MediaRoots) -> Self {
        self.confinement = Confinement::new(roots);
        self
    }

    pub fn new(settings: SinkSettings) -> Self {
        Self {
            settings,
            confinement: Confinement::default(),
        }
    }
}

#[async_trait]
impl SinkFactory for Sinks {
    async fn build(
        &self,
        config: &SinkConfig,
        health: SinkHealthReporter,
    ) -> Result<Box<dyn ResultSink>, SinkError> {
        let backoff = self.settings.backoff;
        Ok(match config {
            SinkConfig::Mqtt(broker) => Box::new(MqttSink::start(
                broker,
                &self.settings.mqtt,
                backoff,
                health,
            )?),
            SinkConfig::Webhook { url } => Box::new(WebhookSink::start(
                url,
                &self.settings.webhook,
                backoff,
                health,
            )?),
            SinkConfig::File { path } => Box::new(
                FileSink::start(
                    path,
                    &self.confinement,
                    &self.settings.file,
                    backoff,
                    health,
                )
                .await?,
            ),
        })
    }
}
