//! The browser UI on the API's port: the built files of `apps/ui` (the folder `UI_DIR`) served
//! at `/`, so one port carries both and no CORS set-up is needed.
//!
//! - `/api/…`, `/health` and `/metrics` never reach this module: `routes` sends them to the API.
//! - Files under `assets/` carry a content hash in their name (Vite), so browsers may keep them
//!   for a year; `index.html` is revalidated on every load, so a new build shows at once.
//! - Any other path without a file extension is a route of the single-page app and gets
//!   `index.html`; a missing file (`/assets/gone.js`, `/favicon.ico`) is a plain 404, never the
//!   page, which would otherwise be parsed as a script.
//! - When the UI has not been built the server still runs: `/` explains how to build it.
//! - The UI is public, like any web page: it holds no data. With `API_TOKEN` set, the page asks
//!   for the token and the API checks it.

use std::path::{Component, Path, PathBuf};

use poem::endpoint::StaticFileEndpoint;
use poem::http::{HeaderValue, Method, StatusCode, header};
use poem::{Endpoint, IntoResponse, Request, Response};

/// Paths the API answers; everything else a browser asks for with GET belongs to the UI.
pub fn is_api_path(path: &str) -> bool {
    path == "/health"
        || path == "/metrics"
        || path == "/api"
        || path.starts_with("/api/")
        || path.starts_with("/health/")
}

/// Whether a request is for the UI rather than the API.
pub fn wants_ui(req: &Request) -> bool {
    matches!(*req.method(), Method::GET | Method::HEAD) && !is_api_path(req.uri().path())
}

/// The API with the UI in front: GET and HEAD requests outside the API's paths go to the UI.
pub struct WithUi {
    api: poem::endpoint::BoxEndpoint<'static>,
    ui: UiFiles,
}

impl WithUi {
    pub fn new(api: poem::endpoint::BoxEndpoint<'static>, ui_dir: impl Into<PathBuf>) -> Self {
        Self {
            api,
            ui: UiFiles::new(ui_dir),
        }
    }
}

impl Endpoint for WithUi {
    type Output = Response;

    async fn call(&self, req: Request) -> poem::Result<Response> {
        if wants_ui(&req) {
            self.ui.call(req).await
        } else {
            self.api.call(req).await
        }
    }
}

/// Serves the UI's files from one folder.
pub struct UiFiles {
    dir: PathBuf,
    index: StaticFileEndpoint,
}

impl UiFiles {
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        let dir = dir.into();
        Self {
            index: StaticFileEndpoint::new(dir.join("index.html")).no_cache(true),
            dir,
        }
    }

    fn built(&self) -> bool {
        self.dir.join("index.html").is_file()
    }

    /// The file a request path names, when it is a plain relative path to a file in the folder
    /// (no `..`, no hidden files, no symlink leading out).
    fn file_for(&self, path: &str) -> Option<PathBuf> {
        let relative = Path::new(path.trim_start_matches('/'));
        let plain = relative.components().all(|c| match c {
            Component::Normal(part) => !part.to_string_lossy().starts_with('.'),
            _ => false,
        });
        if !plain || relative.as_os_str().is_empty() {
            return None;
        }
        let candidate = self.dir.join(relative);
        let resolved = candidate.canonicalize().ok()?;
        let root = self.dir.canonicalize().ok()?;
        (resolved.starts_with(root) && resolved.is_file()).then_some(candidate)
    }
}

impl Endpoint for UiFiles {
    type Output = Response;

    async fn call(&self, req: Request) -> poem::Result<Response> {
        if !self.built() {
            return Ok(not_built(&self.dir));
        }
        // HEAD is answered as GET without a body, as the static file endpoints only know GET.
        let head = req.method() == Method::HEAD;
        let mut req = req;
        if head {
            req.set_method(Method::GET);
        }
        let decoded = percent_encoding::percent_decode_str(req.uri().path())
            .decode_utf8()
            .map(|p| p.into_owned())
            .unwrap_or_default();
        let mut response = match self.file_for(&decoded) {
            Some(file) => {
                let immutable = decoded.starts_with("/assets/");
                // The path is already checked and resolved: serve that file (ETag, ranges and
                // content type come from poem's single-file endpoint).
                let mut response = StaticFileEndpoint::new(file)
                    .call(req)
                    .await?
                    .into_response();
                let cache = if immutable {
                    "public, max-age=31536000, immutable"
                } else {
                    "no-cache"
                };
                response
                    .headers_mut()
                    .insert(header::CACHE_CONTROL, HeaderValue::from_static(cache));
                response
            }
            None if is_app_route(&decoded) => self.index.call(req).await?.into_response(),
            None => Response::builder()
                .status(StatusCode::NOT_FOUND)
                .content_type("text/plain; charset=utf-8")
                .body("not found"),
        };
        if head {
            let _ = response.take_body();
        }
        Ok(response)
    }
}

/// A path the single-page app routes itself: no file extension in its last segment.
fn is_app_route(path: &str) -> bool {
    let last = path.rsplit('/').next().unwrap_or_default();
    !last.contains('.')
}

fn not_built(dir: &Path) -> Response {
    let page = format!(
        "<!doctype html><meta charset=utf-8><title>visprompt</title>\
         <h1>visprompt is running</h1>\
         <p>The browser UI has not been built into <code>{}</code>: run <code>just ui-build</code> \
         (or <code>just run</code>, which builds it), or point <code>UI_DIR</code> at a built UI.</p>\
         <p>The API is at <a href=\"/api/docs\">/api/docs</a>.</p>",
        html_escape(&dir.display().to_string())
    );
    Response::builder()
        .content_type("text/html; charset=utf-8")
        .header(header::CACHE_CONTROL, "no-cache")
        .body(page)
}

fn html_escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn api_paths_are_never_the_ui() {
        for path in [
            "/api/v1/projects",
            "/api",
            "/api/docs",
            "/health",
            "/metrics",
        ] {
            assert!(is_api_path(path), "{path}");
        }
        for path in ["/", "/projects/1", "/assets/app.js", "/apiary", "/healthy"] {
            assert!(!is_api_path(path), "{path}");
        }
    }

    #[test]
    fn only_extensionless_paths_are_app_routes() {
        assert!(is_app_route("/"));
        assert!(is_app_route("/projects/abc/live"));
        assert!(!is_app_route("/assets/gone.js"));
        assert!(!is_app_route("/favicon.ico"));
    }

    #[test]
    fn files_outside_the_folder_or_hidden_are_not_served() {
        let root = tempfile::tempdir().unwrap();
        let dir = root.path().join("dist");
        std::fs::create_dir_all(dir.join("assets")).unwrap();
        std::fs::write(dir.join("index.html"), "x").unwrap();
        std::fs::write(dir.join("assets/a.js"), "x").unwrap();
        std::fs::write(dir.join(".env"), "secret").unwrap();
        std::fs::write(root.path().join("outside.txt"), "secret").unwrap();
        #[cfg(unix)]
        std::os::unix::fs::symlink(root.path().join("outside.txt"), dir.join("link.txt")).unwrap();
        let ui = UiFiles::new(&dir);
        assert!(ui.file_for("/assets/a.js").is_some());
        assert!(ui.file_for("/index.html").is_some());
        assert!(ui.file_for("/../outside.txt").is_none());
        assert!(ui.file_for("/assets/../../outside.txt").is_none());
        assert!(ui.file_for("/.env").is_none());
        assert!(ui.file_for("/link.txt").is_none());
        assert!(ui.file_for("/assets").is_none());
        assert!(ui.file_for("/").is_none());
    }
}
