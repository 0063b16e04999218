//! The `visprompt-server` binary: `visprompt-server` serves the API until Ctrl-C or SIGTERM;
//! `visprompt-server openapi` prints the OpenAPI document and exits.

use anyhow::Context;
use visprompt_server::{Application, Settings, openapi_document, telemetry};

// The neural models allocate and free tensors of tens of megabytes per frame. The system
// allocator maps and unmaps each of them, and the page faults that follow cost a fifth of a
// frame's time (`just bench-algorithms`); mimalloc keeps and reuses that memory. Built without
// transparent huge pages (`no_thp`): with them, each small allocation touched a whole 2 MiB page,
// and the idle server held 49 MB of such pages (`just bench-api`).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
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
