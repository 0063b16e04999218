//! The file sink: each result's JSON as one line appended to a file (JSON Lines), rotated by size
//! to `path.1`, `path.2`, …. A blocking thread of its own does the writing, so disk stalls never
//! reach the async executor; `publish` only hands the line over and drops it when the writer is
//! that far behind. The path is resolved against the media roots with symlinks followed before
//! anything is created, so a linked directory inside a root cannot make it write elsewhere; paths
//! that cannot be a file of ours (a directory, a device) are refused too.

use std::ffi::OsString;
use std::fs::{self, File, OpenOptions};
use std::io::{self, BufWriter, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use visprompt_runtime::{
    Confinement, FrameResult, ResultSink, SinkError, SinkHealth, SinkHealthReporter,
};

use crate::backoff::Backoff;
use crate::settings::{BackoffSettings, FileSettings};

/// A running file sink.
pub struct FileSink {
    /// Lines for the writer thread; dropping it (in `close`) lets the writer finish and flush.
    lines: Option<mpsc::Sender<Arc<str>>>,
    writer: Option<JoinHandle<()>>,
    /// Lines dropped: the queue was full, or the file could not be written.
    dropped: Arc<AtomicU64>,
    path: PathBuf,
    close_timeout: Duration,
    health: SinkHealthReporter,
}

impl FileSink {
    /// Resolves `path`, creates its directory if needed and opens the file for appending; any of
    /// these failing is `Invalid`.
    pub async fn start(
        path: &str,
        confinement: &Confinement,
        settings: &FileSettings,
        backoff: BackoffSettings,
        health: SinkHealthReporter,
    ) -> Result<Self, SinkError> {
        let raw = path.to_owned();
        let settings = settings.clone();
        let confinement = confinement.clone();
        let writer = tokio::task::spawn_blocking(move || {
            let path = resolve(&raw, &confinement)?;
            let (file, size) = open_for_append(&path).map_err(|e| {
                SinkError::Invalid(format!("cannot open {} for writing: {e}", path.display()))
            })?;
            Ok::<_, SinkError>(Writer {
                path,
                file: Some(file),
                size,
                max_bytes: settings.max_bytes,
                keep: settings.keep,
                backoff: Backoff::new(backoff),
                retry_at: None,
            })
        })
        .await
        .map_err(|e| SinkError::Failed(format!("opening the file panicked: {e}")))??;

        let path = writer.path.clone();
        let dropped = Arc::new(AtomicU64::new(0));
        let (lines, receiver) = mpsc::channel(settings.queue_capacity.max(1));
        health.set(SinkHealth::Connected);
        let task = {
            let health = health.clone();
            let dropped = dropped.clone();
            tokio::task::spawn_blocking(move || writer.run(receiver, &health, &dropped))
        };
        Ok(Self {
            lines: Some(lines),
            writer: Some(task),
            dropped,
            path,
            close_timeout: settings.close_timeout,
            health,
        })
    }

    /// The file actually written: the configured path with its directory and any symbolic link
    /// resolved.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Lines dropped so far.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }
}

#[async_trait]
impl ResultSink for FileSink {
    async fn publish(&mut self, result: &FrameResult) -> Result<(), SinkError> {
        let Some(lines) = &self.lines else {
            return Err(SinkError::Failed("the file sink is closed".into()));
        };
        match lines.try_send(result.payload_json()) {
            Ok(()) => Ok(()),
            Err(mpsc::error::TrySendError::Full(_)) => {
                let dropped = self.dropped.fetch_add(1, Ordering::Relaxed) + 1;
                if dropped.is_power_of_two() {
                    tracing::warn!(
                        message = "File sink behind; dropping results.",
                        path = %self.path.display(),
                        dropped
                    );
                }
                Ok(())
            }
            Err(mpsc::error::TrySendError::Closed(_)) => {
                Err(SinkError::Failed("the file writer has stopped".into()))
            }
        }
    }

    async fn close(&mut self) {
        self.lines = None;
        if let Some(writer) = self.writer.take() {
            // A blocking task cannot be aborted; past the deadline it is left to finish alone.
            if tokio::time::timeout(self.close_timeout, writer)
                .await
                .is_err()
            {
                tracing::warn!(
                    message = "File sink still writing after close; leaving it to finish.",
                    path = %self.path.display()
                );
            }
        }
        self.health.set(SinkHealth::Stopped);
    }
}

/// Makes the configured path into the file to write. The directory is resolved against the media
/// roots before it is created (if missing) and again after; the file itself must be a regular
/// file, not there yet, or a symbolic link to a regular file inside the roots.
fn resolve(raw: &str, confinement: &Confinement) -> Result<PathBuf, SinkError> {
    let invalid = |why: String| SinkError::Invalid(format!("the file path {raw:?} {why}"));
    let path = Path::new(raw);
    let name = path
        .file_name()
        .ok_or_else(|| invalid("does not name a file".into()))?;
    let parent = match path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent,
        _ => Path::new("."),
    };
    let parent = confinement
        .resolve_new(parent)
        .map_err(|e| invalid(e.to_string()))?;
    fs::create_dir_all(&parent)
        .map_err(|e| invalid(format!("has a directory that cannot be created: {e}")))?;
    // Checked again once it exists: a link swapped in meanwhile must not redirect the writes.
    let parent = confinement
        .resolve(&parent)
        .map_err(|e| invalid(e.to_string()))?;
    let file = parent.join(name);
    let metadata = match fs::symlink_metadata(&file) {
        Ok(metadata) => metadata,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(file),
        Err(e) => return Err(invalid(format!("cannot be inspected: {e}"))),
    };
    let file = if metadata.file_type().is_symlink() {
        confinement
            .resolve(&file)
            .map_err(|e| invalid(format!("is a symbolic link that {e}")))?
    } else {
        file
    };
    // Writing to a FIFO or a device could block the writer for good.
    if !fs::metadata(&file).is_ok_and(|m| m.is_file()) {
        return Err(invalid("is a directory or not a regular file".into()));
    }
    Ok(file)
}

/// Opens `path` for appending and returns its size. A line cut short by an earlier failure is
/// closed with a newline, so the next line still parses on its own.
fn open_for_append(path: &Path) -> io::Result<(BufWriter<File>, u64)> {
    let mut file = OpenOptions::new()
        .create(true)
        .read(true)
        .append(true)
        .open(path)?;
    let mut size = file.metadata()?.len();
    if size > 0 {
        let mut last = [0u8];
        file.seek(SeekFrom::End(-1))?;
        file.read_exact(&mut last)?;
        if last[0] != b'\n' {
            file.write_all(b"\n")?;
            size += 1;
        }
    }
    Ok((BufWriter::with_capacity(64 * 1024, file), size))
}

/// The writer thread's state.
struct Writer {
    path: PathBuf,
    /// `None` after a failure, until the next attempt to reopen is due.
    file: Option<BufWriter<File>>,
    /// Bytes in the current file, written or buffered.
    size: u64,
    max_bytes: u64,
    keep: u32,
    backoff: Backoff,
    retry_at: Option<Instant>,
}

impl Writer {
    fn run(
        mut self,
        mut lines: mpsc::Receiver<Arc<str>>,
        health: &SinkHealthReporter,
        dropped: &AtomicU64,
    ) {
        while let Some(line) = lines.blocking_recv() {
            let mut result = self.write_line(&line);
            // Everything already waiting is written before one flush, so a burst costs one
            // system call rather than one per line.
            while let Ok(line) = lines.try_recv() {
                if result.is_ok() {
                    result = self.write_line(&line);
                } else {
                    dropped.fetch_add(1, Ordering::Relaxed);
                }
            }
            let result = result.and_then(|()| self.flush());
            match result {
                Ok(()) => {
                    if self.retry_at.take().is_some() {
                        self.backoff.reset();
                        tracing::info!(message = "File sink writing again.", path = %self.path.display());
                    }
                    health.set(SinkHealth::Connected);
                }
                Err(WriteError::Waiting) => {
                    dropped.fetch_add(1, Ordering::Relaxed);
                }
                Err(WriteError::Io(error)) => {
                    dropped.fetch_add(1, Ordering::Relaxed);
                    let delay = self.backoff.next_delay();
                    tracing::warn!(
                        message = "File sink cannot write; retrying.",
                        path = %self.path.display(),
                        error = %error,
                        retry_in_ms = delay.as_millis() as u64
                    );
                    health.set(SinkHealth::Retrying {
                        message: format!("cannot write {}: {error}", self.path.display()),
                    });
                    // Whatever state the file is in, it is reopened (and its last line ended)
                    // before the next write.
                    self.file = None;
                    self.retry_at = Some(Instant::now() + delay);
                }
            }
        }
        if let Err(WriteError::Io(error)) = self.flush() {
            tracing::warn!(message = "File sink lost its last lines.", path = %self.path.display(), error = %error);
        }
    }

    fn write_line(&mut self, line: &str) -> Result<(), WriteError> {
        if self.file.is_none() {
            if self.retry_at.is_some_and(|at| Instant::now() < at) {
                return Err(WriteError::Waiting);
            }
            let (file, size) = open_for_append(&self.path)?;
            self.file = Some(file);
            self.size = size;
        }
        let length = line.len() as u64 + 1;
        if self.size > 0 && self.size + length > self.max_bytes {
            self.rotate()?;
        }
        let file = self.file.as_mut().ok_or(WriteError::Waiting)?;
        file.write_all(line.as_bytes())?;
        file.write_all(b"\n")?;
        self.size += length;
        Ok(())
    }

    fn flush(&mut self) -> Result<(), WriteError> {
        match &mut self.file {
            Some(file) => Ok(file.flush()?),
            None => Ok(()),
        }
    }

    /// `path` becomes `path.1`, `path.1` becomes `path.2`, and so on; the oldest beyond `keep`
    /// is deleted. Renames go oldest first, so each finds its new name free.
    fn rotate(&mut self) -> io::Result<()> {
        if let Some(mut file) = self.file.take() {
            file.flush()?;
        }
        if self.keep == 0 {
            ignore_missing(fs::remove_file(&self.path))?;
        } else {
            ignore_missing(fs::remove_file(rotated(&self.path, self.keep)))?;
            for n in (1..self.keep).rev() {
                ignore_missing(fs::rename(
                    rotated(&self.path, n),
                    rotated(&self.path, n + 1),
                ))?;
            }
            fs::rename(&self.path, rotated(&self.path, 1))?;
        }
        let (file, size) = open_for_append(&self.path)?;
        self.file = Some(file);
        self.size = size;
        Ok(())
    }
}

enum WriteError {
    /// The file failed earlier and the next attempt is not due yet.
    Waiting,
    Io(io::Error),
}

impl From<io::Error> for WriteError {
    fn from(error: io::Error) -> Self {
        Self::Io(error)
    }
}

/// `path.n`: the suffix goes after the whole file name, extension included (`out.jsonl.1`).
fn rotated(path: &Path, n: u32) -> PathBuf {
    let mut name = OsString::from(path.as_os_str());
    name.push(format!(".{n}"));
    PathBuf::from(name)
}

fn ignore_missing(result: io::Result<()>) -> io::Result<()> {
    match result {
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rotated_names_keep_the_extension_and_add_a_number() {
        assert_eq!(
            rotated(Path::new("/data/out.jsonl"), 2),
            PathBuf::from("/data/out.jsonl.2")
        );
    }
}
