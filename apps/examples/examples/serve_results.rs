//! The pipeline's results served by a sink of one's own: `LatestResult` keeps the newest
//! prediction JSON (the payload of docs/payload.md, as MQTT and webhooks get it), and a small HTTP
//! server answers `GET /latest` with it. `cargo run --example serve_results [-- SECONDS [PORT]]`
//! runs for SECONDS (0, the default: until Ctrl-C) on 127.0.0.1:PORT (0: any free port).
//!
//! `curl http://127.0.0.1:PORT/latest` then shows the newest frame's detections.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpListener;
use tokio::sync::watch;
use visprompt_classical::ClassicalDetector;
use visprompt_domain::{
    ClassicalParams, Color, LabelId, LabelName, MediaRoots, Shape, SourceConfig,
};
use visprompt_media::synthetic::ObjectKind;
use visprompt_media::{MediaSourceFactory, SyntheticScene};
use visprompt_runtime::embedded::LivePipeline;
use visprompt_runtime::{FrameResult, Reference, ReferenceAnnotation, ResultSink, SinkError};

/// A custom sink: the newest result's JSON, for whoever asks next.
struct LatestResult(watch::Sender<Option<Arc<str>>>);

#[async_trait]
impl ResultSink for LatestResult {
    async fn publish(&mut self, result: &FrameResult) -> Result<(), SinkError> {
        self.0.send_replace(Some(result.payload_json()));
        Ok(())
    }
}

/// Answers each connection's request: `/latest` with the newest JSON, anything else with 404.
async fn serve(listener: TcpListener, latest: watch::Receiver<Option<Arc<str>>>) {
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        let latest = latest.clone();
        tokio::spawn(async move {
            let mut stream = BufReader::new(stream);
            let mut request_line = String::new();
            if stream.read_line(&mut request_line).await.is_err() {
                return;
            }
            let path = request_line.split_whitespace().nth(1).unwrap_or("");
            let (status, body) = match (path, latest.borrow().clone()) {
                ("/latest", Some(json)) => ("200 OK", json.to_string()),
                ("/latest", None) => (
                    "503 Service Unavailable",
                    "{\"error\":\"no result yet\"}".into(),
                ),
                _ => ("404 Not Found", "{\"error\":\"try /latest\"}".into()),
            };
            let response = format!(
                "HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
            let _ = stream.get_mut().write_all(response.as_bytes()).await;
        });
    }
}

#[tokio::main]
async fn main() {
    let mut args = std::env::args().skip(1);
    let seconds: u64 = args
        .next()
        .map_or(0, |s| s.parse().expect("SECONDS: a number"));
    let port: u16 = args
        .next()
        .map_or(0, |p| p.parse().expect("PORT: a number"));

    // The detector, fitted as in `detect_synthetic`: one reference frame, one object's mask.
    let scene = SyntheticScene::default();
    let (_, disc) = scene
        .ground_truth(0)
        .into_iter()
        .find(|(kind, _)| *kind == ObjectKind::StripedDisc)
        .expect("the scene shows a striped disc");
    let label = LabelId::new();
    let reference = Reference {
        image: Arc::new(scene.render(0)),
        annotations: vec![ReferenceAnnotation {
            label_id: label,
            shape: Shape::Mask(disc.to_rle()),
            mask: disc,
        }],
    };
    let detector = ClassicalDetector::fit(ClassicalParams::default(), &[reference])
        .expect("one annotated object is enough to fit");

    let (latest, latest_rx) = watch::channel(None);
    let pipeline = LivePipeline::builder()
        .label(
            label,
            LabelName::parse("striped disc").expect("a valid label name"),
            Color::rgb(230, 57, 70),
        )
        .source(
            Arc::new(MediaSourceFactory::new(MediaRoots::default())),
            SourceConfig::Synthetic,
        )
        .detector(Box::new(detector))
        .sink(Box::new(LatestResult(latest)))
        .start()
        .await;

    let listener = TcpListener::bind(("127.0.0.1", port))
        .await
        .expect("binding the port");
    let address = listener.local_addr().expect("a bound address");
    println!("serving http://{address}/latest");
    let server = tokio::spawn(serve(listener, latest_rx));

    if seconds > 0 {
        tokio::time::sleep(Duration::from_secs(seconds)).await;
    } else {
        let _ = tokio::signal::ctrl_c().await;
    }
    server.abort();
    pipeline.stop().await;
    println!("stopped");
}
