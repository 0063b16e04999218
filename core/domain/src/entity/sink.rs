//! A sink: where a project's predictions are published (MQTT, a webhook, a file). Any number of a
//! project's sinks may be active at once: each one is an independent consumer of the results.

use crate::entity::Timestamp;
use crate::entity::source::check_url;
use crate::error::DomainError;
use crate::id::{ProjectId, SinkId};
use crate::value::DisplayName;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SinkKind {
    Mqtt,
    Webhook,
    File,
}

impl SinkKind {
    pub const fn as_str(&self) -> &'static str {
        match self {
            SinkKind::Mqtt => "mqtt",
            SinkKind::Webhook => "webhook",
            SinkKind::File => "file",
        }
    }

    pub const fn default_name(&self) -> &'static str {
        match self {
            SinkKind::Mqtt => "MQTT broker",
            SinkKind::Webhook => "Webhook",
            SinkKind::File => "File",
        }
    }
}

/// The MQTT delivery guarantee a sink publishes with. Higher levels cost round trips per message;
/// the default is the cheapest, since a lost prediction is superseded by the next frame's.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum MqttQos {
    /// QoS 0: sent once, never acknowledged.
    #[default]
    AtMostOnce,
    /// QoS 1: resent until acknowledged; may arrive twice.
    AtLeastOnce,
    /// QoS 2: a four-step handshake delivers each message exactly once.
    ExactlyOnce,
}

impl MqttQos {
    pub const ALL: [MqttQos; 3] = [
        MqttQos::AtMostOnce,
        MqttQos::AtLeastOnce,
        MqttQos::ExactlyOnce,
    ];

    /// The level as MQTT numbers it (0, 1 or 2).
    pub const fn level(&self) -> u8 {
        match self {
            MqttQos::AtMostOnce => 0,
            MqttQos::AtLeastOnce => 1,
            MqttQos::ExactlyOnce => 2,
        }
    }

    /// The level numbered `level`; anything but 0, 1 or 2 is invalid and reported as `qos`,
    /// the field's name in the API, the store and the archive alike.
    pub fn from_level(level: i64) -> Result<Self, DomainError> {
        Self::ALL
            .into_iter()
            .find(|q| i64::from(q.level()) == level)
            .ok_or_else(|| DomainError::invalid("qos", format!("must be 0, 1 or 2, got {level}")))
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MqttSink {
    pub broker_host: String,
    pub broker_port: u16,
    pub topic: String,
    pub username: Option<String>,
    /// Never returned by the API; only whether one is set.
    pub password: Option<String>,
    pub qos: MqttQos,
    /// Connect with TLS, verifying the broker's certificate against the system's trusted roots.
    /// Off by default because a plain local broker is the common first setup.
    pub tls: bool,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SinkConfig {
    Mqtt(MqttSink),
    Webhook {
        url: String,
    },
    /// A file on the server (JSON lines), inside one of the media roots.
    File {
        path: String,
    },
}

impl SinkConfig {
    pub fn kind(&self) -> SinkKind {
        match self {
            SinkConfig::Mqtt(_) => SinkKind::Mqtt,
            SinkConfig::Webhook { .. } => SinkKind::Webhook,
            SinkConfig::File { .. } => SinkKind::File,
        }
    }

    pub fn check(&self) -> Result<(), DomainError> {
        match self {
            SinkConfig::Mqtt(mqtt) => {
                let host = &mqtt.broker_host;
                if host.is_empty()
                    || host.len() > 253
                    || !host
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | ':' | '_'))
                {
                    return Err(DomainError::invalid(
                        "broker_host",
                        "must be a host name or IP address (1 to 253 characters)",
                    ));
                }
                if mqtt.broker_port == 0 {
                    return Err(DomainError::invalid("broker_port", "must be 1 to 65535"));
                }
                if mqtt.topic.is_empty()
                    || mqtt.topic.len() > 1024
                    || mqtt.topic.chars().any(|c| matches!(c, '+' | '#' | '\0'))
                {
                    return Err(DomainError::invalid(
                        "topic",
                        "must be 1 to 1024 bytes without the wildcards + and #",
                    ));
                }
                for (field, value) in [("username", &mqtt.username), ("password", &mqtt.password)] {
                    if value
                        .as_ref()
                        .is_some_and(|v| v.len() > 1024 || v.contains('\0'))
                    {
                        return Err(DomainError::invalid(field, "must be at most 1024 bytes"));
                    }
                }
                Ok(())
            }
            SinkConfig::Webhook { url } => check_url("url", url, &["http", "https"]),
            SinkConfig::File { .. } => Ok(()),
        }
    }

    pub fn media_path(&self) -> Option<(&'static str, &str)> {
        match self {
            SinkConfig::File { path } => Some(("path", path)),
            _ => None,
        }
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct Sink {
    pub id: SinkId,
    pub project_id: ProjectId,
    pub name: DisplayName,
    pub active: bool,
    pub config: SinkConfig,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mqtt(host: &str, port: u16, topic: &str) -> SinkConfig {
        SinkConfig::Mqtt(MqttSink {
            broker_host: host.into(),
            broker_port: port,
            topic: topic.into(),
            username: None,
            password: None,
            qos: MqttQos::default(),
            tls: false,
        })
    }

    #[test]
    fn an_mqtt_sink_needs_a_host_a_port_and_a_topic_without_wildcards() {
        assert!(
            mqtt("localhost", 1883, "visprompt/predictions")
                .check()
                .is_ok()
        );
        assert!(mqtt("", 1883, "t").check().is_err());
        assert!(mqtt("bad host", 1883, "t").check().is_err());
        assert!(mqtt("h", 0, "t").check().is_err());
        assert!(mqtt("h", 1883, "a/+/b").check().is_err());
        assert!(mqtt("h", 1883, "a/#").check().is_err());
        assert!(mqtt("h", 1883, "").check().is_err());
    }

    #[test]
    fn qos_levels_are_zero_one_or_two_and_anything_else_names_the_field() {
        for q in MqttQos::ALL {
            assert_eq!(MqttQos::from_level(i64::from(q.level())).unwrap(), q);
        }
        assert_eq!(MqttQos::default().level(), 0);
        for bad in [-1, 3, 255, i64::MAX] {
            let err = MqttQos::from_level(bad).unwrap_err();
            assert!(
                matches!(&err, DomainError::Invalid { field, .. } if field == "qos"),
                "{bad}: {err}"
            );
        }
    }

    #[test]
    fn a_webhook_needs_an_http_url() {
        assert!(
            SinkConfig::Webhook {
                url: "https://example.com/hook".into()
            }
            .check()
            .is_ok()
        );
        assert!(
            SinkConfig::Webhook {
                url: "ftp://example.com".into()
            }
            .check()
            .is_err()
        );
    }
}
