//! A viewer peer in Rust: the browser's side of the live view. It offers a receive-only H.264
//! video transceiver and a `predictions` data channel, hands its complete offer to a signalling
//! function (an HTTP call, in practice), and then yields decoded frames and prediction messages.
//!
//! Tests and benchmarks use it to watch the stream as a browser would, over real ICE, DTLS and
//! SRTP; a program can use it to consume a remote visprompt without a browser.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::{mpsc, watch};
use visprompt_runtime::RgbImage;
use webrtc::api::APIBuilder;
use webrtc::api::interceptor_registry::register_default_interceptors;
use webrtc::api::media_engine::{MIME_TYPE_H264, MediaEngine};
use webrtc::api::setting_engine::SettingEngine;
use webrtc::ice::mdns::MulticastDnsMode;
use webrtc::ice::network_type::NetworkType;
use webrtc::ice_transport::ice_server::RTCIceServer;
use webrtc::interceptor::registry::Registry;
use webrtc::peer_connection::RTCPeerConnection;
use webrtc::peer_connection::configuration::RTCConfiguration;
use webrtc::peer_connection::peer_connection_state::RTCPeerConnectionState;
use webrtc::peer_connection::policy::ice_transport_policy::RTCIceTransportPolicy;
use webrtc::peer_connection::sdp::session_description::RTCSessionDescription;
use webrtc::rtp::codecs::h264::H264Packet;
use webrtc::rtp::packetizer::Depacketizer;
use webrtc::rtp_transceiver::RTCRtpTransceiverInit;
use webrtc::rtp_transceiver::rtp_codec::{
    RTCRtpCodecCapability, RTCRtpCodecParameters, RTPCodecType,
};
use webrtc::rtp_transceiver::rtp_transceiver_direction::RTCRtpTransceiverDirection;

pub use webrtc::peer_connection::peer_connection_state::RTCPeerConnectionState as ConnectionState;

use crate::h264::H264Decoder;
use crate::peers::H264_FMTP;
use crate::settings::IceServer;

/// How the viewer connects.
#[derive(Clone, Debug, Default)]
pub struct ViewerConfig {
    pub ice_servers: Vec<IceServer>,
    /// Use only TURN relay candidates (`iceTransportPolicy: "relay"`).
    pub relay_only: bool,
    /// Gather only loopback candidates.
    pub loopback_only: bool,
}

/// A decoded picture and when it arrived.
#[derive(Clone, Debug)]
pub struct ReceivedFrame {
    pub image: RgbImage,
    pub rtp_timestamp: u32,
    pub received_at: Instant,
}

/// A prediction message from the data channel and when it arrived.
#[derive(Clone, Debug)]
pub struct ReceivedPrediction {
    pub json: String,
    pub received_at: Instant,
}

#[derive(Debug, thiserror::Error)]
pub enum ViewerError {
    #[error("WebRTC: {0}")]
    WebRtc(String),
    #[error("signalling: {0}")]
    Signalling(String),
}

fn rtc(e: impl std::fmt::Display) -> ViewerError {
    ViewerError::WebRtc(e.to_string())
}

pub struct Viewer {
    connection: Arc<RTCPeerConnection>,
    pub frames: mpsc::Receiver<ReceivedFrame>,
    pub predictions: mpsc::Receiver<ReceivedPrediction>,
    state: watch::Receiver<RTCPeerConnectionState>,
}

impl Viewer {
    /// Offers, lets `signal` turn the offer SDP into the answer SDP, and applies the answer.
    pub async fn connect<F, Fut>(config: ViewerConfig, signal: F) -> Result<Self, ViewerError>
    where
        F: FnOnce(String) -> Fut,
        Fut: std::future::Future<Output = Result<String, String>>,
    {
        crate::install_crypto_provider();
        let mut media = MediaEngine::default();
        media
            .register_codec(
                RTCRtpCodecParameters {
                    capability: RTCRtpCodecCapability {
                        mime_type: MIME_TYPE_H264.to_owned(),
                        clock_rate: 90_000,
                        channels: 0,
                        sdp_fmtp_line: H264_FMTP.to_owned(),
                        rtcp_feedback: vec![],
                    },
                    payload_type: 102,
                    ..Default::default()
                },
                RTPCodecType::Video,
            )
            .map_err(rtc)?;
        let registry = register_default_interceptors(Registry::new(), &mut media).map_err(rtc)?;
        let mut engine = SettingEngine::default();
        engine.set_ice_multicast_dns_mode(MulticastDnsMode::Disabled);
        engine.set_network_types(vec![NetworkType::Udp4]);
        if config.loopback_only {
            engine.set_include_loopback_candidate(true);
            engine.set_ip_filter(Box::new(|ip| ip.is_loopback()));
        }
        let api = APIBuilder::new()
            .with_media_engine(media)
            .with_interceptor_registry(registry)
            .with_setting_engine(engine)
            .build();
        let rtc_config = RTCConfiguration {
            ice_servers: config
                .ice_servers
                .iter()
                .map(|s| RTCIceServer {
                    urls: s.urls.clone(),
                    username: s.username.clone().unwrap_or_default(),
                    credential: s.credential.clone().unwrap_or_default(),
                })
                .collect(),
            ice_transport_policy: if config.relay_only {
                RTCIceTransportPolicy::Relay
            } else {
                RTCIceTransportPolicy::All
            },
            ..Default::default()
        };
        let connection = Arc::new(api.new_peer_connection(rtc_config).await.map_err(rtc)?);

        connection
            .add_transceiver_from_kind(
                RTPCodecType::Video,
                Some(RTCRtpTransceiverInit {
                    direction: RTCRtpTransceiverDirection::Recvonly,
                    send_encodings: vec![],
                }),
            )
            .await
            .map_err(rtc)?;

        let (frame_tx, frames) = mpsc::channel(256);
        connection.on_track(Box::new(move |track, _, _| {
            let frame_tx = frame_tx.clone();
            Box::pin(async move {
                tokio::spawn(async move {
                    let Ok(mut decoder) = H264Decoder::new() else {
                        return;
                    };
                    let mut assembler = AccessUnits::default();
                    while let Ok((packet, _)) = track.read_rtp().await {
                        let Some((access_unit, rtp_timestamp)) = assembler.push(&packet) else {
                            continue;
                        };
                        match decoder.decode(&access_unit) {
                            Ok(Some(image)) => {
                                let frame = ReceivedFrame {
                                    image,
                                    rtp_timestamp,
                                    received_at: Instant::now(),
                                };
                                if frame_tx.try_send(frame).is_err() && frame_tx.is_closed() {
                                    return;
                                }
                            }
                            Ok(None) => {}
                            Err(e) => tracing::debug!("viewer: {e}"),
                        }
                    }
                });
            })
        }));

        let (prediction_tx, predictions) = mpsc::channel(1024);
        let channel = connection
            .create_data_channel("predictions", None)
            .await
            .map_err(rtc)?;
        channel.on_message(Box::new(move |message| {
            let prediction_tx = prediction_tx.clone();
            Box::pin(async move {
                if let Ok(json) = String::from_utf8(message.data.to_vec()) {
                    let _ = prediction_tx.try_send(ReceivedPrediction {
                        json,
                        received_at: Instant::now(),
                    });
                }
            })
        }));

        let (state_tx, state) = watch::channel(RTCPeerConnectionState::New);
        connection.on_peer_connection_state_change(Box::new(move |s| {
            let _ = state_tx.send(s);
            Box::pin(async {})
        }));

        let offer = connection.create_offer(None).await.map_err(rtc)?;
        let mut gathered = connection.gathering_complete_promise().await;
        connection.set_local_description(offer).await.map_err(rtc)?;
        let _ = tokio::time::timeout(Duration::from_secs(5), gathered.recv()).await;
        let offer = connection
            .local_description()
            .await
            .ok_or_else(|| rtc("no local description"))?;
        let answer = signal(offer.sdp).await.map_err(ViewerError::Signalling)?;
        connection
            .set_remote_description(RTCSessionDescription::answer(answer).map_err(rtc)?)
            .await
            .map_err(rtc)?;
        Ok(Self {
            connection,
            frames,
            predictions,
            state,
        })
    }

    pub fn state(&self) -> RTCPeerConnectionState {
        *self.state.borrow()
    }

    /// Waits until the connection reaches `wanted` (or fails), at most `limit`.
    pub async fn wait_for(&mut self, wanted: RTCPeerConnectionState, limit: Duration) -> bool {
        let reached = async {
            loop {
                let now = *self.state.borrow_and_update();
                if now == wanted {
                    return true;
                }
                if now == RTCPeerConnectionState::Failed && wanted != now {
                    return false;
                }
                if self.state.changed().await.is_err() {
                    return false;
                }
            }
        };
        tokio::time::timeout(limit, reached).await.unwrap_or(false)
    }

    /// The next decoded frame, at most `limit` from now.
    pub async fn next_frame(&mut self, limit: Duration) -> Option<ReceivedFrame> {
        tokio::time::timeout(limit, self.frames.recv())
            .await
            .ok()
            .flatten()
    }

    /// The next prediction message, at most `limit` from now.
    pub async fn next_prediction(&mut self, limit: Duration) -> Option<ReceivedPrediction> {
        tokio::time::timeout(limit, self.predictions.recv())
            .await
            .ok()
            .flatten()
    }

    /// Throws away whatever frames and predictions have queued up.
    pub fn drain(&mut self) {
        while self.frames.try_recv().is_ok() {}
        while self.predictions.try_recv().is_ok() {}
    }

    pub async fn close(self) {
        let _ = self.connection.close().await;
    }
}

/// Reassembles H.264 access units from RTP packets, completing one at the packet that carries
/// the marker bit, as browsers do, instead of waiting for the next picture's first packet. A
/// gap in sequence numbers drops the picture being assembled.
#[derive(Default)]
struct AccessUnits {
    depacketizer: H264Packet,
    buffer: Vec<u8>,
    next_sequence: Option<u16>,
    broken: bool,
}

impl AccessUnits {
    fn push(&mut self, packet: &webrtc::rtp::packet::Packet) -> Option<(Vec<u8>, u32)> {
        let sequence = packet.header.sequence_number;
        if self
            .next_sequence
            .is_some_and(|expected| expected != sequence)
        {
            self.broken = true;
        }
        self.next_sequence = Some(sequence.wrapping_add(1));
        match self.depacketizer.depacketize(&packet.payload) {
            Ok(nalus) => self.buffer.extend_from_slice(&nalus),
            Err(_) => self.broken = true,
        }
        if !packet.header.marker {
            return None;
        }
        let unit = std::mem::take(&mut self.buffer);
        let broken = std::mem::replace(&mut self.broken, false);
        (!broken && !unit.is_empty()).then_some((unit, packet.header.timestamp))
    }
}
