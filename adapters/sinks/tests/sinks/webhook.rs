//! The webhook sink against a real HTTP endpoint on a loopback port: bodies, retries of server
//! errors, refusals, an endpoint that is down, and URLs that can never work.

use std::time::{Duration, Instant};

use visprompt_domain::SinkConfig;
use visprompt_runtime::{ResultSink, SinkError, SinkFactory, SinkHealth, SinkHealthReporter};
use visprompt_sinks::{BackoffSettings, Sinks, WebhookSettings, WebhookSink};

use crate::support::{Fixture, HttpReceiver, free_port, is_retrying, parse, wait_for_health};

fn quick_backoff() -> BackoffSettings {
    BackoffSettings {
        initial: Duration::from_millis(50),
        max: Duration::from_millis(200),
    }
}

fn start(url: &str, health: &SinkHealthReporter) -> WebhookSink {
    WebhookSink::start(
        url,
        &WebhookSettings::default(),
        quick_backoff(),
        health.clone(),
    )
    .unwrap()
}

#[tokio::test]
async fn each_result_is_posted_as_its_payload_json_in_order() {
    // Arrange
    let mut receiver = HttpReceiver::start(&[]).await;
    let fixture = Fixture::new();
    let health = SinkHealthReporter::default();
    let url = format!(
        "http://127.0.0.1:{}/hooks/visprompt?token=abc",
        receiver.port
    );
    let mut sink = Sinks::default()
        .build(&SinkConfig::Webhook { url }, health.clone())
        .await
        .unwrap();
    let results: Vec<_> = (1..=3).map(|seq| fixture.result(seq)).collect();

    // Act
    for result in &results {
        sink.publish(result).await.unwrap();
    }

    // Assert
    for (seq, result) in (1..=3).zip(&results) {
        let request = receiver.next().await;
        assert_eq!(
            request.request_line,
            "POST /hooks/visprompt?token=abc HTTP/1.1"
        );
        assert_eq!(request.content_type.as_deref(), Some("application/json"));
        assert_eq!(request.body, &*result.payload_json());
        fixture.assert_payload(&parse(request.body.as_bytes()), seq);
    }
    wait_for_health(&health, Duration::from_secs(2), |h| {
        *h == SinkHealth::Connected
    })
    .await;
    sink.close().await;
    assert_eq!(health.get(), SinkHealth::Stopped);
}

#[tokio::test]
async fn server_errors_are_retried_until_the_result_is_accepted() {
    // Arrange
    let mut receiver = HttpReceiver::start(&[500, 503]).await;
    let fixture = Fixture::new();
    let health = SinkHealthReporter::default();
    let mut sink = start(&format!("http://127.0.0.1:{}/", receiver.port), &health);
    let result = fixture.result(4);

    // Act
    sink.publish(&result).await.unwrap();

    // Assert: the same body three times, the last one accepted.
    let first = receiver.next().await;
    assert_eq!(first.status, 500);
    let second = receiver.next().await;
    assert_eq!(second.status, 503);
    let third = receiver.next().await;
    assert_eq!(third.status, 200);
    for request in [&first, &second, &third] {
        assert_eq!(request.body, &*result.payload_json());
    }
    wait_for_health(&health, Duration::from_secs(2), |h| {
        *h == SinkHealth::Connected
    })
    .await;
    receiver.assert_quiet(Duration::from_millis(300)).await;
    assert_eq!(sink.dropped(), 0);
    sink.close().await;
}

#[tokio::test]
async fn a_refused_result_is_dropped_not_retried() {
    // Arrange
    let mut receiver = HttpReceiver::start(&[422]).await;
    let fixture = Fixture::new();
    let health = SinkHealthReporter::default();
    let mut sink = start(&format!("http://127.0.0.1:{}/", receiver.port), &health);

    // Act
    sink.publish(&fixture.result(1)).await.unwrap();
    let refused = receiver.next().await;
    let state = wait_for_health(&health, Duration::from_secs(2), is_retrying).await;
    sink.publish(&fixture.result(2)).await.unwrap();

    // Assert
    assert_eq!(refused.status, 422);
    assert!(format!("{state:?}").contains("422"), "{state:?}");
    let accepted = receiver.next().await;
    assert_eq!(accepted.status, 200);
    fixture.assert_payload(&parse(accepted.body.as_bytes()), 2);
    receiver.assert_quiet(Duration::from_millis(300)).await;
    assert_eq!(sink.dropped(), 1);
    sink.close().await;
}

#[tokio::test]
async fn an_unreachable_endpoint_keeps_the_newest_results_until_it_comes_up() {
    // Arrange: nothing listens on the port yet.
    let port = free_port();
    let fixture = Fixture::new();
    let health = SinkHealthReporter::default();
    let mut sink = start(&format!("http://127.0.0.1:{port}/in?token=s3cret"), &health);

    // Act: 100 results while the endpoint is down.
    let started = Instant::now();
    for seq in 1..=100 {
        let result = fixture.result(seq);
        tokio::time::timeout(Duration::from_millis(200), sink.publish(&result))
            .await
            .expect("publish does not wait for the endpoint")
            .unwrap();
    }

    // Assert: nothing waited, the state says why, and only the newest 8 are kept.
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "{:?}",
        started.elapsed()
    );
    let state = wait_for_health(&health, Duration::from_secs(5), is_retrying).await;
    // The state names the endpoint but not the query, which may hold a secret.
    assert!(!format!("{state:?}").contains("s3cret"), "{state:?}");
    assert!(
        format!("{state:?}").contains(&format!("127.0.0.1:{port}")),
        "{state:?}"
    );
    assert_eq!(sink.dropped(), 92);

    // Act: the endpoint comes up.
    let mut receiver = HttpReceiver::start_on(port, &[]).await;

    // Assert: the 8 newest arrive, oldest of them first.
    for seq in 93..=100 {
        fixture.assert_payload(&parse(receiver.next().await.body.as_bytes()), seq);
    }
    wait_for_health(&health, Duration::from_secs(2), |h| {
        *h == SinkHealth::Connected
    })
    .await;
    receiver.assert_quiet(Duration::from_millis(300)).await;
    sink.close().await;
}

#[tokio::test]
async fn close_gives_up_on_an_endpoint_that_is_down() {
    let port = free_port();
    let fixture = Fixture::new();
    let health = SinkHealthReporter::default();
    let mut sink = start(&format!("http://127.0.0.1:{port}/"), &health);
    sink.publish(&fixture.result(1)).await.unwrap();
    wait_for_health(&health, Duration::from_secs(5), is_retrying).await;

    let started = Instant::now();
    // The pipeline aborts a sink task that takes longer than two seconds to stop.
    sink.close().await;

    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(health.get(), SinkHealth::Stopped);
}

#[tokio::test]
async fn urls_that_are_not_http_or_https_are_invalid() {
    for url in [
        "ftp://example.com/hook",
        "file:///etc/passwd",
        "not a url",
        "http://",
        "",
    ] {
        let result = Sinks::default()
            .build(
                &SinkConfig::Webhook { url: url.into() },
                SinkHealthReporter::default(),
            )
            .await;
        assert!(
            matches!(result, Err(SinkError::Invalid(_))),
            "{url:?} was accepted"
        );
    }
    for url in ["https://example.com/hook", "http://localhost:8080/x"] {
        let mut sink = Sinks::default()
            .build(
                &SinkConfig::Webhook { url: url.into() },
                SinkHealthReporter::default(),
            )
            .await
            .unwrap_or_else(|e| panic!("{url:?} was refused: {e}"));
        sink.close().await;
    }
}
