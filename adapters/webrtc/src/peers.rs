//! The WebRTC side of a viewer: one peer connection per browser, made from its SDP offer and
//! answered once all our candidates are gathered (non-trickle, bounded by a timeout). Every peer
//! gets the same outgoing video track, so a frame is encoded once whatever the number of viewers,
//! and, if the browser opened one, a `predictions` data channel.
//!
//! Peers are forgotten and closed when the browser hangs up, when the connection fails or ICE
//! times out, or when the same session id offers again.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, SystemTime};

use tokio::sync::watch;
use visprompt_domain::ProjectId;
use webrtc::api::API;
use webrtc::api::APIBuilder;
use webrtc::api::interceptor_registry::register_default_interceptors;
use webrtc::api::media_engine::{MIME_TYPE_H264, MediaEngine};
use webrtc::api::setting_engine::SettingEngine;
use webrtc::data_channel::RTCDataChannel;
use webrtc::ice::mdns::MulticastDnsMode;
use webrtc::ice::network_type::NetworkType;
use webrtc::ice::udp_network::{EphemeralUDP, UDPNetwork};
use webrtc::ice_transport::ice_candidate_type::RTCIceCandidateType;
use webrtc::ice_transport::ice_server::RTCIceServer;
use webrtc::interceptor::registry::Registry;
use webrtc::peer_connection::RTCPeerConnection;
use webrtc::peer_connection::configuration::RTCConfiguration;
use webrtc::peer_connection::peer_connection_state::RTCPeerConnectionState;
use webrtc::peer_connection::sdp::session_description::RTCSessionDescription;
use webrtc::rtcp::payload_feedbacks::full_intra_request::FullIntraRequest;
use webrtc::rtcp::payload_feedbacks::picture_loss_indication::PictureLossIndication;
use webrtc::rtp_transceiver::rtp_codec::{
    RTCRtpCodecCapability, RTCRtpCodecParameters, RTPCodecType,
};
use webrtc::track::track_local::TrackLocal;
use webrtc::track::track_local::track_local_static_sample::TrackLocalStaticSample;

use crate::settings::{IceServer, WebRtcSettings};

/// The H.264 flavour we send: constrained baseline, level 3.1, non-interleaved packets, which
/// every browser's decoder takes.
pub const H264_FMTP: &str =
    "level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42e01f";

/// Largest offer accepted; real ones are a few kilobytes.
pub const MAX_SDP_BYTES: usize = 64 * 1024;

/// Peer-level limits and timings.
#[derive(Clone, Debug)]
pub struct PeerLimits {
    pub max_viewers: usize,
    /// How long an answer waits for our candidates.
    pub gathering_timeout: Duration,
    /// Gather only loopback candidates (tests and single-machine setups).
    pub loopback_only: bool,
}

impl Default for PeerLimits {
    fn default() -> Self {
        Self {
            max_viewers: 32,
            gathering_timeout: Duration::from_secs(5),
            loopback_only: false,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum OfferError {
    #[error("the SDP offer is {0} bytes; at most {MAX_SDP_BYTES} are accepted")]
    TooLarge(usize),
    #[error("the session id must be 1 to 128 letters, digits, `-`, `_` or `.`")]
    BadSessionId,
    #[error("the SDP offer is not valid: {0}")]
    BadSdp(String),
    #[error(
        "the offer has no video section that can receive H.264 (constrained baseline, packetization-mode 1)"
    )]
    NoH264Video,
    #[error("{0} viewers are connected already, the most this server takes")]
    TooManyViewers(usize),
    #[error("WebRTC: {0}")]
    Internal(String),
}

fn internal(e: impl std::fmt::Display) -> OfferError {
    OfferError::Internal(e.to_string())
}

/// One connected (or connecting) viewer.
pub(crate) struct Peer {
    pub(crate) project_id: ProjectId,
    pub(crate) connection: Arc<RTCPeerConnection>,
    pub(crate) predictions: Mutex<Option<Arc<RTCDataChannel>>>,
    /// Whether a prediction reached the channel yet: a viewer joining a still source (an image
    /// folder between seeks) is sent the newest result instead of waiting for the next one.
    pub(crate) greeted: std::sync::atomic::AtomicBool,
}

/// Requests for a key frame, from peers to the encoder.
pub(crate) type KeyFrameRequests = Arc<std::sync::atomic::AtomicBool>;

/// All peers, keyed by the session id the browser chose.
pub(crate) struct Peers {
    api: API,
    settings: WebRtcSettings,
    limits: PeerLimits,
    track: Arc<TrackLocalStaticSample>,
    key_frames: KeyFrameRequests,
    peers: Mutex<HashMap<String, Arc<Peer>>>,
    count: watch::Sender<usize>,
}

impl Peers {
    pub(crate) fn new(
        settings: WebRtcSettings,
        limits: PeerLimits,
        key_frames: KeyFrameRequests,
    ) -> Result<Arc<Self>, OfferError> {
        let mut media = MediaEngine::default();
        media
            .register_codec(
                RTCRtpCodecParameters {
                    capability: h264_capability(),
                    payload_type: 102,
                    ..Default::default()
                },
                RTPCodecType::Video,
            )
            .map_err(internal)?;
        let registry =
            register_default_interceptors(Registry::new(), &mut media).map_err(internal)?;
        let api = APIBuilder::new()
            .with_media_engine(media)
            .with_interceptor_registry(registry)
            .with_setting_engine(setting_engine(&settings, &limits)?)
            .build();
        let track = Arc::new(TrackLocalStaticSample::new(
            h264_capability(),
            "video".to_owned(),
            "visprompt".to_owned(),
        ));
        Ok(Arc::new(Self {
            api,
            settings,
            limits,
            track,
            key_frames,
            peers: Mutex::new(HashMap::new()),
            count: watch::Sender::new(0),
        }))
    }

    pub(crate) fn track(&self) -> &Arc<TrackLocalStaticSample> {
        &self.track
    }

    pub(crate) fn viewer_count(&self) -> watch::Receiver<usize> {
        self.count.subscribe()
    }

    pub(crate) fn snapshot(&self) -> Vec<Arc<Peer>> {
        self.peers
            .lock()
            .expect("peer table")
            .values()
            .cloned()
            .collect()
    }

    pub(crate) fn session_ids(&self) -> Vec<String> {
        self.peers
            .lock()
            .expect("peer table")
            .keys()
            .cloned()
            .collect()
    }

    pub(crate) fn sessions(&self) -> Vec<(String, ProjectId)> {
        self.peers
            .lock()
            .expect("peer table")
            .iter()
            .map(|(id, peer)| (id.clone(), peer.project_id))
            .collect()
    }

    fn publish_count(&self) {
        let n = self.peers.lock().expect("peer table").len();
        self.count.send_replace(n);
    }

    /// Answers a browser's offer; the answer carries all our candidates.
    pub(crate) async fn offer(
        self: &Arc<Self>,
        project_id: ProjectId,
        session_id: &str,
        sdp: String,
    ) -> Result<String, OfferError> {
        if sdp.len() > MAX_SDP_BYTES {
            return Err(OfferError::TooLarge(sdp.len()));
        }
        if session_id.is_empty()
            || session_id.len() > 128
            || !session_id
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        {
            return Err(OfferError::BadSessionId);
        }
        check_offer(&sdp)?;
        // The same browser object offering again replaces its old connection.
        self.hang_up(session_id).await;
        if self.peers.lock().expect("peer table").len() >= self.limits.max_viewers {
            return Err(OfferError::TooManyViewers(self.limits.max_viewers));
        }

        let config = RTCConfiguration {
            ice_servers: self
                .settings
                .ice_servers_for("visprompt", SystemTime::now())
                .into_iter()
                .filter(usable_by_our_peer)
                .map(|s| RTCIceServer {
                    urls: s.urls,
                    username: s.username.unwrap_or_default(),
                    credential: s.credential.unwrap_or_default(),
                })
                .collect(),
            ..Default::default()
        };
        let connection = Arc::new(
            self.api
                .new_peer_connection(config)
                .await
                .map_err(internal)?,
        );
        match self.negotiate(&connection, sdp).await {
            Ok(answer) => {
                let peer = Arc::new(Peer {
                    project_id,
                    connection: connection.clone(),
                    predictions: Mutex::new(None),
                    greeted: std::sync::atomic::AtomicBool::new(false),
                });
                self.watch(session_id, &peer);
                self.peers
                    .lock()
                    .expect("peer table")
                    .insert(session_id.to_owned(), peer);
                self.publish_count();
                Ok(answer)
            }
            Err(e) => {
                let _ = connection.close().await;
                Err(e)
            }
        }
    }

    async fn negotiate(
        &self,
        connection: &Arc<RTCPeerConnection>,
        sdp: String,
    ) -> Result<String, OfferError> {
        // The track goes in before the offer is applied, so that the browser's receive-only
        // video section is matched to our sending transceiver.
        let sender = connection
            .add_track(self.track.clone() as Arc<dyn TrackLocal + Send + Sync>)
            .await
            .map_err(internal)?;
        let offer =
            RTCSessionDescription::offer(sdp).map_err(|e| OfferError::BadSdp(e.to_string()))?;
        connection
            .set_remote_description(offer)
            .await
            .map_err(|e| OfferError::BadSdp(e.to_string()))?;
        // RTCP from the browser: a lost picture asks for a key frame.
        let key_frames = self.key_frames.clone();
        tokio::spawn(async move {
            let mut buf = vec![0u8; 1500];
            while let Ok((packets, _)) = sender.read(&mut buf).await {
                let wants_key = packets.iter().any(|p| {
                    let any = p.as_any();
                    any.is::<PictureLossIndication>() || any.is::<FullIntraRequest>()
                });
                if wants_key {
                    key_frames.store(true, std::sync::atomic::Ordering::Relaxed);
                }
            }
        });
        let answer = connection.create_answer(None).await.map_err(internal)?;
        let mut gathered = connection.gathering_complete_promise().await;
        connection
            .set_local_description(answer)
            .await
            .map_err(internal)?;
        if tokio::time::timeout(self.limits.gathering_timeout, gathered.recv())
            .await
            .is_err()
        {
            tracing::warn!(
                "ICE gathering took longer than {:?}; answering with the candidates found so far",
                self.limits.gathering_timeout
            );
        }
        let local = connection
            .local_description()
            .await
            .ok_or_else(|| internal("no local description after answering"))?;
        Ok(local.sdp)
    }

    /// Watches the connection: a new viewer gets a key frame at once; a failed or closed one is
    /// removed. Handlers hold only weak references, so a forgotten peer is freed.
    fn watch(self: &Arc<Self>, session_id: &str, peer: &Arc<Peer>) {
        let peers: Weak<Self> = Arc::downgrade(self);
        let id = session_id.to_owned();
        let connection = Arc::downgrade(&peer.connection);
        peer.connection
            .on_peer_connection_state_change(Box::new(move |state| {
                let peers = peers.clone();
                let id = id.clone();
                let connection = connection.clone();
                Box::pin(async move {
                    let Some(peers) = peers.upgrade() else { return };
                    match state {
                        RTCPeerConnectionState::Connected => peers
                            .key_frames
                            .store(true, std::sync::atomic::Ordering::Relaxed),
                        RTCPeerConnectionState::Failed | RTCPeerConnectionState::Closed => {
                            if let Some(connection) = connection.upgrade() {
                                peers.forget_if(&id, &connection).await;
                            }
                        }
                        _ => {}
                    }
                })
            }));
        let weak_peer = Arc::downgrade(peer);
        peer.connection.on_data_channel(Box::new(move |channel| {
            let weak_peer = weak_peer.clone();
            Box::pin(async move {
                if channel.label() == "predictions"
                    && let Some(peer) = weak_peer.upgrade()
                {
                    *peer.predictions.lock().expect("channel slot") = Some(channel);
                }
            })
        }));
    }

    async fn forget_if(&self, session_id: &str, connection: &Arc<RTCPeerConnection>) {
        let removed = {
            let mut peers = self.peers.lock().expect("peer table");
            match peers.get(session_id) {
                Some(p) if Arc::ptr_eq(&p.connection, connection) => peers.remove(session_id),
                _ => None,
            }
        };
        if let Some(peer) = removed {
            self.publish_count();
            let _ = peer.connection.close().await;
            tracing::info!(session = session_id, "viewer left");
        }
    }

    /// Closes the session's connection; `false` if there was none.
    pub(crate) async fn hang_up(&self, session_id: &str) -> bool {
        let removed = self.peers.lock().expect("peer table").remove(session_id);
        match removed {
            Some(peer) => {
                self.publish_count();
                let _ = peer.connection.close().await;
                true
            }
            None => false,
        }
    }

    pub(crate) async fn close_all(&self) {
        let all: Vec<_> = self.peers.lock().expect("peer table").drain().collect();
        self.publish_count();
        for (_, peer) in all {
            let _ = peer.connection.close().await;
        }
    }
}

fn h264_capability() -> RTCRtpCodecCapability {
    RTCRtpCodecCapability {
        mime_type: MIME_TYPE_H264.to_owned(),
        clock_rate: 90_000,
        channels: 0,
        sdp_fmtp_line: H264_FMTP.to_owned(),
        rtcp_feedback: vec![],
    }
}

/// Our own peer uses only STUN (to learn its public address). TURN is for browsers: they relay to
/// our candidates, while a relay of our own would open sockets outside the media port range
/// (the library binds them anywhere) and add a hop for nothing.
fn usable_by_our_peer(server: &IceServer) -> bool {
    server.urls.iter().all(|u| u.starts_with("stun:"))
}

fn setting_engine(
    settings: &WebRtcSettings,
    limits: &PeerLimits,
) -> Result<SettingEngine, OfferError> {
    let mut engine = SettingEngine::default();
    let range = settings.port_range;
    let udp = EphemeralUDP::new(range.min(), range.max()).map_err(internal)?;
    engine.set_udp_network(UDPNetwork::Ephemeral(udp));
    // mDNS would open port 5353 outside the media range; browsers' .local candidates are
    // answered by peer-reflexive discovery instead.
    engine.set_ice_multicast_dns_mode(MulticastDnsMode::Disabled);
    // A 1:1 NAT maps one address family; candidates of the other would leak internal
    // addresses, so only the advertised family is gathered.
    engine.set_network_types(match settings.advertise_ip {
        Some(std::net::IpAddr::V4(_)) => vec![NetworkType::Udp4],
        Some(std::net::IpAddr::V6(_)) => vec![NetworkType::Udp6],
        None => vec![NetworkType::Udp4, NetworkType::Udp6],
    });
    if let Some(ip) = settings.advertise_ip {
        engine.set_nat_1to1_ips(vec![ip.to_string()], RTCIceCandidateType::Host);
    }
    if limits.loopback_only {
        engine.set_include_loopback_candidate(true);
        engine.set_ip_filter(Box::new(|ip| ip.is_loopback()));
    }
    // A vanished browser is noticed within seconds, not the library's half minute.
    engine.set_ice_timeouts(
        Some(Duration::from_secs(4)),
        Some(Duration::from_secs(8)),
        Some(Duration::from_secs(1)),
    );
    Ok(engine)
}

/// Cheap checks before the SDP parser sees the text: an offer, with a video section that offers
/// H.264 in packetization mode 1.
fn check_offer(sdp: &str) -> Result<(), OfferError> {
    if !sdp.starts_with("v=0") {
        return Err(OfferError::BadSdp("it does not start with `v=0`".into()));
    }
    let mut in_video = false;
    let mut h264_payloads = Vec::new();
    let mut good = false;
    for line in sdp.lines() {
        let line = line.trim_end();
        if let Some(media) = line.strip_prefix("m=") {
            in_video = media.starts_with("video ");
            h264_payloads.clear();
        } else if in_video {
            if let Some(rtpmap) = line.strip_prefix("a=rtpmap:") {
                if let Some((pt, codec)) = rtpmap.split_once(' ')
                    && codec.to_ascii_uppercase().starts_with("H264/90000")
                {
                    h264_payloads.push(pt.to_owned());
                }
            } else if let Some(fmtp) = line.strip_prefix("a=fmtp:")
                && let Some((pt, params)) = fmtp.split_once(' ')
                && h264_payloads.iter().any(|p| p == pt)
                && params.contains("packetization-mode=1")
                && (params.contains("profile-level-id=42e0")
                    || params.contains("profile-level-id=4200")
                    || params.contains("profile-level-id=42c0"))
            {
                good = true;
            }
        }
    }
    if good {
        Ok(())
    } else {
        Err(OfferError::NoH264Video)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offers_without_h264_video_are_refused_before_parsing() {
        assert!(matches!(check_offer("hello"), Err(OfferError::BadSdp(_))));
        let vp8_only = "v=0\r\nm=video 9 UDP/TLS/RTP/SAVPF 96\r\na=rtpmap:96 VP8/90000\r\n";
        assert!(matches!(
            check_offer(vp8_only),
            Err(OfferError::NoH264Video)
        ));
        let audio_h264 = "v=0\r\nm=audio 9 UDP/TLS/RTP/SAVPF 102\r\na=rtpmap:102 H264/90000\r\na=fmtp:102 packetization-mode=1;profile-level-id=42e01f\r\n";
        assert!(matches!(
            check_offer(audio_h264),
            Err(OfferError::NoH264Video)
        ));
        let good = "v=0\r\nm=video 9 UDP/TLS/RTP/SAVPF 102\r\na=rtpmap:102 H264/90000\r\na=fmtp:102 level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42e01f\r\n";
        check_offer(good).unwrap();
    }

    #[test]
    fn turn_entries_are_for_browsers_only() {
        let turn = IceServer {
            urls: vec!["turn:127.0.0.1:3478?transport=udp".into()],
            username: Some("u".into()),
            credential: Some("p".into()),
        };
        let stun = IceServer {
            urls: vec!["stun:127.0.0.1:3478".into()],
            username: None,
            credential: None,
        };
        assert!(!usable_by_our_peer(&turn));
        assert!(usable_by_our_peer(&stun));
    }
}
