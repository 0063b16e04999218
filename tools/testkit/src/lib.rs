//! Test support shared by the integration tests of several crates: a real Mosquitto broker of the
//! test's own on a loopback port, and a models folder with small random-weight models. Test code only (a dev-dependency); a missing binary fails the
//! test with the command that installs it, never skips it.

use std::io::Read as _;
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A loopback port nothing listens on right now.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The path of a Mosquitto program; Debian puts the broker in `/usr/sbin`, which is not on every
/// user's `PATH`.
pub fn mosquitto_binary(name: &str) -> PathBuf {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/sbin".into(), "/usr/local/sbin".into()])
        .map(|dir| dir.join(name))
        .find(|candidate| candidate.is_file())
        .unwrap_or_else(|| {
            panic!("`{name}` is not installed: run tools/ci/install-mosquitto.sh (as root)")
        })
}

/// Who may connect to a [`Broker`].
#[derive(Clone)]
pub enum Access {
    Anonymous,
    Password { username: String, password: String },
}

/// Extra TLS listener of a [`Broker`]: its port and PEM files.
#[derive(Clone)]
pub struct TlsListener {
    pub port: u16,
    pub ca: PathBuf,
    pub cert: PathBuf,
    pub key: PathBuf,
}

/// A Mosquitto process of the test's own on `127.0.0.1:port`, killed when dropped.
pub struct Broker {
    pub port: u16,
    dir: tempfile::TempDir,
    access: Access,
    tls: Option<TlsListener>,
    child: Option<Child>,
}

impl Broker {
    pub fn start(access: Access) -> Self {
        Self::start_on(free_port(), access)
    }

    pub fn start_on(port: u16, access: Access) -> Self {
        Self::start_with(port, access, None)
    }

    pub fn start_with(port: u16, access: Access, tls: Option<TlsListener>) -> Self {
        let mut broker = Self {
            port,
            dir: tempfile::tempdir().unwrap(),
            access,
            tls,
            child: None,
        };
        broker.launch();
        broker
    }

    fn launch(&mut self) {
        let dir = self.dir.path();
        // As root, Mosquitto would switch to the `mosquitto` user, which cannot read this
        // temporary directory; `user root` keeps it as it is (and means nothing to other users).
        let mut config = format!(
            "user root\nper_listener_settings false\nlistener {} 127.0.0.1\n",
            self.port
        );
        if let Some(tls) = &self.tls {
            config.push_str(&format!(
                "listener {} 127.0.0.1\ncafile {}\ncertfile {}\nkeyfile {}\n",
                tls.port,
                tls.ca.display(),
                tls.cert.display(),
                tls.key.display()
            ));
        }
        match &self.access {
            Access::Anonymous => config.push_str("allow_anonymous true\n"),
            Access::Password { username, password } => {
                let file = dir.join("passwords");
                let status = Command::new(mosquitto_binary("mosquitto_passwd"))
                    .args(["-b", "-c"])
                    .arg(&file)
                    .args([username, password])
                    .status()
                    .unwrap();
                assert!(status.success(), "mosquitto_passwd failed");
                config.push_str(&format!(
                    "allow_anonymous false\npassword_file {}\n",
                    file.display()
                ));
            }
        }
        let config_file = dir.join("mosquitto.conf");
        std::fs::write(&config_file, config).unwrap();
        let log = std::fs::File::create(dir.join("mosquitto.log")).unwrap();
        let mut child = Command::new(mosquitto_binary("mosquitto"))
            .arg("-c")
            .arg(&config_file)
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("mosquitto starts");
        let deadline = Instant::now() + Duration::from_secs(10);
        let address = SocketAddr::from(([127, 0, 0, 1], self.port));
        while TcpStream::connect_timeout(&address, Duration::from_millis(200)).is_err() {
            if let Some(status) = child.try_wait().unwrap() {
                panic!("mosquitto exited with {status}:\n{}", self.log());
            }
            assert!(
                Instant::now() < deadline,
                "mosquitto did not listen:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        self.child = Some(child);
    }

    fn log(&self) -> String {
        let mut text = String::new();
        if let Ok(mut file) = std::fs::File::open(self.dir.path().join("mosquitto.log")) {
            let _ = file.read_to_string(&mut text);
        }
        text
    }

    /// Kills the broker the hard way, as a crash or a pulled cable would.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts it again on the same port.
    pub fn restart(&mut self) {
        self.kill();
        self.launch();
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Fills `dest` as a `MODELS_DIR`: `dinov3_small/` (a 2-layer DINOv3, config.json +
/// model.safetensors) and `sam_hq_tiny/` (a small SAM-HQ with a TinyViT encoder and its
/// config.json), both random-weight parity fixtures of `visprompt-vision`. They run in well under
/// a second per frame in a debug build; what they detect is arbitrary but deterministic.
pub fn tiny_models_dir(dest: &std::path::Path) {
    let fixtures =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../adapters/vision/tests/fixtures");
    let copy = |from: PathBuf, to: PathBuf| {
        std::fs::create_dir_all(to.parent().expect("a parent")).expect("creating a models folder");
        std::fs::copy(&from, &to).unwrap_or_else(|e| panic!("copying {}: {e}", from.display()));
    };
    let enc = fixtures.join("encoders/dinov3");
    copy(
        enc.join("config.json"),
        dest.join("dinov3_small/config.json"),
    );
    copy(
        enc.join("model.safetensors"),
        dest.join("dinov3_small/model.safetensors"),
    );
    copy(
        fixtures.join("segmenters/tiny/model.pth"),
        dest.join("sam_hq_tiny/sam_hq_vit_tiny.pth"),
    );
    copy(
        fixtures.join("models/sam_hq_tiny.config.json"),
        dest.join("sam_hq_tiny/config.json"),
    );
}

/// The commit a [`FakeHub`] names for every repository.
pub const FAKE_HUB_COMMIT: &str = "0123456789abcdef0123456789abcdef01234567";

/// A stand-in for the Hugging Face hub on a loopback port: serves `HEAD`/`GET
/// /<repo>/resolve/<rev>/<file>` for the files it holds (any repository), answering files over
/// 1000 bytes as the hub does (a redirect to a blob URL, the real size in `X-Linked-Size`), `401`
/// for the repository `org/gated`, and counts requests. A throttled hub sends bodies in slices
/// with a pause between them, so a download lasts long enough to be watched.
pub struct FakeHub {
    pub url: String,
    pub requests: std::sync::Arc<std::sync::atomic::AtomicUsize>,
}

impl FakeHub {
    pub fn start(files: std::collections::HashMap<String, Vec<u8>>) -> Self {
        Self::start_throttled(files, usize::MAX, Duration::ZERO)
    }

    pub fn start_throttled(
        files: std::collections::HashMap<String, Vec<u8>>,
        slice: usize,
        pause: Duration,
    ) -> Self {
        use std::io::Write as _;
        use std::sync::atomic::Ordering;
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("a loopback port");
        let url = format!("http://{}", listener.local_addr().unwrap());
        let requests = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let count = requests.clone();
        let files = std::sync::Arc::new(files);
        std::thread::spawn(move || {
            for sock in listener.incoming() {
                let Ok(mut sock) = sock else { return };
                count.fetch_add(1, Ordering::SeqCst);
                let files = files.clone();
                std::thread::spawn(move || {
                    let mut buf = Vec::new();
                    let mut chunk = [0u8; 1024];
                    while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
                        match sock.read(&mut chunk) {
                            Ok(0) | Err(_) => return,
                            Ok(n) => buf.extend_from_slice(&chunk[..n]),
                        }
                    }
                    let text = String::from_utf8_lossy(&buf).to_string();
                    let mut parts = text.split_whitespace();
                    let head = parts.next() == Some("HEAD");
                    let path = parts.next().unwrap_or("").to_string();
                    let (status, headers, body): (&str, Vec<String>, &[u8]) =
                        if path.starts_with("/org/gated/") {
                            ("401 Unauthorized", vec![], b"")
                        } else if let Some(key) = path.strip_prefix("/blobs/") {
                            match files.get(key) {
                                Some(body) => ("200 OK", vec![], body),
                                None => ("404 Not Found", vec![], b""),
                            }
                        } else if let Some((_, rest)) = path.split_once("/resolve/") {
                            let file = rest.split_once('/').map(|(_, f)| f).unwrap_or("");
                            match files.get(file) {
                                Some(body) if body.len() > 1000 => (
                                    "302 Found",
                                    vec![
                                        format!("x-repo-commit: {FAKE_HUB_COMMIT}"),
                                        format!("x-linked-size: {}", body.len()),
                                        format!("location: /blobs/{file}"),
                                    ],
                                    b"",
                                ),
                                Some(body) => (
                                    "200 OK",
                                    vec![format!("x-repo-commit: {FAKE_HUB_COMMIT}")],
                                    body,
                                ),
                                None => ("404 Not Found", vec![], b""),
                            }
                        } else {
                            ("404 Not Found", vec![], b"")
                        };
                    let mut reply = format!("HTTP/1.1 {status}\r\nconnection: close\r\n");
                    for h in headers {
                        reply.push_str(&h);
                        reply.push_str("\r\n");
                    }
                    reply.push_str(&format!("content-length: {}\r\n\r\n", body.len()));
                    if sock.write_all(reply.as_bytes()).is_err() || head {
                        return;
                    }
                    for piece in body.chunks(slice.max(1)) {
                        if sock.write_all(piece).is_err() {
                            return;
                        }
                        std::thread::sleep(pause);
                    }
                });
            }
        });
        FakeHub { url, requests }
    }
}
