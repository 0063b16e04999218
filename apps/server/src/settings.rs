//! Process settings: built-in defaults ← a TOML file (`VISPROMPT_CONFIG`, optional) ← environment
//! variables with the names users of the reference system know (`HOST`, `PORT`, `DB_DATA_DIR`,
//! `LOG_LEVEL`, `CORS_ORIGINS`) plus ours. Pipeline configuration is not here: it lives in the
//! database. An invalid setting stops start-up with one message naming the key.

use std::path::{Path, PathBuf};

use figment::Figment;
use figment::providers::{Format, Serialized, Toml};
use serde::{Deserialize, Deserializer, Serialize};
use visprompt_archive::ArchiveLimits;
use visprompt_domain::MediaRoots;
use visprompt_surrealdb::StoreLocation;

/// Environment variable → settings key. The one table both loading and error messages use.
const ENV_KEYS: &[(&str, &str)] = &[
    ("HOST", "server.host"),
    ("PORT", "server.port"),
    ("CORS_ORIGINS", "server.cors_origins"),
    ("API_TOKEN", "server.api_token"),
    ("MAX_BODY_BYTES", "server.max_body_bytes"),
    ("MAX_UPLOAD_BYTES", "server.max_upload_bytes"),
    ("MAX_IMPORT_BYTES", "server.max_import_bytes"),
    ("UI_DIR", "server.ui_dir"),
    ("DB_DATA_DIR", "store.data_dir"),
    ("DB_URL", "store.url"),
    ("DB_NAMESPACE", "store.namespace"),
    ("DB_DATABASE", "store.database"),
    ("DB_USER", "store.username"),
    ("DB_PASS", "store.password"),
    ("MEDIA_ROOTS", "media.roots"),
    ("LOG_LEVEL", "log.level"),
    ("DEMO_PROJECT", "demo.seed_project"),
    ("WEBRTC_ADVERTISE_IP", "webrtc.advertise_ip"),
    ("ICE_SERVERS", "webrtc.ice_servers"),
    ("WEBRTC_PORT_RANGE", "webrtc.port_range"),
    ("TURN_SHARED_SECRET", "webrtc.turn_shared_secret"),
    ("TURN_URLS", "webrtc.turn_urls"),
    ("TURN_CREDENTIAL_TTL", "webrtc.turn_credential_ttl"),
    ("WEBRTC_LOOPBACK_ONLY", "webrtc.loopback_only"),
    ("WEBRTC_MAX_VIEWERS", "webrtc.max_viewers"),
    ("MODELS_DIR", "models.dir"),
    ("MODEL_CACHE_DIR", "models.cache_dir"),
    ("OFFLINE", "models.offline"),
    ("HF_ENDPOINT", "models.hub_endpoint"),
    ("HF_TOKEN", "models.hub_token"),
];

/// Variables taken as plain text, never parsed as numbers, lists or tables: JSON and ranges
/// would otherwise be half-understood by the generic parser before our own sees them.
const TEXT_ENV_KEYS: &[&str] = &[
    "UI_DIR",
    "ICE_SERVERS",
    "TURN_URLS",
    "WEBRTC_PORT_RANGE",
    "WEBRTC_ADVERTISE_IP",
    "TURN_SHARED_SECRET",
    "MODELS_DIR",
    "MODEL_CACHE_DIR",
    "HF_ENDPOINT",
    "HF_TOKEN",
];

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    pub server: ServerSettings,
    pub store: StoreSettings,
    pub media: MediaSettings,
    pub log: LogSettings,
    pub demo: DemoSettings,
    pub webrtc: WebRtcSection,
    pub models: ModelsSection,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ServerSettings {
    #[serde(deserialize_with = "text")]
    pub host: String,
    pub port: u16,
    /// Comma-separated origins allowed by CORS; `*` allows any.
    #[serde(deserialize_with = "text")]
    pub cors_origins: String,
    /// When set, every route but `/health` requires `Authorization: Bearer <token>`.
    #[serde(default, deserialize_with = "optional_text")]
    pub api_token: Option<String>,
    /// Largest JSON request body.
    pub max_body_bytes: u64,
    /// Largest uploaded reference image.
    pub max_upload_bytes: u64,
    /// Largest project archive to import.
    pub max_import_bytes: u64,
    /// The built browser UI (`apps/ui/dist`), served at `/`.
    pub ui_dir: PathBuf,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct StoreSettings {
    /// Directory of the embedded database (SurrealKV), used unless `url` is set.
    pub data_dir: PathBuf,
    /// A SurrealDB server (`ws://host:port` or `wss://...`) instead of the embedded database;
    /// `mem://` selects an in-memory database (for tests).
    #[serde(default, deserialize_with = "optional_text")]
    pub url: Option<String>,
    #[serde(deserialize_with = "text")]
    pub namespace: String,
    #[serde(deserialize_with = "text")]
    pub database: String,
    #[serde(deserialize_with = "text")]
    pub username: String,
    #[serde(default, deserialize_with = "optional_text")]
    pub password: Option<String>,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct MediaSettings {
    /// Comma-separated directories that sources and file sinks may use; relative ones are
    /// resolved against the working directory at start-up.
    #[serde(deserialize_with = "text")]
    pub roots: String,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct LogSettings {
    /// A `tracing` filter: `info`, `debug`, `visprompt_server=debug,info`, ...
    #[serde(deserialize_with = "text")]
    pub level: String,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct DemoSettings {
    /// On a first start (no project stored), create a "Demo" project that runs at once: the
    /// synthetic source, a label and a prompt marking one of its shapes.
    pub seed_project: bool,
}

/// Where the neural models' weights come from (see `visprompt_vision::store`).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ModelsSection {
    /// A folder with one sub-folder per model id holding its files; looked at first.
    #[serde(default, deserialize_with = "optional_text")]
    pub dir: Option<String>,
    /// The Hugging Face hub cache downloads go to; default `<data_dir>/models`.
    #[serde(default, deserialize_with = "optional_text")]
    pub cache_dir: Option<String>,
    /// Never download (`OFFLINE=1`): models must be in `dir` or the cache.
    #[serde(default, deserialize_with = "flag")]
    pub offline: bool,
    /// A hub mirror instead of https://huggingface.co.
    #[serde(default, deserialize_with = "optional_text")]
    pub hub_endpoint: Option<String>,
    /// Token for gated repositories (the DINOv3 encoders).
    #[serde(default, deserialize_with = "optional_text")]
    pub hub_token: Option<String>,
}

/// A switch: `true`/`false`, `1`/`0`, `yes`/`no`, `on`/`off`.
fn flag<'de, D: Deserializer<'de>>(d: D) -> Result<bool, D::Error> {
    match Scalar::deserialize(d)? {
        Scalar::Bool(b) => Ok(b),
        Scalar::Int(0) => Ok(false),
        Scalar::Int(1) => Ok(true),
        other => {
            let t = String::from(other).to_ascii_lowercase();
            match t.as_str() {
                "true" | "1" | "yes" | "on" => Ok(true),
                "false" | "0" | "no" | "off" | "" => Ok(false),
                _ => Err(serde::de::Error::custom(format!(
                    "expected true/false, 1/0, yes/no or on/off, got {t:?}"
                ))),
            }
        }
    }
}

/// The live view's networking, with the names of the reference deployment guide; validated by
/// the WebRTC adapter (see `visprompt_webrtc::settings`).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct WebRtcSection {
    /// Address written into our ICE host candidates (NAT 1:1, Docker).
    #[serde(default, deserialize_with = "optional_text")]
    pub advertise_ip: Option<String>,
    /// JSON list of `{"urls", "username"?, "credential"?}` STUN/TURN servers.
    #[serde(default, deserialize_with = "optional_text")]
    pub ice_servers: Option<String>,
    /// UDP media ports, `MIN-MAX`.
    #[serde(deserialize_with = "text")]
    pub port_range: String,
    /// TURN REST API: the secret shared with the TURN server (coturn `static-auth-secret`).
    #[serde(default, deserialize_with = "optional_text")]
    pub turn_shared_secret: Option<String>,
    /// Comma-separated `turn:`/`turns:` URLs the shared secret is for.
    #[serde(default, deserialize_with = "optional_text")]
    pub turn_urls: Option<String>,
    /// Lifetime of issued TURN credentials, seconds.
    #[serde(default, deserialize_with = "optional_text")]
    pub turn_credential_ttl: Option<String>,
    /// Offer only loopback candidates (one-machine setups and tests).
    pub loopback_only: bool,
    /// Most viewers connected at once.
    pub max_viewers: usize,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            server: ServerSettings {
                host: "127.0.0.1".into(),
                port: 9100,
                cors_origins: "http://localhost:9100,http://127.0.0.1:9100".into(),
                api_token: None,
                max_body_bytes: 16 << 20,
                max_upload_bytes: 32 << 20,
                max_import_bytes: 512 << 20,
                ui_dir: PathBuf::from("apps/ui/dist"),
            },
            store: StoreSettings {
                data_dir: PathBuf::from(".data"),
                url: None,
                namespace: "visprompt".into(),
                database: "main".into(),
                username: "root".into(),
                password: None,
            },
            media: MediaSettings {
                roots: "media".into(),
            },
            log: LogSettings {
                level: "info".into(),
            },
            demo: DemoSettings { seed_project: true },
            webrtc: WebRtcSection {
                advertise_ip: None,
                ice_servers: None,
                port_range: "50000-50050".into(),
                turn_shared_secret: None,
                turn_urls: None,
                turn_credential_ttl: None,
                loopback_only: false,
                max_viewers: 32,
            },
            models: ModelsSection {
                dir: None,
                cache_dir: None,
                offline: false,
                hub_endpoint: None,
                hub_token: None,
            },
        }
    }
}

/// Environment values like `PORT=9100` or `API_TOKEN=1234` arrive typed as numbers; text
/// settings take them as the text they were.
#[derive(Deserialize)]
#[serde(untagged)]
enum Scalar {
    Text(String),
    Int(i64),
    Float(f64),
    Bool(bool),
}

impl From<Scalar> for String {
    fn from(s: Scalar) -> Self {
        match s {
            Scalar::Text(s) => s,
            Scalar::Int(i) => i.to_string(),
            Scalar::Float(f) => f.to_string(),
            Scalar::Bool(b) => b.to_string(),
        }
    }
}

fn text<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    Scalar::deserialize(d).map(String::from)
}

/// Like [`text`]; an empty value means "not set".
fn optional_text<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    Ok(Option::<Scalar>::deserialize(d)?
        .map(String::from)
        .filter(|s| !s.is_empty()))
}

#[derive(Debug, thiserror::Error)]
#[error("invalid configuration: {key}{env}: {message}")]
pub struct SettingsError {
    pub key: String,
    env: String,
    message: String,
}

impl SettingsError {
    fn new(key: &str, message: impl Into<String>) -> Self {
        let env = ENV_KEYS
            .iter()
            .find(|(_, k)| *k == key)
            .map(|(e, _)| format!(" (environment variable {e})"))
            .unwrap_or_default();
        Self {
            key: key.into(),
            env,
            message: message.into(),
        }
    }
}

impl Settings {
    /// Loads from the process environment and the file it names.
    pub fn load() -> Result<Self, SettingsError> {
        Self::from_sources(std::env::vars())
    }

    /// Loads from the given environment (tests pass their own instead of mutating the process').
    pub fn from_sources(
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Self, SettingsError> {
        let env: Vec<(String, String)> = env.into_iter().collect();
        let mut figment = Figment::from(Serialized::defaults(Settings::default()));
        if let Some((_, path)) = env.iter().find(|(k, _)| k == "VISPROMPT_CONFIG") {
            if !Path::new(path).is_file() {
                return Err(SettingsError::new(
                    "VISPROMPT_CONFIG",
                    format!("no file at {path}"),
                ));
            }
            figment = figment.merge(Toml::file(path));
        }
        let mut dict = figment::value::Dict::new();
        for (var, key) in ENV_KEYS {
            if let Some((_, value)) = env.iter().find(|(k, _)| k == var) {
                let parsed: figment::value::Value = if TEXT_ENV_KEYS.contains(var) {
                    value.clone().into()
                } else {
                    value.parse().expect("parsing a value is infallible")
                };
                let nested = key.split('.').rev().fold(parsed, |inner, part| {
                    let mut d = figment::value::Dict::new();
                    d.insert(part.to_owned(), inner);
                    d.into()
                });
                if let figment::value::Value::Dict(_, d) = nested {
                    dict = merge(dict, d);
                }
            }
        }
        figment = figment.merge(Serialized::defaults(dict));
        let settings: Settings = figment.extract().map_err(|e| {
            let key = e.path.join(".");
            SettingsError::new(&key, e.kind.to_string())
        })?;
        settings.check()?;
        Ok(settings)
    }

    fn check(&self) -> Result<(), SettingsError> {
        if self.server.host.is_empty() {
            return Err(SettingsError::new("server.host", "must not be empty"));
        }
        if let Some(url) = &self.store.url {
            if !(url.starts_with("ws://") || url.starts_with("wss://") || url == "mem://") {
                return Err(SettingsError::new(
                    "store.url",
                    "must start with ws:// or wss:// (or be mem://)",
                ));
            }
        } else if self.store.data_dir.as_os_str().is_empty() {
            return Err(SettingsError::new("store.data_dir", "must not be empty"));
        }
        if self.server.max_body_bytes == 0
            || self.server.max_upload_bytes == 0
            || self.server.max_import_bytes == 0
        {
            return Err(SettingsError::new(
                "server.max_body_bytes",
                "body limits must be above 0",
            ));
        }
        tracing_subscriber::EnvFilter::try_new(&self.log.level)
            .map_err(|e| SettingsError::new("log.level", e.to_string()))?;
        self.media_roots()?;
        self.webrtc()?;
        if self.webrtc.max_viewers == 0 {
            return Err(SettingsError::new("webrtc.max_viewers", "must be above 0"));
        }
        Ok(())
    }

    /// The live view's networking, validated.
    pub fn webrtc(&self) -> Result<visprompt_webrtc::WebRtcSettings, SettingsError> {
        let w = &self.webrtc;
        visprompt_webrtc::WebRtcSettings::from_raw(&visprompt_webrtc::RawWebRtcSettings {
            advertise_ip: w.advertise_ip.clone(),
            ice_servers: w.ice_servers.clone(),
            port_range: Some(w.port_range.clone()),
            turn_shared_secret: w.turn_shared_secret.clone(),
            turn_urls: w.turn_urls.clone(),
            turn_credential_ttl: w.turn_credential_ttl.clone(),
        })
        .map_err(|e| SettingsError::new("webrtc", e.to_string()))
    }

    pub fn peer_limits(&self) -> visprompt_webrtc::PeerLimits {
        visprompt_webrtc::PeerLimits {
            max_viewers: self.webrtc.max_viewers,
            loopback_only: self.webrtc.loopback_only,
            ..visprompt_webrtc::PeerLimits::default()
        }
    }

    /// The media roots as absolute paths.
    pub fn media_roots(&self) -> Result<MediaRoots, SettingsError> {
        let cwd = std::env::current_dir().unwrap_or_else(|_| PathBuf::from("/"));
        let roots = self
            .media
            .roots
            .split(',')
            .map(str::trim)
            .filter(|r| !r.is_empty())
            .map(|r| cwd.join(r))
            .collect();
        MediaRoots::new(roots).map_err(|e| SettingsError::new("media.roots", e.to_string()))
    }

    /// Where the model store looks for weights; relative folders are taken from the working
    /// directory.
    pub fn model_store(&self) -> visprompt_vision::store::ModelStoreSettings {
        let cwd = std::env::current_dir().unwrap_or_else(|_| PathBuf::from("/"));
        visprompt_vision::store::ModelStoreSettings {
            models_dir: self.models.dir.as_ref().map(|d| cwd.join(d)),
            cache_dir: match &self.models.cache_dir {
                Some(d) => cwd.join(d),
                None => cwd.join(&self.store.data_dir).join("models"),
            },
            offline: self.models.offline,
            hub_endpoint: self.models.hub_endpoint.clone(),
            hub_token: self.models.hub_token.clone(),
        }
    }

    /// Where and how to open the database.
    pub fn store_location(&self) -> StoreLocation {
        match self.store.url.as_deref() {
            Some("mem://") => StoreLocation::Memory,
            Some(url) => StoreLocation::Remote {
                url: url.to_owned(),
                username: self.store.username.clone(),
                password: self.store.password.clone().unwrap_or_default(),
            },
            None => StoreLocation::Disk(self.store.data_dir.join("db")),
        }
    }

    pub fn archive_limits(&self) -> ArchiveLimits {
        ArchiveLimits {
            max_frame_bytes: self.server.max_upload_bytes,
            max_total_bytes: (self.server.max_import_bytes * 4).max(1 << 30),
            ..ArchiveLimits::default()
        }
    }

    pub fn cors_origins(&self) -> Vec<String> {
        self.server
            .cors_origins
            .split(',')
            .map(str::trim)
            .filter(|o| !o.is_empty())
            .map(str::to_owned)
            .collect()
    }
}

fn merge(mut into: figment::value::Dict, from: figment::value::Dict) -> figment::value::Dict {
    for (k, v) in from {
        let merged = match (into.remove(&k), v) {
            (Some(figment::value::Value::Dict(t, a)), figment::value::Value::Dict(_, b)) => {
                figment::value::Value::Dict(t, merge(a, b))
            }
            (_, v) => v,
        };
        into.insert(k, merged);
    }
    into
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn defaults_bind_loopback_on_9100() {
        let s = Settings::from_sources(env(&[])).unwrap();
        assert_eq!((s.server.host.as_str(), s.server.port), ("127.0.0.1", 9100));
        assert!(s.server.api_token.is_none());
    }

    #[test]
    fn environment_variables_override_defaults() {
        let s = Settings::from_sources(env(&[
            ("HOST", "0.0.0.0"),
            ("PORT", "9200"),
            ("API_TOKEN", "1234"),
            ("DB_DATA_DIR", "/tmp/x"),
            ("LOG_LEVEL", "debug"),
        ]))
        .unwrap();
        assert_eq!(s.server.host, "0.0.0.0");
        assert_eq!(s.server.port, 9200);
        assert_eq!(s.server.api_token.as_deref(), Some("1234"));
        assert_eq!(s.store.data_dir, PathBuf::from("/tmp/x"));
        assert_eq!(s.log.level, "debug");
    }

    #[test]
    fn the_demo_project_is_on_by_default_and_can_be_turned_off() {
        assert!(Settings::from_sources(env(&[])).unwrap().demo.seed_project);
        let off = Settings::from_sources(env(&[("DEMO_PROJECT", "false")])).unwrap();
        assert!(!off.demo.seed_project);
        let err = Settings::from_sources(env(&[("DEMO_PROJECT", "perhaps")])).unwrap_err();
        assert!(err.to_string().contains("DEMO_PROJECT"), "{err}");
    }

    #[test]
    fn the_file_sits_between_defaults_and_environment() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("visprompt.toml");
        std::fs::write(&path, "[server]\nport = 9300\nhost = \"0.0.0.0\"\n").unwrap();
        let file = path.to_str().unwrap();
        let s =
            Settings::from_sources(env(&[("VISPROMPT_CONFIG", file), ("PORT", "9400")])).unwrap();
        assert_eq!(s.server.port, 9400);
        assert_eq!(s.server.host, "0.0.0.0");
    }

    #[test]
    fn an_invalid_port_names_the_key_and_the_variable() {
        let err = Settings::from_sources(env(&[("PORT", "ninety")]))
            .unwrap_err()
            .to_string();
        assert!(err.contains("server.port") && err.contains("PORT"), "{err}");
    }

    #[test]
    fn an_unknown_key_in_the_file_is_refused_by_name() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("visprompt.toml");
        std::fs::write(&path, "[server]\nprot = 1\n").unwrap();
        let err = Settings::from_sources(env(&[("VISPROMPT_CONFIG", path.to_str().unwrap())]))
            .unwrap_err()
            .to_string();
        assert!(err.contains("prot"), "{err}");
    }

    #[test]
    fn a_missing_config_file_is_an_error_not_silently_ignored() {
        let err =
            Settings::from_sources(env(&[("VISPROMPT_CONFIG", "/nonexistent.toml")])).unwrap_err();
        assert_eq!(err.key, "VISPROMPT_CONFIG");
    }

    #[test]
    fn a_db_url_of_another_scheme_is_refused() {
        let err = Settings::from_sources(env(&[("DB_URL", "http://db:8000")])).unwrap_err();
        assert_eq!(err.key, "store.url");
    }

    #[test]
    fn a_bad_log_filter_is_refused() {
        let err = Settings::from_sources(env(&[("LOG_LEVEL", "info,[")])).unwrap_err();
        assert_eq!(err.key, "log.level");
    }
}
