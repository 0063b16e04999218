//! The `visprompt-server` binary: `visprompt-server` serves the API until Ctrl-C or SIGTERM;
//! `visprompt-server openapi` prints the OpenAPI document and exits.

use anyhow::Context;
use visprompt_server::{Application, Settings, openapi_document, telemetry};

// The process's allocator, shared with the benchmarks so that they measure what the server does.
mod allocator;
use allocator::keep_freed_memory;

fn main() -> anyhow::Result<()> {
    // Before the runtime starts its threads (see `keep_freed_memory`).
    keep_freed_memory();
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?
        .block_on(run())
}

async fn run() -> anyhow::Result<()> {
    match std::env::args().nth(1).as_deref() {
        None | Some("serve") => serve().await,
        Some("openapi") => {
            println!("{}", openapi_document().await?);
            Ok(())
        }
        Some(other) => anyhow::bail!("unknown command {other:?}; expected `serve` or `openapi`"),
    }
}

async fn serve() -> anyhow::Result<()> {
    let settings = Settings::load()?;
    telemetry::init(&settings.log.level);
    let app = Application::build(settings)
        .await
        .context("starting the server")?;
    release_startup_memory();
    app.run_until_stopped(shutdown_signal())
        .await
        .context("serving")?;
    tracing::info!(message = "Stopped.");
    Ok(())
}

/// Hands back to the system the memory that start-up used and freed.
///
/// Opening the store, migrating its schema and building the API leave a few megabytes of freed
/// pages in the allocator. mimalloc returns such pages on later allocations, which an idle
/// server does not make, so without this it would hold them until its first requests
/// (`just bench-api` measures the idle footprint).
fn release_startup_memory() {
    // SAFETY: `mi_collect` only walks the allocator's own free lists; any thread may call it.
    unsafe { libmimalloc_sys::mi_collect(true) };
}

/// Resolves on Ctrl-C or SIGTERM, whichever comes first.
async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        if let Ok(mut s) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        {
            s.recv().await;
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {}
        () = term => {}
    }
}
