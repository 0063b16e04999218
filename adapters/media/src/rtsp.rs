//! The RTSP source: an H.264 camera stream received with `retina` (RTP interleaved over the RTSP
//! TCP connection) and decoded in-process by OpenH264.
//! It does not reconnect: when the stream drops or stalls it returns `Unavailable`, and the
//! pipeline opens a new source with back-off. Credentials in the URL are sent as RTSP
//! authentication and never appear in messages.

use std::time::Duration;

use async_trait::async_trait;
use futures::StreamExt;
use retina::client::{
    Credentials, Demuxed, PlayOptions, Session, SessionOptions, SetupOptions, Transport,
};
use retina::codec::{CodecItem, FrameFormat};
use url::Url;
use visprompt_runtime::{FrameSource, RgbImage, SourceError};

use crate::h264::{H264Decoder, Output};

/// How long connecting, describing and starting the stream may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// How long the stream may stay silent before it counts as dropped.
const FRAME_TIMEOUT: Duration = Duration::from_secs(5);

/// Damaged frames skipped in a row before `next_frame` reports the damage.
const MAX_SKIPPED: usize = 100;

/// A playing H.264 RTSP stream.
pub struct RtspSource {
    /// The URL without credentials, for messages.
    shown: String,
    stream: Demuxed,
    video_stream: usize,
    /// `None` only while a decode runs on a blocking thread, or after that thread panicked.
    decoder: Option<H264Decoder>,
    /// Whether a key frame has been decoded since the start or the last decoding error; frames
    /// before it reference pictures the decoder never saw, so they are skipped.
    synced: bool,
}

impl std::fmt::Debug for RtspSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RtspSource")
            .field("url", &self.shown)
            .finish_non_exhaustive()
    }
}

/// The URL as it may be shown: without user name and password.
fn without_credentials(url: &Url) -> Url {
    let mut shown = url.clone();
    // Setting these fails only for URLs that cannot have credentials, which have none to hide.
    let _ = shown.set_username("");
    let _ = shown.set_password(None);
    shown
}

/// Parses an RTSP URL this client can open. The raw text never goes into a message: it may hold
/// a password, and a URL that does not parse cannot be shown without it reliably.
fn parse_url(raw_url: &str) -> Result<Url, SourceError> {
    let url = Url::parse(raw_url)
        .map_err(|e| SourceError::Unsupported(format!("the RTSP URL is not valid: {e}")))?;
    match url.scheme() {
        "rtsp" => Ok(url),
        // retina speaks RTSP over plain TCP only.
        "rtsps" => Err(SourceError::Unsupported(format!(
            "RTSP over TLS (rtsps://) is not supported; use an rtsp:// URL for {}",
            without_credentials(&url)
        ))),
        other => Err(SourceError::Unsupported(format!(
            "the RTSP URL has scheme {other}://; only rtsp:// is supported"
        ))),
    }
}

impl RtspSource {
    /// Connects, asks for the first H.264 video stream and starts playing it.
    ///
    /// Returns `Unavailable` naming the URL (without credentials) when the server cannot be
    /// reached or refuses, and `Unsupported` when it offers no H.264 video or the URL cannot be
    /// opened by this client at all (not a valid URL, or a scheme other than `rtsp://`): those
    /// will not change by trying again.
    pub async fn open(raw_url: &str) -> Result<Self, SourceError> {
        let url = parse_url(raw_url)?;
        let shown = without_credentials(&url).to_string();
        let creds = (!url.username().is_empty()).then(|| Credentials {
            username: url.username().to_owned(),
            password: url.password().unwrap_or_default().to_owned(),
        });
        let unavailable =
            |e: &dyn std::fmt::Display| SourceError::Unavailable(format!("RTSP {shown}: {e}"));

        let start = async {
            let options = SessionOptions::default()
                .creds(creds)
                .user_agent(concat!("visprompt/", env!("CARGO_PKG_VERSION")).to_owned());
            let mut session = Session::describe(without_credentials(&url), options)
                .await
                .map_err(|e| unavailable(&e))?;
            let Some(video_stream) = session
                .streams()
                .iter()
                .position(|s| s.media() == "video" && s.encoding_name() == "h264")
            else {
                let offered = session
                    .streams()
                    .iter()
                    .map(|s| format!("{}/{}", s.media(), s.encoding_name()))
                    .collect::<Vec<_>>()
                    .join(", ");
                return Err(SourceError::Unsupported(format!(
                    "RTSP {shown} offers no H.264 video (it offers: {offered})"
                )));
            };
            let setup = SetupOptions::default()
                .transport(Transport::Tcp(Default::default()))
                .frame_format(FrameFormat::SIMPLE);
            session
                .setup(video_stream, setup)
                .await
                .map_err(|e| unavailable(&e))?;
            let playing = session
                .play(PlayOptions::default())
                .await
                .map_err(|e| unavailable(&e))?;
            let stream = playing.demuxed().map_err(|e| unavailable(&e))?;
            Ok((stream, video_stream))
        };
        let (stream, video_stream) = tokio::time::timeout(CONNECT_TIMEOUT, start)
            .await
            .map_err(|_| unavailable(&format!("no answer within {CONNECT_TIMEOUT:?}")))??;
        Ok(Self {
            shown,
            stream,
            video_stream,
            decoder: Some(H264Decoder::new().map_err(SourceError::Unavailable)?),
            synced: false,
        })
    }

    fn unavailable(&self, why: impl std::fmt::Display) -> SourceError {
        SourceError::Unavailable(format!("RTSP {}: {why}", self.shown))
    }

    /// Decodes one access unit (Annex B) on a blocking thread.
    async fn decode(&mut self, data: Vec<u8>) -> Result<Output, SourceError> {
        let mut decoder = self
            .decoder
            .take()
            .ok_or_else(|| self.unavailable("the decoder stopped; reopen the source"))?;
        let (decoder, output) = tokio::task::spawn_blocking(move || {
            let output = decoder.decode(&data, true);
            (decoder, output)
        })
        .await
        .map_err(|e| self.unavailable(format!("the decoder stopped: {e}")))?;
        self.decoder = Some(decoder);
        output.map_err(|e| {
            self.synced = false;
            SourceError::Corrupt(format!("RTSP {}: a frame did not decode: {e}", self.shown))
        })
    }
}

#[async_trait]
impl FrameSource for RtspSource {
    async fn next_frame(&mut self) -> Result<Option<RgbImage>, SourceError> {
        let mut skipped = 0;
        loop {
            let item = match tokio::time::timeout(FRAME_TIMEOUT, self.stream.next()).await {
                Err(_) => return Err(self.unavailable(format!("no data for {FRAME_TIMEOUT:?}"))),
                Ok(None) => return Err(self.unavailable("the server ended the stream")),
                Ok(Some(Err(e))) => return Err(self.unavailable(e)),
                Ok(Some(Ok(item))) => item,
            };
            let CodecItem::VideoFrame(frame) = item else {
                continue;
            };
            if frame.stream_id() != self.video_stream {
                continue;
            }
            if !self.synced && !frame.is_random_access_point() {
                continue;
            }
            self.synced = true;
            match self.decode(frame.into_data()).await {
                Ok(Output::Picture(picture)) => return Ok(Some(picture)),
                Ok(Output::Nothing | Output::Skipped) => {}
                // Packet loss damages a frame now and then; reconnecting for each would lose far
                // more. Decoding resumes at the next key frame; a long run of damage is reported.
                Err(SourceError::Corrupt(error)) if skipped < MAX_SKIPPED => {
                    tracing::warn!(message = "Skipping an RTSP frame that does not decode.", %error);
                    skipped += 1;
                }
                Err(e) => return Err(e),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_are_left_out_of_shown_urls() {
        let url = Url::parse("rtsp://admin:secret@cam.local:554/live").unwrap();
        assert_eq!(
            without_credentials(&url).as_str(),
            "rtsp://cam.local:554/live"
        );
    }
}
