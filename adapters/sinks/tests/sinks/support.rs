//! What the sink tests share: results to publish, the real Mosquitto broker of `visprompt-testkit`,
//! an MQTT subscriber, a tiny HTTP receiver with scripted answers, and polling helpers.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::mpsc;
use visprompt_domain::{Color, Label, LabelId, LabelName, ProjectId};
use visprompt_runtime::{
    BitMask, Detection, FrameResult, LabelTable, RgbImage, SinkHealth, SinkHealthReporter,
    VideoFrame,
};
pub use visprompt_testkit::{Access, Broker, TlsListener, free_port};

/// A project with one label ("cat") and results of 16×12 frames with one rectangular detection.
pub struct Fixture {
    pub project_id: ProjectId,
    pub label_id: LabelId,
    labels: Arc<LabelTable>,
}

impl Fixture {
    pub fn new() -> Self {
        let project_id = ProjectId::new();
        let label = Label {
            id: LabelId::new(),
            project_id,
            name: LabelName::parse("cat").unwrap(),
            color: Color::parse("#E6194B").unwrap(),
            created_at: chrono::Utc::now(),
            updated_at: chrono::Utc::now(),
        };
        Self {
            project_id,
            label_id: label.id,
            labels: Arc::new(LabelTable::from_labels(&[label])),
        }
    }

    /// Frame `seq` with the detection's rectangle covering x 2..6, y 3..8.
    pub fn result(&self, seq: u64) -> FrameResult {
        let frame = VideoFrame {
            seq,
            captured_at: Instant::now(),
            timestamp: chrono::Utc::now(),
            image: Arc::new(RgbImage::new(16, 12)),
            index: None,
        };
        let mask = BitMask::from_fn(16, 12, |x, y| (2..6).contains(&x) && (3..8).contains(&y));
        let detection = Detection::from_mask(self.label_id, 0.75, mask).unwrap();
        FrameResult::new(
            self.project_id,
            frame,
            vec![detection],
            self.labels.clone(),
            Duration::from_millis(3),
        )
    }

    /// Checks a received message against what `result(seq)` publishes.
    pub fn assert_payload(&self, json: &serde_json::Value, seq: u64) {
        assert_eq!(json["version"], 1);
        assert_eq!(json["project_id"], self.project_id.to_string());
        assert_eq!(json["frame"]["sequence"], seq);
        assert_eq!(json["frame"]["width"], 16);
        assert_eq!(json["frame"]["height"], 12);
        let detections = json["detections"].as_array().unwrap();
        assert_eq!(detections.len(), 1);
        let detection = &detections[0];
        assert_eq!(detection["label_id"], self.label_id.to_string());
        assert_eq!(detection["label_name"], "cat");
        assert_eq!(detection["label_color"], "#E6194B");
        assert_eq!(detection["score"], 0.75);
        assert_eq!(detection["box"], serde_json::json!([2.0, 3.0, 6.0, 8.0]));
        assert_eq!(detection["mask"]["size"], serde_json::json!([12, 16]));
        // Column-major runs: 2 empty columns (24 pixels) and 3 rows of the third, then 5 set.
        assert_eq!(detection["mask"]["counts"][0], 27);
        assert_eq!(detection["mask"]["counts"][1], 5);
    }
}

pub fn parse(payload: &[u8]) -> serde_json::Value {
    serde_json::from_slice(payload).expect("the payload is JSON")
}

/// Polls `health` until `accept` says yes; fails with the last state seen.
pub async fn wait_for_health(
    health: &SinkHealthReporter,
    within: Duration,
    accept: impl Fn(&SinkHealth) -> bool,
) -> SinkHealth {
    let deadline = Instant::now() + within;
    loop {
        let state = health.get();
        if accept(&state) {
            return state;
        }
        assert!(
            Instant::now() < deadline,
            "the sink's health stayed {state:?} for {within:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

pub fn is_retrying(health: &SinkHealth) -> bool {
    matches!(health, SinkHealth::Retrying { .. })
}

/// An MQTT client that has subscribed to one topic and hands over every message's payload.
pub struct Subscriber {
    /// Each message's payload and the QoS it was delivered with.
    messages: mpsc::UnboundedReceiver<(QoS, Vec<u8>)>,
    task: tokio::task::JoinHandle<()>,
}

impl Subscriber {
    /// Returns once the broker acknowledged the subscription, so nothing published afterwards is
    /// missed.
    pub async fn connect(port: u16, topic: &str, access: &Access) -> Self {
        let id = format!("test-subscriber-{}", uuid::Uuid::new_v4().simple());
        let mut options = MqttOptions::new(id, "127.0.0.1", port);
        options.set_max_packet_size(16 * 1024 * 1024, 64 * 1024);
        if let Access::Password { username, password } = access {
            options.set_credentials(username, password);
        }
        let (client, mut event_loop) = AsyncClient::new(options, 16);
        client.subscribe(topic, QoS::AtLeastOnce).await.unwrap();
        let (subscribed_tx, subscribed) = tokio::sync::oneshot::channel();
        let (sender, messages) = mpsc::unbounded_channel();
        let task = tokio::spawn(async move {
            // Keeping the client alive keeps the event loop's request channel open.
            let _client = client;
            let mut subscribed_tx = Some(subscribed_tx);
            while let Ok(event) = event_loop.poll().await {
                match event {
                    Event::Incoming(Packet::SubAck(_)) => {
                        if let Some(tx) = subscribed_tx.take() {
                            let _ = tx.send(());
                        }
                    }
                    Event::Incoming(Packet::Publish(publish)) => {
                        let _ = sender.send((publish.qos, publish.payload.to_vec()));
                    }
                    _ => {}
                }
            }
        });
        tokio::time::timeout(Duration::from_secs(5), subscribed)
            .await
            .expect("the subscription is acknowledged in time")
            .expect("the subscriber's event loop keeps running");
        Self { messages, task }
    }

    pub async fn next(&mut self) -> Vec<u8> {
        self.next_with_qos().await.1
    }

    pub async fn next_with_qos(&mut self) -> (QoS, Vec<u8>) {
        tokio::time::timeout(Duration::from_secs(5), self.messages.recv())
            .await
            .expect("a message arrives within 5 s")
            .expect("the subscriber is still connected")
    }

    /// Skips messages until one of frame `seq` arrives.
    pub async fn until_sequence(&mut self, seq: u64) -> serde_json::Value {
        loop {
            let json = parse(&self.next().await);
            if json["frame"]["sequence"] == seq {
                return json;
            }
        }
    }

    /// No message within `wait`.
    pub async fn assert_quiet(&mut self, wait: Duration) {
        if let Ok(Some((_, message))) = tokio::time::timeout(wait, self.messages.recv()).await {
            panic!("unexpected message: {}", String::from_utf8_lossy(&message));
        }
    }
}

impl Drop for Subscriber {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// One request the [`HttpReceiver`] got, with the status it answered.
#[derive(Debug)]
pub struct Received {
    pub request_line: String,
    pub content_type: Option<String>,
    pub body: String,
    pub status: u16,
}

/// An HTTP/1.1 endpoint on a loopback port that records every request and answers with the
/// statuses scripted for it (200 once the script is used up), closing each connection.
pub struct HttpReceiver {
    pub port: u16,
    requests: mpsc::UnboundedReceiver<Received>,
    task: tokio::task::JoinHandle<()>,
}

impl HttpReceiver {
    pub async fn start(statuses: &[u16]) -> Self {
        Self::start_on(0, statuses).await
    }

    pub async fn start_on(port: u16, statuses: &[u16]) -> Self {
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
            .await
            .unwrap();
        let port = listener.local_addr().unwrap().port();
        let script = Arc::new(Mutex::new(
            statuses.iter().copied().collect::<VecDeque<_>>(),
        ));
        let (sender, requests) = mpsc::unbounded_channel();
        let task = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    return;
                };
                let script = script.clone();
                let sender = sender.clone();
                tokio::spawn(async move {
                    if let Some(request) = answer(stream, &script).await {
                        let _ = sender.send(request);
                    }
                });
            }
        });
        Self {
            port,
            requests,
            task,
        }
    }

    pub async fn next(&mut self) -> Received {
        tokio::time::timeout(Duration::from_secs(10), self.requests.recv())
            .await
            .expect("a request arrives within 10 s")
            .unwrap()
    }

    pub async fn assert_quiet(&mut self, wait: Duration) {
        if let Ok(Some(request)) = tokio::time::timeout(wait, self.requests.recv()).await {
            panic!("unexpected request: {request:?}");
        }
    }
}

impl Drop for HttpReceiver {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Reads one request (headers, then `content-length` bytes of body) and answers it.
async fn answer(
    mut stream: tokio::net::TcpStream,
    script: &Mutex<VecDeque<u16>>,
) -> Option<Received> {
    let mut data = Vec::new();
    let mut chunk = [0u8; 4096];
    let header_end = loop {
        if let Some(at) = data.windows(4).position(|w| w == b"\r\n\r\n") {
            break at + 4;
        }
        let read = stream.read(&mut chunk).await.ok()?;
        if read == 0 {
            return None;
        }
        data.extend_from_slice(&chunk[..read]);
    };
    let head = String::from_utf8_lossy(&data[..header_end]).into_owned();
    let mut lines = head.split("\r\n");
    let request_line = lines.next()?.to_owned();
    let mut content_length = 0;
    let mut content_type = None;
    for line in lines {
        if let Some((name, value)) = line.split_once(':') {
            match name.trim().to_ascii_lowercase().as_str() {
                "content-length" => content_length = value.trim().parse().ok()?,
                "content-type" => content_type = Some(value.trim().to_owned()),
                _ => {}
            }
        }
    }
    while data.len() < header_end + content_length {
        let read = stream.read(&mut chunk).await.ok()?;
        if read == 0 {
            return None;
        }
        data.extend_from_slice(&chunk[..read]);
    }
    let body = String::from_utf8(data[header_end..header_end + content_length].to_vec()).ok()?;
    let status = script.lock().unwrap().pop_front().unwrap_or(200);
    let response =
        format!("HTTP/1.1 {status} Scripted\r\ncontent-length: 0\r\nconnection: close\r\n\r\n");
    stream.write_all(response.as_bytes()).await.ok()?;
    let _ = stream.shutdown().await;
    Some(Received {
        request_line,
        content_type,
        body,
        status,
    })
}
