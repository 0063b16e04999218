//! The video-file source: H.264 in MP4, demuxed sample by sample (the file is never loaded whole)
//! and decoded in-process by OpenH264, paced at the file's own frame rate, looping or ending at
//! the last frame. Positions are sample numbers in decode order, which is display order for
//! streams without B-frames; a seek restarts decoding at the nearest preceding key frame.
//! Other codecs and containers are refused by name; audio tracks are ignored.

use std::collections::VecDeque;
use std::fs::File;
use std::io::{BufReader, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::time::Duration;

use async_trait::async_trait;
use mp4::{MediaType, Mp4Reader, Mp4Track, TrackType};
use tokio::time::Instant;
use visprompt_runtime::{FrameSource, Navigation, RgbImage, SourceError, Thumbnail};

use crate::decode::shrink;
use crate::h264::{H264Decoder, Output, avc_to_annex_b, parameter_sets_to_annex_b};

/// The largest compressed frame accepted; the sample table of a hostile file could otherwise make
/// the demuxer allocate gigabytes for one sample.
const MAX_SAMPLE_BYTES: u32 = 64 << 20;

/// Damaged groups of pictures skipped in a row before `next_frame` reports the damage. Each skip
/// jumps to the next key frame, so this counts runs of damage, not frames.
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
    /// Sample indices (from 0) of the key frames, ascending; `None` when every sample is one
    /// (a file without a sync-sample table), which needs no list as long as the file.
    key_frames: Option<Vec<usize>>,
    decoder: H264Decoder,
    /// The next sample to feed, or `None` when the decoder must restart before going on.
    next_sample: Option<usize>,
    /// The display position of the next picture to come out.
    next_output: usize,
    /// Pictures drained at the end of the stream, not yet handed out.
    drained: VecDeque<RgbImage>,
    /// The sample that failed in the last [`Decoding::frame`] call, if one did.
    damaged: Option<usize>,
}

impl Decoding {
    fn corrupt(&self, index: usize, why: impl std::fmt::Display) -> SourceError {
        SourceError::Corrupt(format!("{}: frame {index}: {why}", self.path.display()))
    }

    /// The key frame at or before `index`.
    fn key_frame_for(&self, index: usize) -> usize {
        let Some(keys) = &self.key_frames else {
            return index;
        };
        let slot = keys.partition_point(|&k| k <= index);
        slot.checked_sub(1).map_or(0, |s| keys[s])
    }

    fn is_key_frame(&self, index: usize) -> bool {
        self.key_frames
            .as_ref()
            .is_none_or(|keys| keys.binary_search(&index).is_ok())
    }

    /// Where to go on after [`Decoding::frame`] failed for `index`: the first key frame after
    /// both `index` and the sample that failed, or `len` when none follows. Every picture before
    /// it depends on the damaged one, and asking for them one by one would decode the group from
    /// its key frame into the same damage each time.
    fn resume_after(&self, index: usize) -> usize {
        let damaged = self.damaged.map_or(index, |d| d.max(index));
        match &self.key_frames {
            None => damaged + 1,
            Some(keys) => keys
                .get(keys.partition_point(|&k| k <= damaged))
                .copied()
                .unwrap_or(self.len),
        }
    }

    /// The picture at display position `index`. Blocking.
    fn frame(&mut self, index: usize) -> Result<RgbImage, SourceError> {
        self.damaged = None;
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
                // Whatever went wrong here concerns the end of the stream.
                let last = self.len - 1;
                let rest = self.decoder.drain().map_err(|e| {
                    self.damaged = Some(last);
                    self.corrupt(index, e)
                })?;
                if rest.is_empty() {
                    self.damaged = Some(last);
                    return Err(self.corrupt(index, "the decoder returned no picture"));
                }
                self.drained.extend(rest);
                continue;
            };
            let wanted = self.next_output == index;
            let output = match self.feed(sample, wanted) {
                Ok(output) => output,
                Err(e) => {
                    self.damaged = Some(sample);
                    return Err(e);
                }
            };
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
        let (reader, track_id) = (&mut self.reader, self.track_id);
        // The `mp4` crate unwraps and does unchecked arithmetic on table values while reading a
        // sample; `open` refuses the values known to trip it, and this catches any it missed, so
        // a hostile file costs one frame rather than the decoding thread.
        let read = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            reader.read_sample(track_id, index as u32 + 1)
        }))
        .map_err(|_| self.corrupt(index, "the demuxer failed on the sample table"))?;
        let sample = read
            .map_err(|e| self.corrupt(index, e))?
            .ok_or_else(|| self.corrupt(index, "the sample is missing"))?;
        let mut annex_b = Vec::with_capacity(sample.bytes.len() + 64);
        if self.is_key_frame(index) {
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

/// What `open` takes from a track's sample tables, after checking them against the file.
///
/// The `mp4` crate parses the tables as they are and later trusts them: it sizes buffers by them,
/// divides by them and unwraps lookups in them. Every value it would trip on is refused here,
/// before anything is allocated from it.
struct SampleTable {
    len: usize,
    key_frames: Option<Vec<usize>>,
    frame_duration: Duration,
}

impl SampleTable {
    fn check(track: &Mp4Track, file_size: u64) -> Result<Self, String> {
        let stbl = &track.trak.mdia.minf.stbl;
        let stsz = &stbl.stsz;
        let count = stsz.sample_count;
        if count == 0 {
            return Err("the video track has no frames".into());
        }
        // Each sample occupies at least one byte of the file (its fixed size, when the table
        // gives one), so a count beyond that is a lie, whatever the table's own box size says.
        let at_least = u64::from(stsz.sample_size.max(1));
        if u64::from(count) * at_least > file_size {
            return Err(format!(
                "{count} frames of at least {at_least} bytes each cannot fit in {file_size} bytes"
            ));
        }
        let largest = if stsz.sample_size != 0 {
            stsz.sample_size
        } else {
            if stsz.sample_sizes.len() != count as usize {
                return Err(format!(
                    "the size table lists {} of {count} frames",
                    stsz.sample_sizes.len()
                ));
            }
            let total: u64 = stsz.sample_sizes.iter().map(|&s| u64::from(s)).sum();
            if total > file_size {
                return Err(format!(
                    "the frames claim {total} bytes, more than the file's {file_size}"
                ));
            }
            stsz.sample_sizes.iter().copied().max().unwrap_or(0)
        };
        if largest > MAX_SAMPLE_BYTES {
            return Err(format!(
                "a frame claims {largest} bytes, more than the {MAX_SAMPLE_BYTES} accepted"
            ));
        }
        // The crate unwraps the time of every sample it reads.
        let timed: u64 = stbl
            .stts
            .entries
            .iter()
            .map(|e| u64::from(e.sample_count))
            .sum();
        if timed < u64::from(count) {
            return Err(format!("the time table covers {timed} of {count} frames"));
        }
        // It divides by `samples_per_chunk` and subtracts one from chunk numbers.
        if stbl.stsc.entries.is_empty()
            || stbl
                .stsc
                .entries
                .iter()
                .any(|e| e.samples_per_chunk == 0 || e.first_chunk == 0)
        {
            return Err("the sample-to-chunk table is empty or has an empty chunk".into());
        }

        let len = count as usize;
        // Without a sync-sample table every sample is a key frame (ISO 14496-12). The table's
        // length is bounded by its box, so collecting it is bounded by the file.
        let key_frames = stbl.stss.as_ref().map(|stss| {
            let mut keys: Vec<usize> = stss
                .entries
                .iter()
                .filter_map(|&n| (n as usize).checked_sub(1))
                .filter(|&i| i < len)
                .collect();
            // Searches assume ascending order, which a damaged table need not keep.
            keys.sort_unstable();
            keys.dedup();
            keys
        });

        let mdhd = &track.trak.mdia.mdhd;
        if mdhd.timescale == 0 {
            return Err("the track's timescale is 0".into());
        }
        // In u128, `duration * 1e6` cannot overflow (a u64 times 2^20 at most).
        let micros = u128::from(mdhd.duration) * 1_000_000
            / (u128::from(mdhd.timescale) * u128::from(count));
        let frame_duration = u64::try_from(micros)
            .ok()
            .map(Duration::from_micros)
            .filter(|d| !d.is_zero() && *d <= Duration::from_secs(10))
            .unwrap_or(FALLBACK_FRAME);
        Ok(Self {
            len,
            key_frames,
            frame_duration,
        })
    }
}

/// An H.264 MP4 file played at its frame rate.
pub struct VideoFileSource {
    /// `None` only while a decode runs on a blocking thread, or after that thread panicked.
    decoding: Option<Box<Decoding>>,
    /// A second decoder for thumbnails, so browsing does not restart playback decoding.
    thumbnailing: Option<Box<Decoding>>,
    /// The file as opened, for the thumbnail decoder.
    file: File,
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
    /// Returns `Unavailable` naming the file when it cannot be read or is not an MP4 with a video
    /// track, `Corrupt` when its sample tables cannot be true of the file (counts or sizes beyond
    /// its length, a zero timescale), and `Unsupported` when its video is not H.264 or the file is
    /// fragmented.
    pub fn open(path: &Path, options: VideoOptions) -> Result<Self, SourceError> {
        let file = File::open(path).map_err(|e| {
            SourceError::Unavailable(format!("cannot open video {}: {e}", path.display()))
        })?;
        let kept = file.try_clone().map_err(|e| {
            SourceError::Unavailable(format!("cannot open video {}: {e}", path.display()))
        })?;
        let (decoding, frame_duration) = Decoding::open(path, file)?;
        Ok(Self {
            file: kept,
            len: decoding.len,
            decoding: Some(Box::new(decoding)),
            thumbnailing: None,
            path: path.to_path_buf(),
            position: 0,
            options,
            frame_duration,
            due: None,
        })
    }

    /// The demuxer and decoder for thumbnails, opened on first use: a page of thumbnails moves
    /// this one around the file and leaves the playback decoder where it was.
    fn thumbnailing(&mut self) -> Result<&mut Decoding, SourceError> {
        if self.thumbnailing.is_none() {
            let unavailable = |e: std::io::Error| {
                SourceError::Unavailable(format!("cannot open video {}: {e}", self.path.display()))
            };
            // The file already open, not the path again: the path was checked against the media
            // roots when the source was opened and may lead elsewhere by now. The descriptors
            // share one file offset, which is harmless because every read seeks first and the
            // two decoders never run at once (both need `&mut self`).
            let mut file = self.file.try_clone().map_err(unavailable)?;
            file.seek(SeekFrom::Start(0)).map_err(unavailable)?;
            let (decoding, _) = Decoding::open(&self.path, file)?;
            self.thumbnailing = Some(Box::new(decoding));
        }
        Ok(self.thumbnailing.as_deref_mut().expect("set above"))
    }
}

impl Decoding {
    /// Reads the sample tables (not the frames) of `file`, opened from `path`, as
    /// [`VideoFileSource::open`] describes; also returns how long each frame is shown.
    fn open(path: &Path, file: File) -> Result<(Self, Duration), SourceError> {
        let shown = path.display();
        let unavailable = |why: &dyn std::fmt::Display| {
            SourceError::Unavailable(format!("cannot open video {shown}: {why}"))
        };
        let size = file.metadata().map_err(|e| unavailable(&e))?.len();
        // The parser is not hardened against hostile input; a panic in it is a bad file.
        let reader =
            std::panic::catch_unwind(|| Mp4Reader::read_header(BufReader::new(file), size))
                .map_err(|_| unavailable(&"not a readable MP4 file (its boxes do not parse)"))?
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
        // Fragments (`moof`/`trun`) carry their own sample sizes and counts, which the checks below
        // do not see and which the `mp4` crate sums with a panic on overflow; they are refused
        // before anything reads them.
        if !track.trafs.is_empty() {
            return Err(SourceError::Unsupported(format!(
                "video {shown} is a fragmented MP4; only MP4 files with a complete sample table \
                 can be played"
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

        let sample_table = SampleTable::check(track, size).map_err(|why| {
            SourceError::Corrupt(format!("video {shown} has a damaged sample table: {why}"))
        })?;
        let SampleTable {
            len,
            key_frames,
            frame_duration,
        } = sample_table;
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
            damaged: None,
        };
        Ok((decoding, frame_duration))
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
                let resume = decoding.resume_after(index);
                (decoding, result.map_err(|e| (e, resume)))
            })
            .await
            .map_err(|e| SourceError::Unavailable(format!("the video decoder stopped: {e}")))?;
            self.decoding = Some(decoding);
            self.position = index + 1;
            match result {
                Ok(picture) => break picture,
                // Damage is skipped up to the next key frame: an error here would make the
                // pipeline reopen the file and play it from the start, into the same damage. A
                // run of damaged groups is reported, so a file damaged throughout does not spin.
                Err((SourceError::Corrupt(error), resume)) if skipped < MAX_SKIPPED => {
                    tracing::warn!(
                        message = "Skipping video frames up to the next key frame after damage.",
                        %error,
                        from = index,
                        to = resume,
                    );
                    self.position = resume;
                    skipped += 1;
                }
                Err((e, _)) => return Err(e),
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
        let decoding = self.thumbnailing()?;
        let mut thumbnails = Vec::with_capacity(end.saturating_sub(offset));
        let mut index = offset;
        while index < end {
            match decoding.frame(index) {
                Ok(picture) => thumbnails.push(Thumbnail {
                    index,
                    image: shrink(picture, max_side),
                }),
                // Damaged frames leave a gap in the page, as they do in playback, up to the next
                // key frame: the frames between depend on the damage too.
                Err(SourceError::Corrupt(error)) => {
                    let resume = decoding.resume_after(index);
                    tracing::warn!(message = "No thumbnails for damaged video frames.", %error, from = index, to = resume);
                    index = resume;
                    continue;
                }
                Err(e) => return Err(e),
            }
            index += 1;
        }
        Ok(thumbnails)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Where the playback decoder stands: the next sample it feeds and picture it hands out.
    fn playback(source: &VideoFileSource) -> (Option<usize>, usize) {
        let decoding = source.decoding.as_deref().expect("no decode is running");
        (decoding.next_sample, decoding.next_output)
    }

    #[tokio::test]
    async fn browsing_thumbnails_leaves_the_playback_decoder_where_it_was() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/smpte-high.mp4");
        let mut source = VideoFileSource::open(&path, VideoOptions::default()).unwrap();
        for _ in 0..3 {
            source.next_frame().await.unwrap().unwrap();
        }
        let before = playback(&source);
        assert!(before.0.is_some() && before.1 >= 3, "{before:?}");
        let thumbs = source.thumbnails(20, 5, 40).unwrap();
        assert_eq!(
            thumbs.iter().map(|t| t.index).collect::<Vec<_>>(),
            [20, 21, 22, 23, 24]
        );
        // Playback goes on from frame 3 without a restart at a key frame.
        assert_eq!(playback(&source), before);
        assert_eq!(source.position(), 3);
        source.next_frame().await.unwrap().unwrap();
        assert_eq!(playback(&source).1, before.1 + 1);
    }
}
