//! H.264 for the live video: an OpenH264 encoder configured for what every browser decodes
//! (constrained baseline, no B-frames, a key frame at least every second and on demand for a
//! viewer that joins), and the matching decoder that our own viewer peer uses.
//!
//! Frames come in as RGB; the encoder converts them to I420 (BT.601 limited range, the same matrix
//! the sources use when decoding) and crops odd sizes to even, which 4:2:0 needs.

use std::time::Duration;

use openh264::OpenH264API;
use openh264::decoder::{Decoder, DecoderConfig};
use openh264::encoder::{
    BitRate, Complexity, Encoder, EncoderConfig, FrameRate, FrameType, IntraFramePeriod, Profile,
    RateControlMode, UsageType,
};
use openh264::formats::{YUVSlices, YUVSource};
use visprompt_runtime::RgbImage;

/// OpenH264 encodes up to level 5.2; larger frames are halved until they fit.
const MAX_LONG_SIDE: u32 = 3840;
const MAX_SHORT_SIDE: u32 = 2160;

#[derive(Debug, thiserror::Error)]
pub enum CodecError {
    #[error("H.264 encoder: {0}")]
    Encode(String),
    #[error("H.264 decoder: {0}")]
    Decode(String),
}

/// One encoded picture: Annex B NAL units (empty when the rate control skipped the frame).
#[derive(Clone, Debug)]
pub struct EncodedFrame {
    pub data: Vec<u8>,
    pub key_frame: bool,
    pub width: u32,
    pub height: u32,
}

/// Encodes RGB frames into a constrained-baseline H.264 stream.
pub struct H264Encoder {
    encoder: Option<Encoder>,
    size: (u32, u32),
    frame_rate: f32,
    frames_since_key: u32,
    want_key: bool,
    yuv: Vec<u8>,
}

impl H264Encoder {
    /// An encoder for a stream of about `frame_rate` frames per second; it makes a key frame at
    /// least once a second.
    pub fn new(frame_rate: f32) -> Self {
        Self {
            encoder: None,
            size: (0, 0),
            frame_rate: frame_rate.clamp(1.0, 120.0),
            frames_since_key: 0,
            want_key: true,
            yuv: Vec::new(),
        }
    }

    /// Makes the next frame a key frame (a viewer joined or lost packets).
    pub fn request_key_frame(&mut self) {
        self.want_key = true;
    }

    fn configure(&mut self, width: u32, height: u32) -> Result<(), CodecError> {
        // About 0.1 bit per pixel per frame: sharp edges on overlays without flooding the link.
        let bps = (f64::from(width) * f64::from(height) * f64::from(self.frame_rate) * 0.1)
            .clamp(300_000.0, 12_000_000.0) as u32;
        let config = EncoderConfig::new()
            .profile(Profile::Baseline)
            .usage_type(UsageType::CameraVideoRealTime)
            .rate_control_mode(RateControlMode::Bitrate)
            .bitrate(BitRate::from_bps(bps))
            .max_frame_rate(FrameRate::from_hz(self.frame_rate))
            // OpenH264 holds the bitrate only if it may skip frames; a skipped frame yields no
            // data and the next one carries on.
            .skip_frames(true)
            .complexity(Complexity::Low)
            .intra_frame_period(IntraFramePeriod::from_num_frames(
                self.frame_rate.round() as u32
            ))
            .num_threads(1);
        let encoder = Encoder::with_api_config(OpenH264API::from_source(), config)
            .map_err(|e| CodecError::Encode(e.to_string()))?;
        self.encoder = Some(encoder);
        self.size = (width, height);
        self.want_key = true;
        Ok(())
    }

    /// Encodes one frame. A change of size starts a new sequence with a key frame.
    pub fn encode(&mut self, image: &RgbImage) -> Result<EncodedFrame, CodecError> {
        let fitted = fit_for_encoder(image);
        let image = fitted.as_ref().unwrap_or(image);
        let width = image.width() & !1;
        let height = image.height() & !1;
        if width < 2 || height < 2 {
            return Err(CodecError::Encode(format!(
                "a {}x{} frame is too small to encode",
                image.width(),
                image.height()
            )));
        }
        if self.encoder.is_none() || self.size != (width, height) {
            self.configure(width, height)?;
        }
        rgb_to_i420(image, width, height, &mut self.yuv);
        let (w, h) = (width as usize, height as usize);
        let (y, uv) = self.yuv.split_at(w * h);
        let (u, v) = uv.split_at(w * h / 4);
        let source = YUVSlices::new((y, u, v), (w, h), (w, w / 2, w / 2));
        let force_key =
            self.want_key || self.frames_since_key + 1 >= self.frame_rate.round() as u32;
        let encoder = self.encoder.as_mut().expect("configured above");
        if force_key {
            encoder.force_intra_frame();
        }
        let bitstream = encoder
            .encode(&source)
            .map_err(|e| CodecError::Encode(e.to_string()))?;
        let key_frame = matches!(bitstream.frame_type(), FrameType::IDR | FrameType::I);
        let data = bitstream.to_vec();
        if key_frame {
            self.frames_since_key = 0;
            self.want_key = false;
        } else {
            self.frames_since_key += 1;
        }
        Ok(EncodedFrame {
            data,
            key_frame,
            width,
            height,
        })
    }
}

/// Frames beyond the encoder's largest size, halved (2x2 box filter) until they fit; `None` for
/// frames that fit as they are.
fn fit_for_encoder(image: &RgbImage) -> Option<RgbImage> {
    let fits = |w: u32, h: u32| w.max(h) <= MAX_LONG_SIDE && w.min(h) <= MAX_SHORT_SIDE;
    if fits(image.width(), image.height()) {
        return None;
    }
    let mut current = halve(image);
    while !fits(current.width(), current.height()) {
        current = halve(&current);
    }
    Some(current)
}

fn halve(image: &RgbImage) -> RgbImage {
    let (w, h) = (image.width() / 2, image.height() / 2);
    let src = image.as_raw();
    let stride = image.width() as usize * 3;
    let mut out = vec![0u8; w as usize * h as usize * 3];
    for y in 0..h as usize {
        for x in 0..w as usize {
            for c in 0..3 {
                let at = |dx: usize, dy: usize| {
                    u16::from(src[(2 * y + dy) * stride + (2 * x + dx) * 3 + c])
                };
                out[(y * w as usize + x) * 3 + c] =
                    ((at(0, 0) + at(1, 0) + at(0, 1) + at(1, 1) + 2) / 4) as u8;
            }
        }
    }
    RgbImage::from_raw(w, h, out).expect("sized above")
}

/// RGB to planar I420, BT.601 limited range; chroma is the mean of each 2x2 block.
fn rgb_to_i420(image: &RgbImage, width: u32, height: u32, out: &mut Vec<u8>) {
    let (w, h) = (width as usize, height as usize);
    let stride = image.width() as usize * 3;
    let src = image.as_raw();
    out.clear();
    out.resize(w * h * 3 / 2, 0);
    let (y_plane, uv) = out.split_at_mut(w * h);
    let (u_plane, v_plane) = uv.split_at_mut(w * h / 4);
    for row in 0..h {
        let line = &src[row * stride..row * stride + w * 3];
        let dst = &mut y_plane[row * w..(row + 1) * w];
        for (px, y) in line.chunks_exact(3).zip(dst.iter_mut()) {
            let (r, g, b) = (i32::from(px[0]), i32::from(px[1]), i32::from(px[2]));
            *y = (((66 * r + 129 * g + 25 * b + 128) >> 8) + 16) as u8;
        }
    }
    for row in 0..h / 2 {
        for col in 0..w / 2 {
            let (mut r, mut g, mut b) = (0i32, 0i32, 0i32);
            for dy in 0..2 {
                let i = (2 * row + dy) * stride + 2 * col * 3;
                r += i32::from(src[i]) + i32::from(src[i + 3]);
                g += i32::from(src[i + 1]) + i32::from(src[i + 4]);
                b += i32::from(src[i + 2]) + i32::from(src[i + 5]);
            }
            let (r, g, b) = ((r + 2) >> 2, (g + 2) >> 2, (b + 2) >> 2);
            u_plane[row * (w / 2) + col] = (((-38 * r - 74 * g + 112 * b + 128) >> 8) + 128) as u8;
            v_plane[row * (w / 2) + col] = (((112 * r - 94 * g - 18 * b + 128) >> 8) + 128) as u8;
        }
    }
}

/// Decodes an H.264 stream (Annex B access units) into RGB frames.
pub struct H264Decoder {
    inner: Decoder,
}

impl H264Decoder {
    pub fn new() -> Result<Self, CodecError> {
        let inner = Decoder::with_api_config(OpenH264API::from_source(), DecoderConfig::new())
            .map_err(|e| CodecError::Decode(e.to_string()))?;
        Ok(Self { inner })
    }

    /// Decodes one access unit; `None` when no picture is complete yet.
    pub fn decode(&mut self, access_unit: &[u8]) -> Result<Option<RgbImage>, CodecError> {
        let Some(yuv) = self
            .inner
            .decode(access_unit)
            .map_err(|e| CodecError::Decode(e.to_string()))?
        else {
            return Ok(None);
        };
        let (w, h) = yuv.dimensions();
        let mut rgb = vec![0u8; w * h * 3];
        yuv.write_rgb8(&mut rgb);
        Ok(Some(
            RgbImage::from_raw(w as u32, h as u32, rgb)
                .map_err(|e| CodecError::Decode(e.to_string()))?,
        ))
    }
}

/// How long one frame lasts at `frame_rate`, for sample durations.
pub fn frame_duration(frame_rate: f32) -> Duration {
    Duration::from_secs_f64(1.0 / f64::from(frame_rate.clamp(1.0, 120.0)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gradient(width: u32, height: u32, shift: u32) -> RgbImage {
        let mut data = Vec::with_capacity((width * height * 3) as usize);
        for y in 0..height {
            for x in 0..width {
                data.extend_from_slice(&[
                    ((x + shift) % 256) as u8,
                    (y % 256) as u8,
                    (((x + y) / 2) % 256) as u8,
                ]);
            }
        }
        RgbImage::from_raw(width, height, data).unwrap()
    }

    fn mean_abs_diff(a: &RgbImage, b: &RgbImage) -> f64 {
        let sum: u64 = a
            .as_raw()
            .iter()
            .zip(b.as_raw())
            .map(|(x, y)| u64::from(x.abs_diff(*y)))
            .sum();
        sum as f64 / a.as_raw().len() as f64
    }

    #[test]
    fn a_stream_starts_with_a_key_frame_and_decodes_back_to_the_picture() {
        let mut encoder = H264Encoder::new(30.0);
        let mut decoder = H264Decoder::new().unwrap();
        let mut decoded = Vec::new();
        for i in 0..5 {
            let frame = gradient(160, 120, i * 4);
            let encoded = encoder.encode(&frame).unwrap();
            assert_eq!(encoded.key_frame, i == 0, "frame {i}");
            if let Some(picture) = decoder.decode(&encoded.data).unwrap() {
                decoded.push((frame, picture));
            }
        }
        assert!(!decoded.is_empty());
        for (frame, picture) in &decoded {
            assert_eq!((picture.width(), picture.height()), (160, 120));
            let diff = mean_abs_diff(frame, picture);
            assert!(diff < 6.0, "mean difference {diff}");
        }
    }

    #[test]
    fn key_frames_come_on_request_and_at_least_once_a_second() {
        let mut encoder = H264Encoder::new(10.0);
        let keys: Vec<bool> = (0..25)
            .map(|i| {
                if i == 13 {
                    encoder.request_key_frame();
                }
                encoder.encode(&gradient(64, 48, i)).unwrap().key_frame
            })
            .collect();
        let key_at: Vec<usize> = keys
            .iter()
            .enumerate()
            .filter_map(|(i, k)| k.then_some(i))
            .collect();
        assert!(key_at.contains(&0) && key_at.contains(&13), "{key_at:?}");
        for pair in key_at.windows(2) {
            assert!(pair[1] - pair[0] <= 10, "{key_at:?}");
        }
    }

    #[test]
    fn odd_sizes_are_cropped_to_even_and_size_changes_restart_with_a_key_frame() {
        let mut encoder = H264Encoder::new(30.0);
        let first = encoder.encode(&gradient(161, 121, 0)).unwrap();
        assert_eq!((first.width, first.height), (160, 120));
        let same = encoder.encode(&gradient(161, 121, 1)).unwrap();
        assert!(!same.key_frame);
        let resized = encoder.encode(&gradient(320, 240, 0)).unwrap();
        assert!(resized.key_frame);
        let mut decoder = H264Decoder::new().unwrap();
        let picture = decoder.decode(&resized.data).unwrap().unwrap();
        assert_eq!((picture.width(), picture.height()), (320, 240));
    }

    #[test]
    fn frames_beyond_the_encoder_limit_are_halved() {
        let big = RgbImage::new(5000, 100);
        let fitted = fit_for_encoder(&big).unwrap();
        assert_eq!((fitted.width(), fitted.height()), (2500, 50));
    }
}
