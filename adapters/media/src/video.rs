//! The video-file source: H.264 in MP4, demuxed sample by sample (the file is never loaded whole)
//! and decoded in-process by OpenH264, paced at the file's own frame rate, looping or ending at
//! the last frame. Positions are sample numbers in decode order, which is display order for
//! streams without B-frames; a seek restarts decoding at the nearest preceding key frame.
//! Other codecs and containers are refused by name; audio tracks are ignored.

use std::collections::VecDeque;
use std::fs::File;
use std::io::BufReader;
use std::path::{Path, PathBuf};
use std::time::Duration;

use async_trait::async_trait;
use mp4::{MediaType, Mp4Reader, TrackType};
use tokio::time::Instant;
use visprompt_runtime::{FrameSource, Navigation, RgbImage, SourceError, Thumbnail};

use crate::folder::shrink;
use crate::h264::{H264Decoder, Output, avc_to_annex_b, parameter_sets_to_annex_b};

/// The largest compressed frame accepted; the sample table of a hostile file could otherwise make
/// the demuxer allocate gigabytes for one sample.
const MAX_SAMPLE_BYTES: u32 = 64 << 20;

/// Damaged frames skipped in a row before `next_frame` reports the damage.
const MAX_SKIPPED: usize = 100;

/// Frame duration used when the file gives none (or an absurd one).
const FALLBACK_FRAME: Duration = Duration::from_millis(40);

/// Options of a video-file source.
#[derive(Clone, Copy, Debug)]
pub struct VideoOptions {
    /// Start again at the first frame after the last one (otherwise the stream ends).
    pub looping: bool,
}

impl Default for VideoOptions {
    fn default() -> Self {
        Self { looping: true }
    }
}

/// The demuxer and decoder. It moves to a blocking thread for each decode and back.
///
/// Pictures come out of the decoder in display order, possibly a few samples after the sample
/// that completes them (B-frames). A restart at key frame `k` yields display positions `k`,
/// `k + 1`, ...: true for closed groups of pictures, which is what encoders write by default.
struct Decoding {
    path: PathBuf,
    reader: Mp4Reader<BufReader<File>>,
    track_id: u32,
    len: usize,
    length_size: usize,
    /// SPS and PPS in Annex B, fed before the first sample after every restart.
    parameter_sets: Vec<u8>,
    /// Sample indices (from 0) of the key frames, ascending.
    key_frames: Vec<usize>,
    decoder: H264Decoder,
    /// The next sample to feed, or `None` when the decoder must restart before going on.
    next_sample: Option<usize>,
    /// The display position of the next picture to come out.
    next_output: usize,
    /// Pictures drained at the end of the stream, not yet handed out.
    drained: VecDeque<RgbImage>,
}

impl Decoding {
    fn corrupt(&self, index: usize, why: impl std::fmt::Display) -> SourceError {
        SourceError::Corrupt(format!("{}: frame {index}: {why}", self.path.display()))
    }

    /// The key frame at or before `index`.
    fn key_frame_for(&self, index: usize) -> usize {
        let slot = self.key_frames.partition_point(|&k| k <= index);
        slot.checked_sub(1).map_or(0, |s| self.key_frames[s])
    }

    /// The picture at display position `index`. Blocking.
    fn frame(&mut self, index: usize) -> Result<RgbImage, SourceError> {
        let key = self.key_frame_for(index);
        // Going on is right when `index` lies ahead in the same run of pictures and no key frame
        // closer to it would be a shorter way there.
        let go_on =
            self.next_sample.is_some() && self.next_output <= index && key <= self.next_output;
        if !go_on {
            // A fresh decoder, so no reference picture of the old position leaks into the new.
            self.decoder = H264Decoder::new().map_err(SourceError::Unavailable)?;
            self.next_sample = Some(key);
            self.next_output = key;
            self.drained.clear();
        }
        let result = self.decode_until(index);
        if result.is_err() {
            self.next_sample = None;
        }
        result
    }

    fn decode_until(&mut self, index: usize) -> Result<RgbImage, SourceError> {
        loop {
            if let Some(picture) = self.drained.pop_front() {
                self.next_output += 1;
                if self.next_output - 1 == index {
                    return Ok(picture);
                }
                continue;
            }
            let Some(sample) = self.next_sample.filter(|&s| s < self.len) else {
                let rest = self.decoder.drain().map_err(|e| self.corrupt(index, e))?;
                if rest.is_empty() {
                    return Err(self.corrupt(index, "the decoder returned no picture"));
                }
                self.drained.extend(rest);
                continue;
            };
            let wanted = self.next_output == index;
            let output = self.feed(sample, wanted)?;
            self.next_sample = Some(sample + 1);
            match output {
                Output::Nothing => {}
                Output::Skipped => self.next_output += 1,
                Output::Picture(picture) => {
                    self.next_output += 1;
                    return Ok(picture);
                }
            }
        }
    }

    fn feed(&mut self, index: usize, wanted: bool) -> Result<Output, SourceError> {
        let sample = self
            .reader
            .read_sample(self.track_id, index as u32 + 1)
            .map_err(|e| self.corrupt(index, e))?
            .ok_or_else(|| self.corrupt(index, "the sample is missing"))?;
        let mut annex_b = Vec::with_capacity(sample.bytes.len() + 64);
        if self.key_frames.binary_search(&index).is_ok() {
            // Repeating the parameter sets at every key frame costs a few bytes and makes every
            // restart point self-contained.
            annex_b.extend_from_slice(&self.parameter_sets);
        }
        avc_to_annex_b(&sample.bytes, self.length_size, &mut annex_b)
            .map_err(|e| self.corrupt(index, e))?;
        self.decoder
            .decode(&annex_b, wanted)
            .map_err(|e| self.corrupt(index, e))
    }
}

/// An H.264 MP4 file played at its frame rate.
pub struct VideoFileSource {
    /// `None` only while a decode runs on a blocking thread, or after that thread panicked.
    decoding: Option<Box<Decoding>>,
    path: PathBuf,
    len: usize,
    position: usize,
    options: VideoOptions,
    /// How long each frame is shown: the track's duration over its frame count.
    frame_duration: Duration,
    /// When the next frame is due; `None` before the first frame and after a seek.
    due: Option<Instant>,
}

impl std::fmt::Debug for VideoFileSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VideoFileSource")
            .field("path", &self.path)
            .field("len", &self.len)
            .field("position", &self.position)
            .finish_non_exhaustive()
    }
}

impl VideoFileSource {
    /// Opens `path` and reads its sample tables (not its frames). Blocking.
    ///
    /// Returns `Unavailable` naming the file when it cannot be read or is not an MP4 with frames,
    /// and `Unsupported` when its video is not H.264.
    pub fn open(path: &Path, options: VideoOptions) -> Result<Self, SourceError> {
        let shown = path.display();
        let unavailable = |why: &dyn std::fmt::Display| {
            SourceError::Unavailable(format!("cannot open video {shown}: {why}"))
        };
        let file = File::open(path).map_err(|e| unavailable(&e))?;
        let size = file.metadata().map_err(|e| unavailable(&e))?.len();
        let reader = Mp4Reader::read_header(BufReader::new(file), size)
            .map_err(|e| unavailable(&format!("not a readable MP4 file ({e})")))?;

        let mut videos: Vec<_> = reader
            .tracks()
            .values()
            .filter(|t| matches!(t.track_type(), Ok(TrackType::Video)))
            .collect();
        videos.sort_by_key(|t| t.track_id());
        let Some(track) = videos.first() else {
            return Err(unavailable(&"the file has no video track"));
        };
        if !matches!(track.media_type(), Ok(MediaType::H264)) {
            let codec = track
                .box_type()
                .map_or_else(|_| "an unknown codec".to_string(), |b| b.to_string());
            return Err(SourceError::Unsupported(format!(
                "video {shown} is {codec}; only H.264 can be decoded"
            )));
        }
        let stbl = &track.trak.mdia.minf.stbl;
        let avc1 = stbl
            .stsd
            .avc1
            .as_ref()
            .ok_or_else(|| unavailable(&"the H.264 track has no avc1 description"))?;
        let length_size = usize::from(avc1.avcc.length_size_minus_one & 0b11) + 1;
        let mut parameter_sets = Vec::new();
        parameter_sets_to_annex_b(
            avc1.avcc
                .sequence_parameter_sets
                .iter()
                .chain(&avc1.avcc.picture_parameter_sets)
                .map(|nal| nal.bytes.as_slice()),
            &mut parameter_sets,
        );

        let len = track.sample_count() as usize;
        if len == 0 {
            return Err(unavailable(&"the video track has no frames"));
        }
        let largest = stbl
            .stsz
            .sample_sizes
            .iter()
            .copied()
            .max()
            .unwrap_or(stbl.stsz.sample_size);
        if largest > MAX_SAMPLE_BYTES {
            return Err(unavailable(&format!(
                "a frame claims {largest} bytes, more than the {MAX_SAMPLE_BYTES} accepted"
            )));
        }
        // Without a sync-sample table every sample is a key frame (ISO 14496-12).
        let key_frames = match &stbl.stss {
            Some(stss) => stss
                .entries
                .iter()
                .filter_map(|&n| (n as usize).checked_sub(1))
                .filter(|&i| i < len)
                .collect(),
            None => (0..len).collect(),
        };
        let frame_duration = Some(track.duration() / len as u32)
            .filter(|d| !d.is_zero() && *d <= Duration::from_secs(10))
            .unwrap_or(FALLBACK_FRAME);
        let track_id = track.track_id();
        let decoding = Decoding {
            path: path.to_path_buf(),
            reader,
            track_id,
            len,
            length_size,
            parameter_sets,
            key_frames,
            decoder: H264Decoder::new().map_err(SourceError::Unavailable)?,
            next_sample: None,
            next_output: 0,
            drained: VecDeque::new(),
        };
        Ok(Self {
            decoding: Some(Box::new(decoding)),
            path: path.to_path_buf(),
            len,
            position: 0,
            options,
            frame_duration,
            due: None,
        })
    }

    fn decoding(&mut self) -> Result<&mut Decoding, SourceError> {
        self.decoding.as_deref_mut().ok_or_else(|| {
            SourceError::Unavailable(format!(
                "the decoder of {} stopped; reopen the source",
                self.path.display()
            ))
        })
    }
}

#[async_trait]
impl FrameSource for VideoFileSource {
    async fn next_frame(&mut self) -> Result<Option<RgbImage>, SourceError> {
        let mut skipped = 0;
        let picture = loop {
            if self.position >= self.len {
                if !self.options.looping {
                    return Ok(None);
                }
                self.position = 0;
            }
            let index = self.position;
            let mut decoding = self.decoding.take().ok_or_else(|| {
                SourceError::Unavailable(format!(
                    "the decoder of {} stopped; reopen the source",
                    self.path.display()
                ))
            })?;
            let (decoding, result) = tokio::task::spawn_blocking(move || {
                let result = decoding.frame(index);
                (decoding, result)
            })
            .await
            .map_err(|e| SourceError::Unavailable(format!("the video decoder stopped: {e}")))?;
            self.decoding = Some(decoding);
            self.position = index + 1;
            match result {
                Ok(picture) => break picture,
                // A damaged frame is skipped: an error here would make the pipeline reopen the
                // file and play it from the start, into the same damage. A run of them is
                // reported, so a file that is damaged throughout does not spin.
                Err(SourceError::Corrupt(error)) if skipped < MAX_SKIPPED => {
                    tracing::warn!(message = "Skipping a video frame that does not decode.", %error);
                    skipped += 1;
                }
                Err(e) => return Err(e),
            }
        };

        // Pace by the file's timing: wait until this frame is due, then set the next deadline.
        // After a stall (a slow consumer) the schedule restarts instead of bursting to catch up.
        let now = Instant::now();
        let due = self.due.filter(|d| *d >= now).unwrap_or(now);
        tokio::time::sleep_until(due).await;
        self.due = Some(due + self.frame_duration);
        Ok(Some(picture))
    }

    fn navigation(&mut self) -> Option<&mut dyn Navigation> {
        Some(self)
    }
}

impl Navigation for VideoFileSource {
    fn len(&self) -> usize {
        self.len
    }

    fn position(&self) -> usize {
        match self.position {
            p if p < self.len => p,
            // Past the last frame: a looping video shows the first next, one that ended its last.
            _ if self.options.looping => 0,
            _ => self.len - 1,
        }
    }

    fn seek(&mut self, index: usize) -> Result<(), SourceError> {
        if index >= self.len {
            return Err(SourceError::OutOfRange {
                index,
                len: self.len,
            });
        }
        self.position = index;
        self.due = None;
        Ok(())
    }

    fn thumbnails(
        &mut self,
        offset: usize,
        limit: usize,
        max_side: u32,
    ) -> Result<Vec<Thumbnail>, SourceError> {
        let end = offset.saturating_add(limit).min(self.len);
        let decoding = self.decoding()?;
        (offset..end)
            .map(|index| {
                let picture = decoding.frame(index)?;
                Ok(Thumbnail {
                    index,
                    image: shrink(&picture, max_side),
                })
            })
            .collect()
    }
}
