//! Sinks: where results leave the process (MQTT, webhooks, files). Each sink runs in its own task
//! subscribed to the results; a slow or broken sink skips frames and never slows the pipeline.

use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use visprompt_domain::SinkConfig;

use crate::frame::FrameResult;

#[derive(Debug, thiserror::Error)]
pub enum SinkError {
    /// The configuration cannot be used (a malformed URL, a path that cannot be created).
    #[error("{0}")]
    Invalid(String),
    /// Publishing failed this time (broker down, endpoint refusing); the sink keeps trying.
    #[error("{0}")]
    Failed(String),
}

/// How a sink is doing, as the API shows it.
#[derive(Clone, Debug, PartialEq)]
pub enum SinkHealth {
    Connecting,
    Connected,
    /// Not delivering; retrying with back-off.
    Retrying {
        message: String,
    },
    Stopped,
}

/// Shared between a sink and the status endpoint; the sink writes, the API reads.
#[derive(Clone, Debug)]
pub struct SinkHealthReporter(Arc<Mutex<SinkHealth>>);

impl Default for SinkHealthReporter {
    fn default() -> Self {
        Self(Arc::new(Mutex::new(SinkHealth::Connecting)))
    }
}

impl SinkHealthReporter {
    pub fn set(&self, health: SinkHealth) {
        *self.0.lock().unwrap_or_else(|e| e.into_inner()) = health;
    }

    pub fn get(&self) -> SinkHealth {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

#[async_trait]
pub trait ResultSink: Send {
    /// Hands one result over (its JSON is `result.payload_json()`). MAY return before delivery
    /// (a queue); MUST NOT wait longer than the sink's own timeout.
    async fn publish(&mut self, result: &FrameResult) -> Result<(), SinkError>;

    /// Flushes and disconnects; called once before the sink is dropped.
    async fn close(&mut self) {}
}

#[async_trait]
pub trait SinkFactory: Send + Sync {
    /// MUST return `Invalid` for a configuration that can never work; a broker that is down is
    /// not an error here (the sink retries and reports through `health`).
    async fn build(
        &self,
        config: &SinkConfig,
        health: SinkHealthReporter,
    ) -> Result<Box<dyn ResultSink>, SinkError>;
}
