//! Optional timing of the encoders' stages, for `just bench-models`' breakdown of where the time
//! goes. Off by default; when off, `time` costs one relaxed atomic load.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

static ENABLED: AtomicBool = AtomicBool::new(false);
static TOTALS: Mutex<BTreeMap<&'static str, Duration>> = Mutex::new(BTreeMap::new());

/// Turns stage timing on or off (process-wide) and clears what was collected.
pub fn set_enabled(on: bool) {
    ENABLED.store(on, Ordering::Relaxed);
    TOTALS.lock().expect("profile lock").clear();
}

/// The time collected per stage since the last call (or [`set_enabled`]), and clears it.
pub fn take() -> Vec<(&'static str, Duration)> {
    let mut totals = TOTALS.lock().expect("profile lock");
    let out = totals.iter().map(|(k, v)| (*k, *v)).collect();
    totals.clear();
    out
}

/// Runs `f`, adding its wall time to `stage` when timing is on.
pub(crate) fn time<R>(stage: &'static str, f: impl FnOnce() -> R) -> R {
    if !ENABLED.load(Ordering::Relaxed) {
        return f();
    }
    let start = Instant::now();
    let r = f();
    *TOTALS
        .lock()
        .expect("profile lock")
        .entry(stage)
        .or_default() += start.elapsed();
    r
}
