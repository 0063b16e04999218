//! The MQTT sink against a real Mosquitto broker: delivery, credentials, a broker that is down at
//! start or dies mid-run, QoS and TLS as each sink's configuration asks.

use std::time::{Duration, Instant};

use rumqttc::QoS;
use visprompt_domain::{MqttQos, MqttSink as MqttConfig, SinkConfig};
use visprompt_runtime::{ResultSink, SinkError, SinkFactory, SinkHealth, SinkHealthReporter};
use visprompt_sinks::{BackoffSettings, MqttSettings, MqttSink, SinkSettings, Sinks};

use crate::support::{
    Access, Broker, Fixture, Subscriber, free_port, is_retrying, parse, wait_for_health,
};

fn config(port: u16, topic: &str, access: &Access) -> MqttConfig {
    let (username, password) = match access {
        Access::Anonymous => (None, None),
        Access::Password { username, password } => (Some(username.clone()), Some(password.clone())),
    };
    MqttConfig {
        broker_host: "127.0.0.1".into(),
        broker_port: port,
        topic: topic.into(),
        username,
        password,
        qos: MqttQos::default(),
        tls: false,
    }
}

/// [`config`] over TLS.
fn tls_config(port: u16, topic: &str) -> MqttConfig {
    MqttConfig {
        tls: true,
        ..config(port, topic, &Access::Anonymous)
    }
}

fn topic() -> String {
    format!("visprompt/test/{}", uuid::Uuid::new_v4().simple())
}

/// Short delays, so recovery shows within a test's patience.
fn quick_backoff() -> BackoffSettings {
    BackoffSettings {
        initial: Duration::from_millis(100),
        max: Duration::from_millis(500),
    }
}

/// Publishes frames `seqs` and fails if any single call takes longer than `limit`.
async fn publish_quickly(
    sink: &mut dyn ResultSink,
    fixture: &Fixture,
    seqs: std::ops::Range<u64>,
    limit: Duration,
) {
    for seq in seqs {
        let result = fixture.result(seq);
        let started = Instant::now();
        tokio::time::timeout(Duration::from_secs(5), sink.publish(&result))
            .await
            .expect("publish returns")
            .expect("publish succeeds");
        let took = started.elapsed();
        assert!(took < limit, "publishing frame {seq} took {took:?}");
    }
}

#[tokio::test]
async fn each_result_is_one_message_with_the_payload_json_and_close_flushes_them() {
    // Arrange
    let broker = Broker::start(Access::Anonymous);
    let topic = topic();
    let mut subscriber = Subscriber::connect(broker.port, &topic, &Access::Anonymous).await;
    let fixture = Fixture::new();
    let health = SinkHealthReporter::default();
    let mut sink = Sinks::default()
        .build(
            &SinkConfig::Mqtt(config(broker.port, &topic, &Access::Anonymous)),
            health.clone(),
        )
        .await
        .unwrap();
    wait_for_health(&health, Duration::from_secs(5), |h| {
        *h == SinkHealth::Connected
    })
    .await;

    // Act: close right after publishing (the event loop has not run yet on this single-threaded
    // runtime), so only a close that flushes gets all twenty out.
    let results: Vec<_> = (1..=20).map(|seq| fixture.result(seq)).collect();
    for result in &results {
        sink.publish(result).await.unwrap();
    }
    sink.close().await;

    // Assert
    for (seq, result) in (1..=20).zip(&results) {
        let message = subscriber.next().await;
        assert_eq!(
            std::str::from_utf8(&message).unwrap(),
            &*result.payload_json()
        );
        fixture.assert_payload(&parse(&message), seq);
    }
    assert_eq!(health.get(), SinkHealth::Stopped);
    subscriber.assert_quiet(Duration::from_millis(200)).await;
}

#[tokio::test]
async fn a_broker_that_needs_a_password_accepts_the_configured_one_and_refuses_a_wrong_one() {
    // Arrange
    let access = Access::Password {
        username: "camera".into(),
        password: "s3cret pass".into(),
    };
    let broker = Broker::start(access.clone());
    let topic = topic();
    let mut subscriber = Subscriber::connect(broker.port, &topic, &access).await;
    let fixture = Fixture::new();
    let sinks = Sinks::new(SinkSettings {
        backoff: quick_backoff(),
        ..SinkSettings::default()
    });
    let right = SinkHealthReporter::default();
    let wrong = SinkHealthReporter::default();

    // Act
    let mut good = sinks
        .build(
            &SinkConfig::Mqtt(config(broker.port, &topic, &access)),
            right.clone(),
        )
        .await
        .unwrap();
    let bad_access = Access::Password {
        username: "camera".into(),
        password: "wrong".into(),
    };
    let mut bad = sinks
        .build(
            &SinkConfig::Mqtt(config(broker.port, &topic, &bad_access)),
            wrong.clone(),
        )
        .await
        .unwrap();

    // Assert
    wait_for_health(&right, Duration::from_secs(5), |h| {
        *h == SinkHealth::Connected
    })
    .await;
    let refused = wait_for_health(&wrong, Duration::from_secs(5), is_retrying).await;
    let SinkHealth::Retrying { message } = refused else {
        unreachable!()
    };
    assert!(message.contains("127.0.0.1:"), "{message}");
    good.publish(&fixture.result(7)).await.unwrap();
    fixture.assert_payload(&parse(&subscriber.next().await), 7);
    bad.publish(&fixture.result(8)).await.unwrap();
    subscriber.assert_quiet(Duration::from_millis(500)).await;
    assert!(is_retrying(&wrong.get()));
    good.close().await;
    bad.close().await;
}

#[tokio::test]
async fn a_broker_down_at_start_is_retried_and_publish_drops_instead_of_waiting() {
    // Arrange: nothing listens on the port yet.
    let port = free_port();
    let topic = topic();
    let fixture = Fixture::new();
    let health = SinkHealthReporter::default();
    let settings = MqttSettings {
        queue_capacity: 16,
        ..MqttSettings::default()
    };
    let mut sink = MqttSink::start(
        &config(port, &topic, &Access::Anonymous),
        &settings,
        quick_backoff(),
        health.clone(),
    )
    .unwrap();

    // Act / Assert: retrying, and publishing 100 results neither waits nor grows a backlog.
    wait_for_health(&health, Duration::from_secs(5), is_retrying).await;
    publish_quickly(&mut sink, &fixture, 1..101, Duration::from_millis(200)).await;
    assert!(
        sink.dropped() >= 100 - 16,
        "only {} of 100 results were dropped with a queue of 16",
        sink.dropped()
    );

    // Act: the broker comes up.
    let broker = Broker::start_on(port, Access::Anonymous);

    // Assert: connected again, and new results flow.
    wait_for_health(&health, Duration::from_secs(5), |h| {
        *h == SinkHealth::Connected
    })
    .await;
    let mut subscriber = Subscriber::connect(broker.port, &topic, &Access::Anonymous).await;
    sink.publish(&fixture.result(1000)).await.unwrap();
    let json = subscriber.until_sequence(1000).await;
    fixture.assert_payload(&json, 1000);
    sink.close().await;
    assert_eq!(health.get(), SinkHealth::Stopped);
}

#[tokio::test]
async fn a_broker_killed_mid_run_does_not_slow_publish_and_is_reconnected_when_it_is_back() {
    // Arrange
    let mut broker = Broker::start(Access::Anonymous);
    let topic = topic();
    let fixture = Fixture::new();
    let health = SinkHealthReporter::default();
    let mut sink = MqttSink::start(
        &config(broker.port, &topic, &Access::Anonymous),
        &MqttSettings::default(),
        quick_backoff(),
        health.clone(),
    )
    .unwrap();
    wait_for_health(&health, Duration::from_secs(5), |h| {
        *h == SinkHealth::Connected
    })
    .await;
    let mut subscriber = Subscriber::connect(broker.port, &topic, &Access::Anonymous).await;
    sink.publish(&fixture.result(1)).await.unwrap();
    fixture.assert_payload(&parse(&subscriber.next().await), 1);

    // Act: the broker dies.
    broker.kill();
    drop(subscriber);

    // Assert: the sink notices, and publishing stays instant.
    wait_for_health(&health, Duration::from_secs(5), is_retrying).await;
    let started = Instant::now();
    publish_quickly(&mut sink, &fixture, 2..202, Duration::from_millis(200)).await;
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "200 publishes took {:?}",
        started.elapsed()
    );
    assert!(
        sink.dropped() > 0,
        "a dead broker must make the queue overflow"
    );

    // Act: the broker comes back on the same port.
    broker.restart();

    // Assert
    wait_for_health(&health, Duration::from_secs(5), |h| {
        *h == SinkHealth::Connected
    })
    .await;
    let mut subscriber = Subscriber::connect(broker.port, &topic, &Access::Anonymous).await;
    sink.publish(&fixture.result(1000)).await.unwrap();
    fixture.assert_payload(&subscriber.until_sequence(1000).await, 1000);
    sink.close().await;
}

/// Makes a CA and a certificate for 127.0.0.1 signed by it with the `openssl` command.
fn make_certificates(
    dir: &std::path::Path,
) -> (std::path::PathBuf, std::path::PathBuf, std::path::PathBuf) {
    let openssl = |args: &[&str]| {
        let output = std::process::Command::new("openssl")
            .args(args)
            .current_dir(dir)
            .output()
            .expect("`openssl` is installed (tools/ci/install-mosquitto.sh installs it)");
        assert!(
            output.status.success(),
            "openssl {args:?}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
    };
    openssl(&[
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-days",
        "2",
        "-subj",
        "/CN=visprompt test CA",
        "-keyout",
        "ca.key",
        "-out",
        "ca.pem",
    ]);
    openssl(&[
        "req",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-subj",
        "/CN=127.0.0.1",
        "-keyout",
        "server.key",
        "-out",
        "server.csr",
    ]);
    std::fs::write(dir.join("ext.cnf"), "subjectAltName=IP:127.0.0.1\n").unwrap();
    openssl(&[
        "x509",
        "-req",
        "-in",
        "server.csr",
        "-CA",
        "ca.pem",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-days",
        "2",
        "-extfile",
        "ext.cnf",
        "-out",
        "server.pem",
    ]);
    (
        dir.join("ca.pem"),
        dir.join("server.pem"),
        dir.join("server.key"),
    )
}

#[tokio::test]
async fn a_sink_configured_for_tls_connects_with_the_configured_ca_and_is_refused_without_it() {
    // Arrange: one plain listener for the subscriber, one TLS listener for the sinks.
    let certificates = tempfile::tempdir().unwrap();
    let (ca, cert, key) = make_certificates(certificates.path());
    let tls_port = free_port();
    let broker = Broker::start_with(
        free_port(),
        Access::Anonymous,
        Some(crate::support::TlsListener {
            port: tls_port,
            ca: ca.clone(),
            cert,
            key,
        }),
    );
    let topic = topic();
    let mut subscriber = Subscriber::connect(broker.port, &topic, &Access::Anonymous).await;
    let fixture = Fixture::new();
    let trusted = SinkHealthReporter::default();
    let untrusted = SinkHealthReporter::default();
    let with_ca = Sinks::new(SinkSettings {
        mqtt: MqttSettings {
            ca_file: Some(ca),
            ..MqttSettings::default()
        },
        backoff: quick_backoff(),
        ..SinkSettings::default()
    });
    let system_roots = Sinks::new(SinkSettings {
        backoff: quick_backoff(),
        ..SinkSettings::default()
    });

    // Act: TLS is chosen by the stored configuration, on a port that is not 8883.
    let config = SinkConfig::Mqtt(tls_config(tls_port, &topic));
    let mut sink = with_ca.build(&config, trusted.clone()).await.unwrap();
    let mut stranger = system_roots
        .build(&config, untrusted.clone())
        .await
        .unwrap();

    // Assert
    wait_for_health(&trusted, Duration::from_secs(5), |h| {
        *h == SinkHealth::Connected
    })
    .await;
    sink.publish(&fixture.result(5)).await.unwrap();
    fixture.assert_payload(&parse(&subscriber.next().await), 5);
    let refused = wait_for_health(&untrusted, Duration::from_secs(5), is_retrying).await;
    assert!(
        format!("{refused:?}")
            .to_lowercase()
            .contains("certificate"),
        "{refused:?}"
    );
    sink.close().await;
    stranger.close().await;
}

#[tokio::test]
async fn a_sink_not_configured_for_tls_speaks_plain_mqtt_even_with_a_ca_set() {
    // Arrange: a TLS-only listener, and a CA that would let a TLS client in.
    let certificates = tempfile::tempdir().unwrap();
    let (ca, cert, key) = make_certificates(certificates.path());
    let tls_port = free_port();
    let _broker = Broker::start_with(
        free_port(),
        Access::Anonymous,
        Some(crate::support::TlsListener {
            port: tls_port,
            ca: ca.clone(),
            cert,
            key,
        }),
    );
    let health = SinkHealthReporter::default();
    let sinks = Sinks::new(SinkSettings {
        mqtt: MqttSettings {
            ca_file: Some(ca),
            ..MqttSettings::default()
        },
        backoff: quick_backoff(),
        ..SinkSettings::default()
    });

    // Act: `tls` left false, so the process-wide CA does not turn TLS on.
    let config = SinkConfig::Mqtt(config(tls_port, &topic(), &Access::Anonymous));
    let mut sink = sinks.build(&config, health.clone()).await.unwrap();

    // Assert: the TLS listener cannot make sense of plain MQTT.
    wait_for_health(&health, Duration::from_secs(5), is_retrying).await;
    sink.close().await;
}

#[tokio::test]
async fn results_go_out_at_the_qos_each_sink_is_configured_with() {
    // Arrange: the subscriber asks for QoS 1, so a message reaches it at the lower of that and
    // the level the sink published with.
    let broker = Broker::start(Access::Anonymous);
    let topic = topic();
    let mut subscriber = Subscriber::connect(broker.port, &topic, &Access::Anonymous).await;
    let fixture = Fixture::new();
    let factory = Sinks::new(SinkSettings {
        backoff: quick_backoff(),
        ..SinkSettings::default()
    });
    let mut sinks = Vec::new();
    for qos in MqttQos::ALL {
        let health = SinkHealthReporter::default();
        let config = SinkConfig::Mqtt(MqttConfig {
            qos,
            ..config(broker.port, &topic, &Access::Anonymous)
        });
        let sink = factory.build(&config, health.clone()).await.unwrap();
        wait_for_health(&health, Duration::from_secs(5), |h| {
            *h == SinkHealth::Connected
        })
        .await;
        sinks.push(sink);
    }

    // Act / Assert: QoS 0 and 1 arrive as published; QoS 2 completes its handshake with the
    // broker and arrives at the subscriber's QoS 1.
    let expected = [QoS::AtMostOnce, QoS::AtLeastOnce, QoS::AtLeastOnce];
    for (seq, (sink, expected)) in (1..).zip(sinks.iter_mut().zip(expected)) {
        sink.publish(&fixture.result(seq)).await.unwrap();
        let (qos, message) = subscriber.next_with_qos().await;
        assert_eq!(
            (qos, parse(&message)["frame"]["sequence"].as_u64()),
            (expected, Some(seq))
        );
    }
    for sink in &mut sinks {
        sink.close().await;
    }
}

#[tokio::test]
async fn a_topic_with_wildcards_is_invalid_and_a_closed_sink_refuses_to_publish() {
    let broker = Broker::start(Access::Anonymous);
    let health = SinkHealthReporter::default();
    let wildcard = MqttSink::start(
        &config(broker.port, "cameras/+/results", &Access::Anonymous),
        &MqttSettings::default(),
        quick_backoff(),
        health.clone(),
    );
    assert!(matches!(wildcard, Err(SinkError::Invalid(_))));

    let mut sink = MqttSink::start(
        &config(broker.port, &topic(), &Access::Anonymous),
        &MqttSettings::default(),
        quick_backoff(),
        health.clone(),
    )
    .unwrap();
    wait_for_health(&health, Duration::from_secs(5), |h| {
        *h == SinkHealth::Connected
    })
    .await;
    sink.close().await;
    let after_close = sink.publish(&Fixture::new().result(1)).await;
    assert!(matches!(after_close, Err(SinkError::Failed(_))));
}

#[tokio::test]
async fn an_unreadable_ca_file_is_invalid_for_a_tls_sink() {
    let result = MqttSink::start(
        &tls_config(8883, "t"),
        &MqttSettings {
            ca_file: Some("/nonexistent/ca.pem".into()),
            ..MqttSettings::default()
        },
        quick_backoff(),
        SinkHealthReporter::default(),
    );
    assert!(matches!(result, Err(SinkError::Invalid(_))));
}
