//! Logging set-up: `tracing` with the filter from `LOG_LEVEL`. Installed once per process; later
//! calls (tests build many applications) are no-ops.

pub fn init(filter: &str) {
    let filter = tracing_subscriber::EnvFilter::try_new(filter)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_target(false)
        .try_init();
}
