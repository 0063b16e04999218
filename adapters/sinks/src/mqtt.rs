//! The MQTT sink: one message per result on the configured topic, through rumqttc. The client's
//! event loop runs in its own task, which reconnects with back-off when the broker goes away;
//! `publish` only puts a message in the client's bounded request queue and drops it when that is
//! full, so a dead broker never slows the pipeline. QoS and TLS come from the sink's stored
//! configuration; only a private CA for TLS is a process-wide setting.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use async_trait::async_trait;
use rumqttc::{
    AsyncClient, ClientError, ConnectionError, Event, EventLoop, MqttOptions, Outgoing, Packet,
    QoS, TlsConfiguration, Transport,
};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use visprompt_domain::MqttQos;
use visprompt_runtime::{FrameResult, ResultSink, SinkError, SinkHealth, SinkHealthReporter};

use crate::backoff::Backoff;
use crate::settings::{BackoffSettings, MqttSettings};

/// Room for the fixed header, the topic length and a packet id around topic and payload.
const PACKET_OVERHEAD: usize = 16;

/// A running MQTT sink. Dropping it without `close` stops its event loop task abruptly.
pub struct MqttSink {
    client: AsyncClient,
    topic: String,
    qos: QoS,
    max_payload_bytes: usize,
    close_timeout: std::time::Duration,
    /// Results dropped because the request queue was full.
    dropped: Arc<AtomicU64>,
    /// Tells the event loop task to stop at once (after `close` gave the disconnect its chance).
    stop: watch::Sender<bool>,
    task: Option<JoinHandle<()>>,
    health: SinkHealthReporter,
}

impl MqttSink {
    /// Starts the event loop task; it connects in the background, so a broker that is down is not
    /// an error here. Must be called inside a tokio runtime.
    pub fn start(
        broker: &visprompt_domain::MqttSink,
        settings: &MqttSettings,
        backoff: BackoffSettings,
        health: SinkHealthReporter,
    ) -> Result<Self, SinkError> {
        if broker.broker_host.is_empty() || broker.topic.is_empty() {
            return Err(SinkError::Invalid(
                "an MQTT sink needs a broker host and a topic".into(),
            ));
        }
        // The client would refuse every publish to such a topic, in a way `publish` could not
        // tell from a full queue.
        if !rumqttc::valid_topic(&broker.topic) {
            return Err(SinkError::Invalid(
                "an MQTT topic to publish to cannot hold the wildcards + and #".into(),
            ));
        }
        // A client id of our own per sink: two clients with one id make the broker disconnect
        // each other in turn.
        let client_id = format!("visprompt-{}", uuid::Uuid::new_v4().simple());
        let mut options = MqttOptions::new(client_id, &broker.broker_host, broker.broker_port);
        options.set_keep_alive(settings.keep_alive.max(std::time::Duration::from_secs(1)));
        options.set_clean_session(true);
        let max_packet = settings.max_payload_bytes + broker.topic.len() + PACKET_OVERHEAD;
        options.set_max_packet_size(64 * 1024, max_packet);
        if let Some(username) = &broker.username {
            options.set_credentials(username, broker.password.as_deref().unwrap_or(""));
        }
        if broker.tls {
            let config = crate::tls::client_config(settings.ca_file.as_deref())?;
            options.set_transport(Transport::Tls(TlsConfiguration::Rustls(Arc::new(config))));
        }

        let (client, mut event_loop) = AsyncClient::new(options, settings.queue_capacity.max(1));
        event_loop.network_options.set_connection_timeout(5);
        let (stop, stopped) = watch::channel(false);
        health.set(SinkHealth::Connecting);
        let broker_address = format!("{}:{}", broker.broker_host, broker.broker_port);
        let task = tokio::spawn(run_event_loop(
            event_loop,
            broker_address,
            Backoff::new(backoff),
            health.clone(),
            stopped,
        ));
        Ok(Self {
            client,
            topic: broker.topic.clone(),
            qos: match broker.qos {
                MqttQos::AtMostOnce => QoS::AtMostOnce,
                MqttQos::AtLeastOnce => QoS::AtLeastOnce,
                MqttQos::ExactlyOnce => QoS::ExactlyOnce,
            },
            max_payload_bytes: settings.max_payload_bytes,
            close_timeout: settings.close_timeout,
            dropped: Arc::default(),
            stop,
            task: Some(task),
            health,
        })
    }

    /// Results dropped so far because the client's request queue was full.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }
}

#[async_trait]
impl ResultSink for MqttSink {
    async fn publish(&mut self, result: &FrameResult) -> Result<(), SinkError> {
        let payload = result.payload_json();
        if payload.len() > self.max_payload_bytes {
            return Err(SinkError::Failed(format!(
                "the result of frame {} is {} bytes, more than the {} an MQTT message may have",
                result.frame.seq,
                payload.len(),
                self.max_payload_bytes
            )));
        }
        // The client reports a full queue and an ended event loop alike; only `close` or a panic
        // ends the loop, and that is worth an error rather than a silent drop.
        if self.task.as_ref().is_none_or(|task| task.is_finished()) {
            return Err(SinkError::Failed("the MQTT event loop has stopped".into()));
        }
        match self
            .client
            .try_publish(&self.topic, self.qos, false, payload.as_bytes())
        {
            Ok(()) => Ok(()),
            // A full queue means the event loop is behind or the broker is away: dropping is the
            // expected outcome there, visible through the counter and the health.
            Err(ClientError::TryRequest(_)) => {
                let dropped = self.dropped.fetch_add(1, Ordering::Relaxed) + 1;
                if dropped.is_power_of_two() {
                    tracing::warn!(
                        message = "MQTT request queue full; dropping results.",
                        topic = %self.topic,
                        dropped
                    );
                }
                Ok(())
            }
            // Only the waiting `publish` of the client reports this variant.
            Err(ClientError::Request(_)) => {
                Err(SinkError::Failed("the MQTT event loop has stopped".into()))
            }
        }
    }

    async fn close(&mut self) {
        let Some(mut task) = self.task.take() else {
            return;
        };
        // The disconnect queues behind the results already accepted, so they go out first. With
        // no connection there is nothing to flush to, and waiting would only delay the caller.
        if self.health.get() == SinkHealth::Connected
            && self.client.try_disconnect().is_ok()
            && tokio::time::timeout(self.close_timeout, &mut task)
                .await
                .is_ok()
        {
            self.health.set(SinkHealth::Stopped);
            return;
        }
        let _ = self.stop.send(true);
        if tokio::time::timeout(std::time::Duration::from_millis(300), &mut task)
            .await
            .is_err()
        {
            task.abort();
        }
        self.health.set(SinkHealth::Stopped);
    }
}

impl Drop for MqttSink {
    fn drop(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}

/// Drives the connection until a disconnect was sent, the client is gone or `stop` is set. Every
/// error (refused, reset, timed out, bad credentials) is retried after a back-off delay, since
/// brokers come back and passwords get fixed.
async fn run_event_loop(
    mut event_loop: EventLoop,
    broker: String,
    mut backoff: Backoff,
    health: SinkHealthReporter,
    mut stop: watch::Receiver<bool>,
) {
    loop {
        let event = tokio::select! {
            _ = stop.changed() => break,
            event = event_loop.poll() => event,
        };
        match event {
            Ok(Event::Incoming(Packet::ConnAck(_))) => {
                backoff.reset();
                if health.get() != SinkHealth::Connected {
                    tracing::info!(message = "MQTT sink connected.", %broker);
                }
                health.set(SinkHealth::Connected);
            }
            Ok(Event::Outgoing(Outgoing::Disconnect)) => break,
            Ok(_) => {}
            Err(ConnectionError::RequestsDone) => break,
            Err(error) => {
                let message = format!("MQTT broker {broker}: {error}");
                let delay = backoff.next_delay();
                tracing::warn!(
                    message = "MQTT sink cannot deliver; retrying.",
                    %broker,
                    error = %error,
                    retry_in_ms = delay.as_millis() as u64
                );
                health.set(SinkHealth::Retrying { message });
                tokio::select! {
                    _ = stop.changed() => break,
                    _ = tokio::time::sleep(delay) => {}
                }
            }
        }
    }
}
