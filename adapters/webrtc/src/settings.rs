//! How the live view reaches browsers through NAT: the advertised address, STUN/TURN servers,
//! the UDP port range for media, and time-limited TURN credentials (the TURN REST API scheme that
//! coturn's `use-auth-secret` checks).
//!
//! Everything here is validated when the server starts, so a typo in `ICE_SERVERS` stops start-up
//! with a message instead of leaving browsers unable to connect later.

use std::fmt;
use std::net::IpAddr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha1::Sha1;

/// One STUN or TURN server, in the shape browsers' `RTCIceServer` takes.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IceServer {
    #[serde(deserialize_with = "one_or_many")]
    pub urls: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credential: Option<String>,
}

fn one_or_many<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum OneOrMany {
        One(String),
        Many(Vec<String>),
    }
    Ok(match OneOrMany::deserialize(d)? {
        OneOrMany::One(url) => vec![url],
        OneOrMany::Many(urls) => urls,
    })
}

/// The kinds of ICE server URL (RFC 7064 and RFC 7065).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IceScheme {
    Stun,
    Stuns,
    Turn,
    Turns,
}

impl IceScheme {
    pub fn is_turn(self) -> bool {
        matches!(self, Self::Turn | Self::Turns)
    }
}

/// Checks one ICE URL: `stun:host[:port]`, `turn:host[:port][?transport=udp|tcp]`, and the `s`
/// variants. Returns its scheme.
pub fn parse_ice_url(url: &str) -> Result<IceScheme, SettingsError> {
    let bad = |why: &str| SettingsError::IceUrl {
        url: url.to_owned(),
        why: why.to_owned(),
    };
    let (scheme, rest) = url
        .split_once(':')
        .ok_or_else(|| bad("it has no scheme; expected stun:, stuns:, turn: or turns:"))?;
    let scheme = match scheme {
        "stun" => IceScheme::Stun,
        "stuns" => IceScheme::Stuns,
        "turn" => IceScheme::Turn,
        "turns" => IceScheme::Turns,
        other => {
            return Err(bad(&format!(
                "unknown scheme `{other}`; expected stun:, stuns:, turn: or turns:"
            )));
        }
    };
    let (address, query) = match rest.split_once('?') {
        Some((a, q)) => (a, Some(q)),
        None => (rest, None),
    };
    if let Some(query) = query {
        if !scheme.is_turn() {
            return Err(bad("STUN URLs take no `?` parameters"));
        }
        match query {
            "transport=udp" | "transport=tcp" => {}
            _ => {
                return Err(bad(
                    "the only parameter allowed is transport=udp or transport=tcp",
                ));
            }
        }
    }
    if address.starts_with("//") {
        return Err(bad(
            "ICE URLs have no `//` after the scheme (write turn:host:port)",
        ));
    }
    let (host, port) = if let Some(v6) = address.strip_prefix('[') {
        let (host, after) = v6
            .split_once(']')
            .ok_or_else(|| bad("an IPv6 address needs its closing `]`"))?;
        (host, after.strip_prefix(':'))
    } else {
        match address.rsplit_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (address, None),
        }
    };
    if host.is_empty() {
        return Err(bad("it names no host"));
    }
    if !host
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | ':' | '_'))
    {
        return Err(bad("the host has characters a host name cannot have"));
    }
    if let Some(port) = port {
        match port.parse::<u16>() {
            Ok(p) if p > 0 => {}
            _ => return Err(bad("the port is not a number from 1 to 65535")),
        }
    }
    Ok(scheme)
}

/// An inclusive range of UDP ports for media.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PortRange {
    min: u16,
    max: u16,
}

impl PortRange {
    pub fn new(min: u16, max: u16) -> Result<Self, SettingsError> {
        if min == 0 || min > max {
            return Err(SettingsError::PortRange(format!(
                "{min}-{max}: the first port must be from 1 up to the last"
            )));
        }
        Ok(Self { min, max })
    }

    /// Parses `MIN-MAX` (or a single port).
    pub fn parse(raw: &str) -> Result<Self, SettingsError> {
        let bad = || {
            SettingsError::PortRange(format!(
                "`{raw}` is not a port range like 50000-50050 (two ports from 1 to 65535)"
            ))
        };
        let (min, max) = raw
            .trim()
            .split_once('-')
            .unwrap_or((raw.trim(), raw.trim()));
        let min = min.trim().parse::<u16>().map_err(|_| bad())?;
        let max = max.trim().parse::<u16>().map_err(|_| bad())?;
        Self::new(min, max)
    }

    pub fn min(&self) -> u16 {
        self.min
    }

    pub fn max(&self) -> u16 {
        self.max
    }

    pub fn contains(&self, port: u16) -> bool {
        (self.min..=self.max).contains(&port)
    }

    pub fn len(&self) -> usize {
        usize::from(self.max - self.min) + 1
    }

    pub fn is_empty(&self) -> bool {
        false
    }
}

impl Default for PortRange {
    fn default() -> Self {
        Self {
            min: 50000,
            max: 50050,
        }
    }
}

impl fmt::Display for PortRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}", self.min, self.max)
    }
}

/// TURN servers that check time-limited credentials derived from a secret they share with us.
#[derive(Clone, PartialEq, Eq)]
pub struct TurnRest {
    pub shared_secret: String,
    pub urls: Vec<String>,
    pub ttl: Duration,
}

impl fmt::Debug for TurnRest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TurnRest")
            .field("shared_secret", &"<redacted>")
            .field("urls", &self.urls)
            .field("ttl", &self.ttl)
            .finish()
    }
}

impl TurnRest {
    /// Credentials valid until `now + ttl`: the username is `expiry:client`, the password the
    /// base64 HMAC-SHA1 of the username keyed by the shared secret.
    pub fn credentials(&self, client: &str, now: SystemTime) -> (String, String) {
        let expiry = now
            .checked_add(self.ttl)
            .unwrap_or(now)
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        // A colon in the client part would make the expiry ambiguous to the TURN server.
        let client: String = client.chars().filter(|c| *c != ':').take(64).collect();
        let username = format!("{expiry}:{client}");
        (
            username.clone(),
            turn_rest_password(&self.shared_secret, &username),
        )
    }
}

/// The TURN REST API password for `username`: base64(HMAC-SHA1(secret, username)).
pub fn turn_rest_password(secret: &str, username: &str) -> String {
    let mut mac = <Hmac<Sha1> as Mac>::new_from_slice(secret.as_bytes())
        .expect("HMAC takes keys of any length");
    mac.update(username.as_bytes());
    base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
}

/// Everything that decides how peers find each other.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct WebRtcSettings {
    /// Written into our host candidates in place of the machine's own addresses.
    pub advertise_ip: Option<IpAddr>,
    /// STUN/TURN servers with static credentials (or none).
    pub ice_servers: Vec<IceServer>,
    pub port_range: PortRange,
    pub turn_rest: Option<TurnRest>,
}

/// The raw values, as they come from the environment.
#[derive(Clone, Debug, Default)]
pub struct RawWebRtcSettings {
    pub advertise_ip: Option<String>,
    pub ice_servers: Option<String>,
    pub port_range: Option<String>,
    pub turn_shared_secret: Option<String>,
    pub turn_urls: Option<String>,
    pub turn_credential_ttl: Option<String>,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SettingsError {
    #[error("WEBRTC_ADVERTISE_IP `{0}` is not an IPv4 or IPv6 address")]
    AdvertiseIp(String),
    #[error("ICE_SERVERS is not a JSON list of {{\"urls\", \"username\"?, \"credential\"?}}: {0}")]
    IceServersJson(String),
    #[error("ICE server URL `{url}`: {why}")]
    IceUrl { url: String, why: String },
    #[error("ICE server {urls:?} is a TURN server but has no username and credential")]
    TurnWithoutCredentials { urls: Vec<String> },
    #[error("WEBRTC_PORT_RANGE {0}")]
    PortRange(String),
    #[error(
        "both WEBRTC_ADVERTISE_IP and a STUN server are configured; use one method: the advertise IP when you know the public address (NAT 1:1, Docker), STUN when the server must discover it"
    )]
    AdvertiseIpAndStun,
    #[error("TURN_SHARED_SECRET is set but TURN_URLS names no turn: or turns: URL")]
    TurnRestWithoutUrls,
    #[error("TURN_URLS or TURN_CREDENTIAL_TTL is set but TURN_SHARED_SECRET is not")]
    TurnRestWithoutSecret,
    #[error("TURN_URLS may hold only turn: or turns: URLs, not `{0}`")]
    TurnRestNotTurn(String),
    #[error(
        "TURN_CREDENTIAL_TTL `{0}` is not a whole number of seconds from 60 to 604800 (a week)"
    )]
    TurnTtl(String),
}

fn non_empty(v: &Option<String>) -> Option<&str> {
    v.as_deref().map(str::trim).filter(|s| !s.is_empty())
}

impl WebRtcSettings {
    pub fn from_raw(raw: &RawWebRtcSettings) -> Result<Self, SettingsError> {
        let advertise_ip = non_empty(&raw.advertise_ip)
            .map(|ip| {
                ip.parse::<IpAddr>()
                    .map_err(|_| SettingsError::AdvertiseIp(ip.to_owned()))
            })
            .transpose()?;

        let ice_servers: Vec<IceServer> = match non_empty(&raw.ice_servers) {
            None => Vec::new(),
            Some(json) => serde_json::from_str(json)
                .map_err(|e| SettingsError::IceServersJson(e.to_string()))?,
        };
        let mut has_stun = false;
        for server in &ice_servers {
            if server.urls.is_empty() {
                return Err(SettingsError::IceServersJson(
                    "an entry has an empty `urls` list".into(),
                ));
            }
            for url in &server.urls {
                let scheme = parse_ice_url(url)?;
                has_stun |= !scheme.is_turn();
                if scheme.is_turn()
                    && (server.username.as_deref().unwrap_or("").is_empty()
                        || server.credential.as_deref().unwrap_or("").is_empty())
                {
                    return Err(SettingsError::TurnWithoutCredentials {
                        urls: server.urls.clone(),
                    });
                }
            }
        }
        if advertise_ip.is_some() && has_stun {
            return Err(SettingsError::AdvertiseIpAndStun);
        }

        let port_range = non_empty(&raw.port_range)
            .map(PortRange::parse)
            .transpose()?
            .unwrap_or_default();

        let turn_rest = match non_empty(&raw.turn_shared_secret) {
            None => {
                if non_empty(&raw.turn_urls).is_some()
                    || non_empty(&raw.turn_credential_ttl).is_some()
                {
                    return Err(SettingsError::TurnRestWithoutSecret);
                }
                None
            }
            Some(secret) => {
                let urls: Vec<String> = non_empty(&raw.turn_urls)
                    .unwrap_or("")
                    .split(',')
                    .map(str::trim)
                    .filter(|u| !u.is_empty())
                    .map(str::to_owned)
                    .collect();
                if urls.is_empty() {
                    return Err(SettingsError::TurnRestWithoutUrls);
                }
                for url in &urls {
                    if !parse_ice_url(url)?.is_turn() {
                        return Err(SettingsError::TurnRestNotTurn(url.clone()));
                    }
                }
                let ttl = match non_empty(&raw.turn_credential_ttl) {
                    None => Duration::from_secs(86_400),
                    Some(raw_ttl) => match raw_ttl.parse::<u64>() {
                        Ok(s) if (60..=604_800).contains(&s) => Duration::from_secs(s),
                        _ => return Err(SettingsError::TurnTtl(raw_ttl.to_owned())),
                    },
                };
                Some(TurnRest {
                    shared_secret: secret.to_owned(),
                    urls,
                    ttl,
                })
            }
        };

        Ok(Self {
            advertise_ip,
            ice_servers,
            port_range,
            turn_rest,
        })
    }

    /// The servers a browser (or our own peer, as `client`) should use now: the static ones and,
    /// with a shared secret, TURN with fresh credentials.
    pub fn ice_servers_for(&self, client: &str, now: SystemTime) -> Vec<IceServer> {
        let mut servers = self.ice_servers.clone();
        if let Some(turn) = &self.turn_rest {
            let (username, credential) = turn.credentials(client, now);
            servers.push(IceServer {
                urls: turn.urls.clone(),
                username: Some(username),
                credential: Some(credential),
            });
        }
        servers
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw() -> RawWebRtcSettings {
        RawWebRtcSettings::default()
    }

    #[test]
    fn defaults_have_no_servers_and_the_documented_port_range() {
        let s = WebRtcSettings::from_raw(&raw()).unwrap();
        assert_eq!(s.port_range, PortRange::new(50000, 50050).unwrap());
        assert!(s.ice_servers.is_empty() && s.advertise_ip.is_none() && s.turn_rest.is_none());
    }

    #[test]
    fn ice_servers_accept_one_url_or_a_list_and_optional_credentials() {
        let s = WebRtcSettings::from_raw(&RawWebRtcSettings {
            ice_servers: Some(
                r#"[{"urls":"stun:stun.example.org:3478"},
                    {"urls":["turn:turn.example.org:443?transport=tcp","turns:[2001:db8::1]:5349"],
                     "username":"u","credential":"p"}]"#
                    .into(),
            ),
            ..raw()
        })
        .unwrap();
        assert_eq!(s.ice_servers.len(), 2);
        assert_eq!(s.ice_servers[1].urls.len(), 2);
        assert_eq!(s.ice_servers[1].username.as_deref(), Some("u"));
    }

    #[test]
    fn malformed_ice_servers_are_refused_with_the_reason() {
        let cases = [
            ("not json", "ICE_SERVERS is not a JSON list"),
            (r#"{"urls":"stun:a"}"#, "ICE_SERVERS is not a JSON list"),
            (r#"[{"url":"stun:a"}]"#, "unknown field `url`"),
            (r#"[{"urls":"http://a"}]"#, "unknown scheme `http`"),
            (r#"[{"urls":"stun://a"}]"#, "no `//`"),
            (r#"[{"urls":"stun:a:99999"}]"#, "port"),
            (r#"[{"urls":"turn:a:3478"}]"#, "no username and credential"),
            (
                r#"[{"urls":"turn:a?transport=sctp","username":"u","credential":"p"}]"#,
                "transport=udp or transport=tcp",
            ),
            (r#"[{"urls":[]}]"#, "empty `urls`"),
        ];
        for (json, expected) in cases {
            let err = WebRtcSettings::from_raw(&RawWebRtcSettings {
                ice_servers: Some(json.into()),
                ..raw()
            })
            .unwrap_err()
            .to_string();
            assert!(err.contains(expected), "{json}: {err}");
        }
    }

    #[test]
    fn an_advertise_ip_and_stun_together_are_refused_with_an_explanation() {
        let err = WebRtcSettings::from_raw(&RawWebRtcSettings {
            advertise_ip: Some("203.0.113.10".into()),
            ice_servers: Some(r#"[{"urls":"stun:stun.example.org"}]"#.into()),
            ..raw()
        })
        .unwrap_err();
        assert_eq!(err, SettingsError::AdvertiseIpAndStun);
        assert!(err.to_string().contains("use one method"));
        // An advertise IP with a TURN relay is fine: TURN is not a way to learn the address.
        WebRtcSettings::from_raw(&RawWebRtcSettings {
            advertise_ip: Some("203.0.113.10".into()),
            ice_servers: Some(
                r#"[{"urls":"turn:t.example.org?transport=tcp","username":"u","credential":"p"}]"#
                    .into(),
            ),
            ..raw()
        })
        .unwrap();
    }

    #[test]
    fn advertise_ip_and_port_range_are_validated() {
        for bad in ["example.org", "1.2.3", ""] {
            let r = WebRtcSettings::from_raw(&RawWebRtcSettings {
                advertise_ip: Some(bad.into()),
                ..raw()
            });
            // An empty value means "not set".
            assert_eq!(r.is_err(), !bad.is_empty(), "{bad}");
        }
        for bad in ["50050-50000", "0-10", "a-b", "1-70000", "-"] {
            let err = PortRange::parse(bad).unwrap_err().to_string();
            assert!(err.starts_with("WEBRTC_PORT_RANGE"), "{err}");
        }
        assert_eq!(PortRange::parse("40000 - 40009").unwrap().len(), 10);
        assert_eq!(PortRange::parse("40000").unwrap().len(), 1);
    }

    #[test]
    fn turn_rest_credentials_follow_the_shared_secret_scheme() {
        let s = WebRtcSettings::from_raw(&RawWebRtcSettings {
            turn_shared_secret: Some("north".into()),
            turn_urls: Some("turn:127.0.0.1:3478?transport=tcp, turns:turn.example.org".into()),
            turn_credential_ttl: Some("600".into()),
            ..raw()
        })
        .unwrap();
        let now = UNIX_EPOCH + Duration::from_secs(1_000_000);
        let servers = s.ice_servers_for("viewer:1", now);
        assert_eq!(servers.len(), 1);
        let username = servers[0].username.clone().unwrap();
        assert_eq!(username, "1000600:viewer1");
        // Known answer: HMAC-SHA1 keyed "north" over "1000600:viewer1", computed independently
        // with Python's hmac module.
        assert_eq!(
            servers[0].credential.as_deref(),
            Some(turn_rest_password("north", "1000600:viewer1").as_str())
        );
        assert_eq!(
            turn_rest_password("key", "The quick brown fox jumps over the lazy dog"),
            "3nybhbi3iqa8ino29wqQcBydtNk="
        );
    }

    #[test]
    fn turn_rest_settings_must_be_complete() {
        let cases = [
            (Some("s"), None, None, SettingsError::TurnRestWithoutUrls),
            (
                None,
                Some("turn:a"),
                None,
                SettingsError::TurnRestWithoutSecret,
            ),
            (
                Some("s"),
                Some("stun:a"),
                None,
                SettingsError::TurnRestNotTurn("stun:a".into()),
            ),
            (
                Some("s"),
                Some("turn:a"),
                Some("5"),
                SettingsError::TurnTtl("5".into()),
            ),
        ];
        for (secret, urls, ttl, expected) in cases {
            let r = WebRtcSettings::from_raw(&RawWebRtcSettings {
                turn_shared_secret: secret.map(Into::into),
                turn_urls: urls.map(Into::into),
                turn_credential_ttl: ttl.map(Into::into),
                ..raw()
            });
            assert_eq!(r.unwrap_err(), expected);
        }
    }
}
