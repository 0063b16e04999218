//! H.264 decoding shared by the video-file and RTSP sources: OpenH264 (built from its bundled
//! source) turns Annex B NAL units into YUV pictures, which are converted to RGB here.
//! MP4 stores length-prefixed NAL units ("AVC" format), so this module also rewrites those into
//! Annex B. It does no demuxing and no pacing.

use openh264::OpenH264API;
use openh264::decoder::{Decoder, DecoderConfig, Flush};
use openh264::formats::YUVSource;
use visprompt_runtime::RgbImage;

use crate::decode::MAX_PIXELS;
use crate::yuv::i420_to_rgb;

const START_CODE: [u8; 4] = [0, 0, 0, 1];

/// The largest picture accepted, a side (OpenH264 itself stops at level 5.2, 4096x2304 or so).
const MAX_SIDE: usize = 8192;

/// What one call of the decoder gave.
pub(crate) enum Output {
    /// No picture is complete yet (more data needed, or one is held back for reordering).
    Nothing,
    /// A picture came out but was not converted, because the caller will skip it.
    Skipped,
    Picture(RgbImage),
}

/// An OpenH264 decoder that returns RGB frames, in display order.
///
/// It does not flush after each access unit: with B-frames, flushing hands out pictures before
/// the ones they reference are complete and the decoder then fails; so a picture may come out a
/// few access units late, and [`H264Decoder::drain`] returns the last ones at the end of a stream.
pub(crate) struct H264Decoder {
    inner: Decoder,
}

fn convert(yuv: &impl YUVSource) -> Result<RgbImage, String> {
    let (width, height) = yuv.dimensions();
    // The same total bound as still images: the detector sizes its buffers by the frame.
    let too_many = (width as u64) * (height as u64) > MAX_PIXELS;
    if width == 0 || height == 0 || width > MAX_SIDE || height > MAX_SIDE || too_many {
        return Err(format!("the decoder returned a {width}x{height} picture"));
    }
    Ok(i420_to_rgb(
        (yuv.y(), yuv.u(), yuv.v()),
        yuv.strides(),
        width as u32,
        height as u32,
    ))
}

impl H264Decoder {
    pub(crate) fn new() -> Result<Self, String> {
        let config = DecoderConfig::new().flush_after_decode(Flush::NoFlush);
        Decoder::with_api_config(OpenH264API::from_source(), config)
            .map(|inner| Self { inner })
            .map_err(|e| format!("the H.264 decoder did not start: {e}"))
    }

    /// Feeds Annex B data (parameter sets and/or one access unit). A picture that comes out is
    /// converted to RGB only when `wanted`.
    pub(crate) fn decode(&mut self, annex_b: &[u8], wanted: bool) -> Result<Output, String> {
        match self.inner.decode(annex_b).map_err(|e| e.to_string())? {
            None => Ok(Output::Nothing),
            Some(_) if !wanted => Ok(Output::Skipped),
            Some(yuv) => convert(&yuv).map(Output::Picture),
        }
    }

    /// The pictures still held back, at the end of a stream.
    pub(crate) fn drain(&mut self) -> Result<Vec<RgbImage>, String> {
        self.inner
            .flush_remaining()
            .map_err(|e| e.to_string())?
            .iter()
            .map(convert)
            .collect()
    }
}

/// Appends the NAL units of `data`, each prefixed by a big-endian length of `length_size` bytes,
/// to `out` as Annex B (start code before each unit).
pub(crate) fn avc_to_annex_b(
    mut data: &[u8],
    length_size: usize,
    out: &mut Vec<u8>,
) -> Result<(), String> {
    if !(1..=4).contains(&length_size) {
        return Err(format!("NAL length size {length_size} is not 1 to 4"));
    }
    while !data.is_empty() {
        if data.len() < length_size {
            return Err("a NAL length is cut short".into());
        }
        let len = data[..length_size]
            .iter()
            .fold(0usize, |acc, &b| (acc << 8) | usize::from(b));
        let rest = &data[length_size..];
        if len > rest.len() {
            return Err(format!(
                "a NAL unit claims {len} bytes, {} remain",
                rest.len()
            ));
        }
        out.extend_from_slice(&START_CODE);
        out.extend_from_slice(&rest[..len]);
        data = &rest[len..];
    }
    Ok(())
}

/// Appends parameter sets (bare NAL units) to `out` as Annex B.
pub(crate) fn parameter_sets_to_annex_b<'a>(
    sets: impl IntoIterator<Item = &'a [u8]>,
    out: &mut Vec<u8>,
) {
    for set in sets {
        out.extend_from_slice(&START_CODE);
        out.extend_from_slice(set);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn length_prefixed_units_become_start_code_prefixed() {
        let mut out = Vec::new();
        avc_to_annex_b(&[0, 0, 0, 2, 0x65, 1, 0, 0, 0, 1, 0x41], 4, &mut out).unwrap();
        assert_eq!(out, [0, 0, 0, 1, 0x65, 1, 0, 0, 0, 1, 0x41]);
        let mut out = Vec::new();
        avc_to_annex_b(&[0, 1, 9], 2, &mut out).unwrap();
        assert_eq!(out, [0, 0, 0, 1, 9]);
    }

    #[test]
    fn a_unit_longer_than_its_sample_is_refused() {
        let mut out = Vec::new();
        assert!(avc_to_annex_b(&[0, 0, 0, 9, 0x65], 4, &mut out).is_err());
        assert!(avc_to_annex_b(&[0, 0], 4, &mut out).is_err());
        assert!(avc_to_annex_b(&[0], 5, &mut out).is_err());
    }
}
