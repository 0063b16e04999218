//! WebRTC live view: the active project's annotated video and its predictions, to any number of
//! browsers.
//!
//! - [`LiveView`] is what the server holds: it answers offers ([`LiveView::offer`]), hangs up
//!   sessions, and hands out the ICE servers browsers should use.
//! - [`settings`]: advertise IP, STUN/TURN servers, the media port range and TURN REST
//!   credentials, validated at start-up.
//! - `peers`: one peer connection per browser, all sharing one video track.
//! - `stream`: frames → overlays ([`overlay`]) → H.264 ([`h264`]) → the shared track, and the
//!   prediction JSON → each viewer's `predictions` data channel.
//! - [`viewer`]: a viewer peer in Rust (the other end), used by tests, benchmarks and programs
//!   that want the stream without a browser.
//!
//! Browsers offer a `recvonly` video transceiver and, to get predictions, a data channel named
//! `predictions`; the answer carries all our candidates (no trickle ICE).

pub mod font;
pub mod h264;
pub mod overlay;
mod peers;
pub mod settings;
mod stream;
pub mod viewer;

use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::SystemTime;

use tokio::task::JoinHandle;
use visprompt_domain::ProjectId;
use visprompt_runtime::PipelineOutputs;

pub use overlay::OverlayStyle;
pub use peers::{H264_FMTP, MAX_SDP_BYTES, OfferError, PeerLimits};
pub use settings::{IceServer, PortRange, RawWebRtcSettings, SettingsError, WebRtcSettings};
pub use stream::{StreamFigures, StreamStats};

/// Selects rustls' process-wide crypto provider (ring) unless one is set already. When the
/// workspace's feature unification turns on two providers, rustls would otherwise refuse to pick
/// one and peer connections would fail to make their DTLS certificates.
pub fn install_crypto_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// The live view: peers plus the stream they share.
pub struct LiveView {
    settings: WebRtcSettings,
    peers: Arc<peers::Peers>,
    stats: Arc<StreamStats>,
    task: JoinHandle<()>,
}

impl LiveView {
    /// Starts the (idle until someone watches) stream over the pipeline's outputs.
    pub fn start(
        settings: WebRtcSettings,
        limits: PeerLimits,
        outputs: PipelineOutputs,
        style: OverlayStyle,
    ) -> Result<Self, OfferError> {
        install_crypto_provider();
        let key_frames = Arc::new(AtomicBool::new(true));
        let peers = peers::Peers::new(settings.clone(), limits, key_frames.clone())?;
        let stats = Arc::new(StreamStats::default());
        let task = tokio::spawn(stream::run(
            peers.clone(),
            outputs,
            style,
            key_frames,
            stats.clone(),
        ));
        Ok(Self {
            settings,
            peers,
            stats,
            task,
        })
    }

    /// Answers a browser's SDP offer for `project_id`; `session_id` is the browser's own id for
    /// this connection (offering again with it replaces the old connection).
    pub async fn offer(
        &self,
        project_id: ProjectId,
        session_id: &str,
        sdp: String,
    ) -> Result<String, OfferError> {
        self.peers.offer(project_id, session_id, sdp).await
    }

    /// Closes a session; `false` when there is no such session.
    pub async fn hang_up(&self, session_id: &str) -> bool {
        self.peers.hang_up(session_id).await
    }

    /// The ICE servers for a browser, with fresh TURN credentials when a shared secret is set.
    pub fn ice_servers_for(&self, client: &str) -> Vec<IceServer> {
        self.settings.ice_servers_for(client, SystemTime::now())
    }

    pub fn settings(&self) -> &WebRtcSettings {
        &self.settings
    }

    pub fn viewer_count(&self) -> usize {
        *self.peers.viewer_count().borrow()
    }

    pub fn session_ids(&self) -> Vec<String> {
        self.peers.session_ids()
    }

    /// The projects the connected viewers asked for, by session.
    pub fn sessions(&self) -> Vec<(String, ProjectId)> {
        self.peers.sessions()
    }

    pub fn stats(&self) -> StreamFigures {
        self.stats.figures()
    }

    /// Hangs up every viewer and stops the stream.
    pub async fn shutdown(&self) {
        self.task.abort();
        self.peers.close_all().await;
    }
}
