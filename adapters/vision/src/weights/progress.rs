//! Download progress: a callback trait the server can turn into its model-status endpoint, and a
//! ready-made implementation that logs a text progress bar through `tracing`.

use std::sync::Mutex;

/// One step of a download. Byte counts cover all the files of the request; `total` is known
/// once the hub has announced every file's size.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProgressEvent<'a> {
    /// The hub repository, e.g. `facebook/dinov3-vits16-pretrain-lvd1689m`.
    pub repo: &'a str,
    /// The file being downloaded.
    pub file: &'a str,
    /// Bytes received so far, over all files.
    pub done: u64,
    /// Bytes to receive in all, when known.
    pub total: Option<u64>,
}

/// Receives download progress. Called from the downloading task, often: keep it cheap.
pub trait DownloadProgress: Send + Sync {
    fn progress(&self, event: &ProgressEvent<'_>);
}

/// Ignores progress.
pub struct NoProgress;

impl DownloadProgress for NoProgress {
    fn progress(&self, _: &ProgressEvent<'_>) {}
}

/// Logs `[#####.....] 52% 45.1/86.6 MB file` at `info` level each time another 5 % is done.
#[derive(Default)]
pub struct LogProgress {
    last_step: Mutex<Option<(String, u64)>>,
}

impl DownloadProgress for LogProgress {
    fn progress(&self, e: &ProgressEvent<'_>) {
        let Some(total) = e.total.filter(|t| *t > 0) else {
            return;
        };
        let step = e.done.min(total) * 20 / total;
        let mut last = self.last_step.lock().expect("progress lock");
        if last
            .as_ref()
            .is_some_and(|(r, s)| r == e.repo && *s == step)
        {
            return;
        }
        *last = Some((e.repo.to_string(), step));
        tracing::info!(
            "downloading {} [{}{}] {:>3}% {:.1}/{:.1} MB {}",
            e.repo,
            "#".repeat(step as usize),
            ".".repeat(20 - step as usize),
            e.done.min(total) * 100 / total,
            e.done as f64 / 1e6,
            total as f64 / 1e6,
            e.file
        );
    }
}
