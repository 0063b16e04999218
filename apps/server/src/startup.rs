//! Builds the running application from [`Settings`]: opens the store, starts the pipeline manager
//! with its adapters, assembles the routes with their middleware, binds the listener. `build` then
//! `run_until_stopped` is the whole life of the server, for `main` and for the integration tests
//! alike.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use poem::listener::{Acceptor, Listener, TcpListener};
use poem::middleware::Cors;
use poem::{Endpoint, EndpointExt, Route, Server};
use visprompt_vision::store::{ModelStore, ModelStoreSettings};

use crate::detectors::DetectorRouter;
use visprompt_domain::{MediaRoots, Repository, Service};
use visprompt_image::ImageCodec;
use visprompt_media::MediaSourceFactory;
use visprompt_runtime::{
    Components, ManagerSettings, ObservedRepository, PipelineHandle, PipelineManager,
};
use visprompt_sinks::Sinks;
use visprompt_surrealdb::SurrealRepository;
use visprompt_webrtc::{LiveView, OverlayStyle, PeerLimits, WebRtcSettings};

use crate::api::{AppState, open_api};
use crate::document::{AllowTable, harden};
use crate::middleware::{BodyLimits, check_token, json_errors, limit_body};
use crate::settings::Settings;
use poem_openapi::OpenApiService;

pub struct Application {
    port: u16,
    acceptor: poem::listener::TcpAcceptor,
    app: poem::endpoint::BoxEndpoint<'static>,
    pipeline: PipelineHandle,
    live: Arc<LiveView>,
}

/// Wraps the store so every write is announced, and starts the pipeline manager on it with the
/// adapters this build has.
///
/// `sole_writer` says that no other process writes to the store (the embedded database): project
/// reads are then cached, since every write passes through here and empties the cache.
fn compose(
    repo: Arc<dyn Repository>,
    sole_writer: bool,
    media_roots: MediaRoots,
    webrtc: (WebRtcSettings, PeerLimits),
    models: ModelStoreSettings,
) -> anyhow::Result<AppState> {
    visprompt_sinks::install_crypto_provider();
    let observed = ObservedRepository::new(repo);
    let observed = Arc::new(if sole_writer {
        observed.with_read_cache()
    } else {
        observed
    });
    let changes = observed.sender();
    let codec = Arc::new(ImageCodec);
    let models = Arc::new(ModelStore::new(models));
    let pipeline = PipelineManager::start(
        observed.clone(),
        observed.subscribe(),
        Components {
            sources: Arc::new(MediaSourceFactory::new(media_roots.clone())),
            detectors: Arc::new(DetectorRouter::new(models.clone())),
            sinks: Arc::new(Sinks::default().confined_to(&media_roots)),
            codec: codec.clone(),
        },
        ManagerSettings::default(),
    );
    let live = LiveView::start(
        webrtc.0,
        webrtc.1,
        pipeline.outputs().clone(),
        OverlayStyle::default(),
    )
    .context("starting the WebRTC live view")?;
    Ok(AppState {
        service: Service::new(observed, media_roots),
        pipeline,
        codec,
        changes,
        live: Arc::new(live),
        models,
    })
}

impl Application {
    /// Opens the store (migrating its schema) and binds `HOST:PORT` (port 0 picks a free one).
    pub async fn build(settings: Settings) -> anyhow::Result<Self> {
        let location = settings.store_location();
        let repo = SurrealRepository::connect(
            location.clone(),
            &settings.store.namespace,
            &settings.store.database,
        )
        .await
        .with_context(|| format!("opening the database ({location:?})"))?;
        let sole_writer = !matches!(location, visprompt_surrealdb::StoreLocation::Remote { .. });
        let state = compose(
            Arc::new(repo),
            sole_writer,
            settings.media_roots()?,
            (settings.webrtc()?, settings.peer_limits()),
            settings.model_store(),
        )?;
        if settings.demo.seed_project {
            crate::demo::seed(&state.service, &*state.codec)
                .await
                .context("creating the demo project")?;
        }
        let pipeline = state.pipeline.clone();
        let live = state.live.clone();
        let app = routes(state, &settings);
        let addr = format!("{}:{}", settings.server.host, settings.server.port);
        let acceptor = TcpListener::bind(addr.clone())
            .into_acceptor()
            .await
            .with_context(|| format!("binding {addr}"))?;
        let port = acceptor
            .local_addr()
            .first()
            .and_then(|a| a.as_socket_addr().map(|s| s.port()))
            .context("the listener has no socket address")?;
        tracing::info!(message = "Listening.", address = %addr, port);
        Ok(Self {
            port,
            acceptor,
            app,
            pipeline,
            live,
        })
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn pipeline(&self) -> &PipelineHandle {
        &self.pipeline
    }

    /// Serves until `shutdown` resolves, then lets running requests finish (for at most 5 s) and
    /// stops the pipeline.
    pub async fn run_until_stopped(
        self,
        shutdown: impl Future<Output = ()> + Send,
    ) -> std::io::Result<()> {
        let served = Server::new_with_acceptor(self.acceptor)
            .run_with_graceful_shutdown(self.app, shutdown, Some(Duration::from_secs(5)))
            .await;
        self.live.shutdown().await;
        self.pipeline.shutdown().await;
        served
    }
}

/// Every route with its middleware; also used to print the OpenAPI document.
fn routes(state: AppState, settings: &Settings) -> poem::endpoint::BoxEndpoint<'static> {
    let metrics = crate::metrics::endpoint(state.pipeline.clone(), state.live.clone());
    let api = open_api(state, settings.archive_limits());
    let document = hardened(&api);
    let allow = Arc::new(AllowTable::from_document(&document));
    let document = Arc::new(document.to_string());
    let spec = poem::endpoint::make_sync(move |_| {
        poem::Response::builder()
            .content_type("application/json; charset=utf-8")
            .body(document.to_string())
    });
    let docs = api.swagger_ui();
    let limits = BodyLimits {
        json: settings.server.max_body_bytes,
        upload: settings.server.max_upload_bytes,
        import: settings.server.max_import_bytes,
    };
    let origins = settings.cors_origins();
    let cors = if origins.iter().any(|o| o == "*") {
        Cors::new()
    } else {
        Cors::new().allow_origins(origins)
    };
    let token = settings.server.api_token.clone();
    let api_routes = Route::new()
        .nest("/", api)
        .at("/api/openapi.json", spec)
        .at("/metrics", metrics)
        .nest("/api/docs", docs)
        .around(move |ep, req| {
            let allow = allow.clone();
            async move { json_errors(&*ep, req, &allow).await }
        })
        .around(move |ep, req| async move { limit_body(&*ep, req, limits).await })
        .around(move |ep, req| {
            let token = token.clone();
            async move {
                match token {
                    Some(token) => check_token(&*ep, req, &token).await,
                    None => ep.call(req).await.map(poem::IntoResponse::into_response),
                }
            }
        });
    let api = Arc::new(api_routes.boxed());
    let checked = crate::middleware::OwnOriginOrCors {
        cors: poem::Middleware::transform(&cors, api.clone()).boxed(),
        api,
    };
    crate::ui::WithUi::new(checked.boxed(), &settings.server.ui_dir).boxed()
}

/// The OpenAPI document as served at `/api/openapi.json`, from the default settings (the
/// document does not depend on them; an in-memory store stands in for the real one).
pub async fn openapi_document() -> anyhow::Result<String> {
    let settings = Settings::default();
    let repo = SurrealRepository::connect(visprompt_surrealdb::StoreLocation::Memory, "doc", "doc")
        .await?;
    let state = compose(
        Arc::new(repo),
        true,
        MediaRoots::default(),
        (settings.webrtc()?, settings.peer_limits()),
        settings.model_store(),
    )?;
    let document = serde_json::to_string_pretty(&hardened(&open_api(
        state.clone(),
        settings.archive_limits(),
    )))?;
    state.live.shutdown().await;
    state.pipeline.shutdown().await;
    Ok(document)
}

fn hardened(api: &OpenApiService<crate::api::Api, ()>) -> serde_json::Value {
    let mut document: serde_json::Value =
        serde_json::from_str(&api.spec()).expect("poem-openapi writes valid JSON");
    harden(&mut document);
    document
}
