//! The Hugging Face hub: its cache layout and download on first use.
//!
//! The cache follows the hub's own layout, so a cache made by `huggingface-cli download` /
//! `huggingface_hub` (point [`HubCache::new`] at its `hub` folder) works as it is, and ours can be
//! copied to a machine without network:
//!
//! ```text
//! <root>/models--<org>--<name>/refs/<revision>          the commit the revision resolved to
//! <root>/models--<org>--<name>/snapshots/<commit>/<file> the files (regular files or symlinks)
//! ```
//!
//! [`HubCache`] only reads the disk. [`HubClient::ensure`] returns the snapshot folder when every
//! requested file is there, and otherwise downloads what is missing (`GET
//! <endpoint>/<repo>/resolve/<revision>/<file>`, redirects followed, `HF_TOKEN` sent to the hub
//! for gated repositories), reporting progress; in offline mode it never touches the network and
//! fails with an error that names the missing file and how to provide it.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use reqwest::StatusCode;
use reqwest::header::{AUTHORIZATION, CONTENT_LENGTH, HeaderMap};
use tokio::io::AsyncWriteExt;

use super::progress::{DownloadProgress, ProgressEvent};
use super::{WeightsError, io_err};

/// The default hub address; `HF_ENDPOINT` overrides it, as for the Python client.
pub const DEFAULT_ENDPOINT: &str = "https://huggingface.co";

/// A hub-layout cache folder.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HubCache {
    root: PathBuf,
}

impl HubCache {
    /// A cache rooted at `root` (e.g. `~/.cache/huggingface/hub`).
    pub fn new(root: impl Into<PathBuf>) -> Self {
        HubCache { root: root.into() }
    }

    /// visprompt's cache under its data directory: `<data_dir>/models`.
    pub fn in_data_dir(data_dir: &Path) -> Self {
        Self::new(data_dir.join("models"))
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// `<root>/models--org--name`.
    pub fn repo_dir(&self, repo: &str) -> PathBuf {
        self.root
            .join(format!("models--{}", repo.replace('/', "--")))
    }

    /// The snapshot folder of `revision` (a branch/tag resolved through `refs/`, or a commit
    /// hash), if the cache has one.
    pub fn snapshot(&self, repo: &str, revision: &str) -> Option<PathBuf> {
        let dir = self.repo_dir(repo);
        let commit = std::fs::read_to_string(dir.join("refs").join(revision))
            .ok()
            .map(|s| s.trim().to_string())
            .filter(|s| !s.is_empty())
            .unwrap_or_else(|| revision.to_string());
        let snap = dir.join("snapshots").join(commit);
        snap.is_dir().then_some(snap)
    }

    /// The snapshot folder when it holds every one of `files`; otherwise an error naming the
    /// first missing file and how to provide it. Never touches the network.
    pub fn locate(
        &self,
        repo: &str,
        revision: &str,
        files: &[&str],
    ) -> Result<PathBuf, WeightsError> {
        let snap = self.snapshot(repo, revision);
        for file in files {
            let present = snap.as_ref().is_some_and(|s| s.join(file).is_file());
            if !present {
                return Err(WeightsError::Missing {
                    file: format!("{repo}/{file}"),
                    how: format!(
                        "it is not in the model cache {} (offline, or not downloaded yet); \
                         download it once with network access (it is fetched on first use when \
                         offline mode is off), or copy the repository's files into {}/snapshots/<commit>/ \
                         and write <commit> into {}/refs/{revision}, or configure the model from a \
                         local folder",
                        self.root.display(),
                        self.repo_dir(repo).display(),
                        self.repo_dir(repo).display(),
                    ),
                });
            }
        }
        snap.ok_or_else(|| {
            WeightsError::Invalid(format!("no snapshot of {repo} although no file is missing"))
        })
    }

    /// Whether every one of `files` is in the cache.
    pub fn contains(&self, repo: &str, revision: &str, files: &[&str]) -> bool {
        self.locate(repo, revision, files).is_ok()
    }
}

/// Downloads from the hub into a [`HubCache`].
pub struct HubClient {
    cache: HubCache,
    endpoint: String,
    token: Option<String>,
    offline: bool,
}

/// What the hub says about one file before it is downloaded.
struct FileInfo {
    commit: Option<String>,
    size: Option<u64>,
}

impl HubClient {
    /// A client for `cache`, with `HF_ENDPOINT` and `HF_TOKEN` from the environment when set.
    pub fn new(cache: HubCache) -> Self {
        HubClient {
            cache,
            endpoint: std::env::var("HF_ENDPOINT")
                .ok()
                .filter(|s| !s.is_empty())
                .unwrap_or_else(|| DEFAULT_ENDPOINT.to_string()),
            token: std::env::var("HF_TOKEN").ok().filter(|s| !s.is_empty()),
            offline: false,
        }
    }

    /// Another hub address (a mirror, or a test server).
    pub fn with_endpoint(mut self, endpoint: impl Into<String>) -> Self {
        self.endpoint = endpoint.into().trim_end_matches('/').to_string();
        self
    }

    /// The access token for gated repositories (DINOv3).
    pub fn with_token(mut self, token: Option<String>) -> Self {
        self.token = token;
        self
    }

    /// In offline mode the network is never used: only the cache answers.
    pub fn offline(mut self, offline: bool) -> Self {
        self.offline = offline;
        self
    }

    pub fn cache(&self) -> &HubCache {
        &self.cache
    }

    /// The snapshot folder holding all of `files` of `repo` at `revision`, downloading the
    /// missing ones first unless offline.
    pub async fn ensure(
        &self,
        repo: &str,
        revision: &str,
        files: &[&str],
        progress: &dyn DownloadProgress,
    ) -> Result<PathBuf, WeightsError> {
        match self.cache.locate(repo, revision, files) {
            Ok(snap) => return Ok(snap),
            Err(e) if self.offline => return Err(e),
            Err(_) => {}
        }
        let client = self.http_client(true)?;
        let head_client = self.http_client(false)?;
        // Ask for every file first: the commit the revision points at, and the sizes for the
        // overall progress.
        let mut infos = Vec::with_capacity(files.len());
        for file in files {
            infos.push(self.head(&head_client, repo, revision, file).await?);
        }
        let commit = infos
            .iter()
            .find_map(|i| i.commit.clone())
            .unwrap_or_else(|| revision.to_string());
        if commit.contains(['/', '\\']) || commit.starts_with('.') {
            return Err(WeightsError::Invalid(format!(
                "the hub named an odd commit {commit:?}"
            )));
        }
        let repo_dir = self.cache.repo_dir(repo);
        let snap = repo_dir.join("snapshots").join(&commit);
        let todo: Vec<(&str, Option<u64>)> = files
            .iter()
            .zip(&infos)
            .filter(|(f, _)| !snap.join(f).is_file())
            .map(|(f, i)| (*f, i.size))
            .collect();
        let total = todo.iter().map(|(_, s)| *s).sum::<Option<u64>>();
        let mut done = 0u64;
        for (file, size) in todo {
            let dest = snap.join(file);
            if let Some(parent) = dest.parent() {
                tokio::fs::create_dir_all(parent)
                    .await
                    .map_err(io_err(format!("creating {}", parent.display())))?;
            }
            let url = self.url(repo, &commit, file);
            let got = self
                .download(&client, &url, &dest, repo, file, done, total, progress)
                .await?;
            if let Some(size) = size
                && got != size
            {
                let _ = tokio::fs::remove_file(&dest).await;
                return Err(WeightsError::Download {
                    url,
                    message: format!("received {got} bytes, the hub announced {size}"),
                });
            }
            done += got;
        }
        if commit != revision {
            let refs = repo_dir.join("refs");
            tokio::fs::create_dir_all(&refs)
                .await
                .map_err(io_err(format!("creating {}", refs.display())))?;
            tokio::fs::write(refs.join(revision), &commit)
                .await
                .map_err(io_err(format!("writing {}", refs.join(revision).display())))?;
        }
        self.cache.locate(repo, revision, files)
    }

    fn url(&self, repo: &str, revision: &str, file: &str) -> String {
        format!("{}/{repo}/resolve/{revision}/{file}", self.endpoint)
    }

    /// An HTTP client; `follow` decides whether it follows redirects (downloads do, the `HEAD`
    /// requests that read the hub's own headers do not).
    fn http_client(&self, follow: bool) -> Result<reqwest::Client, WeightsError> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let builder = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| WeightsError::Invalid(format!("TLS set-up failed: {e}")))?;
        let tls = if self.endpoint.starts_with("https://") {
            use rustls_platform_verifier::BuilderVerifierExt;
            builder
                .with_platform_verifier()
                .map_err(|e| {
                    WeightsError::Invalid(format!("cannot load the system's TLS roots: {e}"))
                })?
                .with_no_client_auth()
        } else {
            builder
                .with_root_certificates(rustls::RootCertStore::empty())
                .with_no_client_auth()
        };
        reqwest::Client::builder()
            .tls_backend_preconfigured(tls)
            .connect_timeout(std::time::Duration::from_secs(20))
            .redirect(if follow {
                reqwest::redirect::Policy::limited(10)
            } else {
                reqwest::redirect::Policy::none()
            })
            .user_agent(concat!("visprompt/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| WeightsError::Invalid(format!("cannot set up the HTTP client: {e}")))
    }

    fn auth(&self, req: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
        match &self.token {
            Some(t) => req.header(AUTHORIZATION, format!("Bearer {t}")),
            None => req,
        }
    }

    /// `HEAD` without following redirects: the hub's own headers name the commit and, for
    /// large (LFS/Xet) files, the real size, which a redirect's target would not.
    async fn head(
        &self,
        client: &reqwest::Client,
        repo: &str,
        revision: &str,
        file: &str,
    ) -> Result<FileInfo, WeightsError> {
        let url = self.url(repo, revision, file);
        let resp =
            self.auth(client.head(&url))
                .send()
                .await
                .map_err(|e| WeightsError::Download {
                    url: url.clone(),
                    message: e.to_string(),
                })?;
        let status = resp.status();
        check_status(status, &url, repo, file, self.token.is_some())?;
        let headers = resp.headers();
        Ok(FileInfo {
            commit: header(headers, "x-repo-commit"),
            size: header(headers, "x-linked-size")
                .or_else(|| header(headers, CONTENT_LENGTH.as_str()))
                .and_then(|s| s.parse().ok()),
        })
    }

    #[allow(clippy::too_many_arguments)]
    async fn download(
        &self,
        client: &reqwest::Client,
        url: &str,
        dest: &Path,
        repo: &str,
        file: &str,
        done_before: u64,
        total: Option<u64>,
        progress: &dyn DownloadProgress,
    ) -> Result<u64, WeightsError> {
        let fail = |message: String| WeightsError::Download {
            url: url.to_string(),
            message,
        };
        let mut resp = self
            .auth(client.get(url))
            .send()
            .await
            .map_err(|e| fail(e.to_string()))?;
        check_status(resp.status(), url, repo, file, self.token.is_some())?;
        let part = dest.with_extension(format!(
            "{}part",
            dest.extension()
                .map(|e| format!("{}.", e.to_string_lossy()))
                .unwrap_or_default()
        ));
        let mut out = tokio::fs::File::create(&part)
            .await
            .map_err(io_err(format!("creating {}", part.display())))?;
        let mut got = 0u64;
        progress.progress(&ProgressEvent {
            repo,
            file,
            done: done_before,
            total,
        });
        while let Some(chunk) = resp.chunk().await.map_err(|e| fail(e.to_string()))? {
            out.write_all(&chunk)
                .await
                .map_err(io_err(format!("writing {}", part.display())))?;
            got += chunk.len() as u64;
            progress.progress(&ProgressEvent {
                repo,
                file,
                done: done_before + got,
                total,
            });
        }
        out.flush()
            .await
            .map_err(io_err(format!("writing {}", part.display())))?;
        drop(out);
        tokio::fs::rename(&part, dest)
            .await
            .map_err(io_err(format!("moving {} into place", part.display())))?;
        Ok(got)
    }
}

fn header(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
}

fn check_status(
    status: StatusCode,
    url: &str,
    repo: &str,
    file: &str,
    has_token: bool,
) -> Result<(), WeightsError> {
    if status.is_success() || status.is_redirection() {
        return Ok(());
    }
    let message = match status {
        StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN if !has_token => format!(
            "{status}: {repo} is gated or private; accept its licence on the hub and set HF_TOKEN"
        ),
        StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => {
            format!(
                "{status}: the token in HF_TOKEN has no access to {repo} (accept its licence on the hub)"
            )
        }
        StatusCode::NOT_FOUND => format!("{status}: {repo} has no file {file} at that revision"),
        _ => status.to_string(),
    };
    Err(WeightsError::Download {
        url: url.to_string(),
        message,
    })
}
