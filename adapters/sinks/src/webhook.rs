//! The webhook sink: an HTTP POST of each result's JSON to a URL. `publish` puts the result in a
//! small queue that keeps the newest ones; a task of its own delivers them one at a time, retrying
//! connection failures and 5xx answers with back-off. Other 4xx answers drop that one result:
//! sending it again would get the same answer.

use std::collections::VecDeque;
use std::error::Error as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use reqwest::{StatusCode, Url, header};
use tokio::sync::{Notify, watch};
use tokio::task::JoinHandle;
use visprompt_runtime::{FrameResult, ResultSink, SinkError, SinkHealth, SinkHealthReporter};

use crate::backoff::Backoff;
use crate::settings::{BackoffSettings, WebhookSettings};

/// A running webhook sink. Dropping it without `close` stops its delivery task abruptly.
pub struct WebhookSink {
    queue: Arc<Queue>,
    /// Set by `close`: the task delivers what is queued, one attempt each, then ends.
    closing: watch::Sender<bool>,
    task: Option<JoinHandle<()>>,
    close_timeout: Duration,
    health: SinkHealthReporter,
}

impl WebhookSink {
    /// Checks the URL and starts the delivery task; an endpoint that is down is not an error here.
    /// Must be called inside a tokio runtime.
    pub fn start(
        url: &str,
        settings: &WebhookSettings,
        backoff: BackoffSettings,
        health: SinkHealthReporter,
    ) -> Result<Self, SinkError> {
        let url = Url::parse(url)
            .map_err(|e| SinkError::Invalid(format!("the webhook URL is not valid: {e}")))?;
        if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none_or(str::is_empty) {
            return Err(SinkError::Invalid(
                "the webhook URL must be http:// or https:// with a host".into(),
            ));
        }
        // The TLS configuration is given explicitly even for http:// URLs: this crate enables no
        // rustls provider for reqwest, which would otherwise look for one when building a client.
        // Plain http gets one that trusts nothing, so it does not depend on the system's roots.
        let tls = if url.scheme() == "https" {
            crate::tls::client_config(None)?
        } else {
            crate::tls::trusting_nothing()
        };
        let client = reqwest::Client::builder()
            .timeout(settings.request_timeout)
            .connect_timeout(settings.request_timeout)
            // A redirected POST turns into a GET in most cases; an answer that redirects is
            // reported instead of being followed.
            .redirect(reqwest::redirect::Policy::none())
            .tls_backend_preconfigured(tls)
            .build()
            .map_err(|e| SinkError::Invalid(format!("cannot set up the HTTP client: {e}")))?;

        let queue = Arc::new(Queue {
            items: Mutex::default(),
            capacity: settings.queue_capacity.max(1),
            ready: Notify::new(),
            dropped: AtomicU64::new(0),
            next_id: AtomicU64::new(0),
        });
        let (closing, closing_rx) = watch::channel(false);
        health.set(SinkHealth::Connecting);
        let task = tokio::spawn(
            Delivery {
                client,
                // Only the origin goes into messages: path and query may hold a secret token.
                origin: url.origin().ascii_serialization(),
                url,
                queue: queue.clone(),
                backoff: Backoff::new(backoff),
                health: health.clone(),
                closing: closing_rx,
            }
            .run(),
        );
        Ok(Self {
            queue,
            closing,
            task: Some(task),
            close_timeout: settings.close_timeout,
            health,
        })
    }

    /// Results dropped so far: pushed out of the full queue, or refused by the endpoint.
    pub fn dropped(&self) -> u64 {
        self.queue.dropped.load(Ordering::Relaxed)
    }
}

#[async_trait]
impl ResultSink for WebhookSink {
    async fn publish(&mut self, result: &FrameResult) -> Result<(), SinkError> {
        self.queue.push(result.payload_json());
        Ok(())
    }

    async fn close(&mut self) {
        let Some(mut task) = self.task.take() else {
            return;
        };
        let _ = self.closing.send(true);
        if tokio::time::timeout(self.close_timeout, &mut task)
            .await
            .is_err()
        {
            task.abort();
        }
        self.health.set(SinkHealth::Stopped);
    }
}

impl Drop for WebhookSink {
    fn drop(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}

/// Results waiting for delivery, newest last. The item being delivered stays at the front until
/// it is delivered, so a retried result can still be pushed out by newer ones.
struct Queue {
    items: Mutex<VecDeque<Queued>>,
    capacity: usize,
    /// Wakes the delivery task when something is pushed.
    ready: Notify,
    dropped: AtomicU64,
    next_id: AtomicU64,
}

#[derive(Clone)]
struct Queued {
    /// Tells an item from the one that replaced it at the front while it was being delivered.
    id: u64,
    payload: Arc<str>,
}

impl Queue {
    fn push(&self, payload: Arc<str>) {
        let mut items = self.items.lock().unwrap_or_else(|e| e.into_inner());
        if items.len() >= self.capacity {
            items.pop_front();
            let dropped = self.dropped.fetch_add(1, Ordering::Relaxed) + 1;
            if dropped.is_power_of_two() {
                tracing::warn!(
                    message = "Webhook queue full; dropping the oldest results.",
                    dropped
                );
            }
        }
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        items.push_back(Queued { id, payload });
        drop(items);
        self.ready.notify_one();
    }

    fn front(&self) -> Option<Queued> {
        let items = self.items.lock().unwrap_or_else(|e| e.into_inner());
        items.front().cloned()
    }

    /// Removes `id` if it is still at the front (newer results may have pushed it out already).
    fn remove(&self, id: u64) {
        let mut items = self.items.lock().unwrap_or_else(|e| e.into_inner());
        if items.front().is_some_and(|front| front.id == id) {
            items.pop_front();
        }
    }
}

enum Outcome {
    Delivered,
    /// Worth another try: the endpoint is unreachable, timed out or had a server error.
    Retry(String),
    /// The endpoint refused this result; another try would be refused too.
    Refused(String),
}

/// The delivery task's state.
struct Delivery {
    client: reqwest::Client,
    url: Url,
    origin: String,
    queue: Arc<Queue>,
    backoff: Backoff,
    health: SinkHealthReporter,
    closing: watch::Receiver<bool>,
}

impl Delivery {
    async fn run(mut self) {
        loop {
            let Some(item) = self.queue.front() else {
                if *self.closing.borrow() {
                    return;
                }
                tokio::select! {
                    _ = self.queue.ready.notified() => {}
                    // An error means the sink is gone without `close`; nothing more will come.
                    changed = self.closing.changed() => if changed.is_err() { return },
                }
                continue;
            };
            match self.post(&item.payload).await {
                Outcome::Delivered => {
                    self.queue.remove(item.id);
                    self.backoff.reset();
                    if self.health.get() != SinkHealth::Connected {
                        tracing::info!(message = "Webhook delivering.", endpoint = %self.origin);
                    }
                    self.health.set(SinkHealth::Connected);
                }
                Outcome::Refused(message) => {
                    self.queue.remove(item.id);
                    self.queue.dropped.fetch_add(1, Ordering::Relaxed);
                    tracing::warn!(message = "Webhook refused a result; dropped it.", error = %message);
                    self.health.set(SinkHealth::Retrying { message });
                }
                Outcome::Retry(message) => {
                    let delay = self.backoff.next_delay();
                    tracing::warn!(
                        message = "Webhook cannot deliver; retrying.",
                        error = %message,
                        retry_in_ms = delay.as_millis() as u64
                    );
                    self.health.set(SinkHealth::Retrying { message });
                    // While closing, what is not delivered at the first attempt is given up.
                    if *self.closing.borrow() {
                        return;
                    }
                    tokio::select! {
                        _ = tokio::time::sleep(delay) => {}
                        changed = self.closing.changed() => if changed.is_err() { return },
                    }
                }
            }
        }
    }

    async fn post(&self, payload: &str) -> Outcome {
        let response = self
            .client
            .post(self.url.clone())
            .header(header::CONTENT_TYPE, "application/json")
            .body(payload.to_owned())
            .send()
            .await;
        match response {
            Ok(response) => {
                let status = response.status();
                if status.is_success() {
                    Outcome::Delivered
                } else if status.is_server_error()
                    || status == StatusCode::REQUEST_TIMEOUT
                    || status == StatusCode::TOO_MANY_REQUESTS
                {
                    Outcome::Retry(format!("webhook {} answered {status}", self.origin))
                } else {
                    Outcome::Refused(format!("webhook {} answered {status}", self.origin))
                }
            }
            Err(error) => Outcome::Retry(format!(
                "webhook {}: {}",
                self.origin,
                error_chain(&error.without_url())
            )),
        }
    }
}

/// reqwest's own message is generic ("error sending request"); the cause (refused, timed out,
/// certificate) is further down the chain.
fn error_chain(error: &reqwest::Error) -> String {
    let mut message = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        message.push_str(": ");
        message.push_str(&cause.to_string());
        source = cause.source();
    }
    message
}
