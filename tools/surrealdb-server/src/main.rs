//! Starts a SurrealDB server exactly as the upstream `surreal` binary would (`surreal start ...`).
//! It exists so that the remote-mode repository tests run against a real server of the same
//! major version as the SDK, built from crates.io with the memory engine only.
//!
//! One addition: with `VISPROMPT_EXIT_ON_STDIN_EOF=1` the server exits as soon as its standard
//! input closes. A test binary spawns it with a pipe for stdin and never writes to it, so the server
//! goes away with the test process however that ends (normal exit, panic, or being killed).

use std::io::Read;

/// The variable that turns on the stdin watchdog; anything but `1` leaves it off.
const EXIT_ON_STDIN_EOF: &str = "VISPROMPT_EXIT_ON_STDIN_EOF";

fn main() -> std::process::ExitCode {
    if std::env::var(EXIT_ON_STDIN_EOF).is_ok_and(|v| v == "1") {
        std::thread::spawn(|| {
            // Reads until end of file (or an error, which means the same here: no parent left).
            let mut sink = [0u8; 256];
            let mut stdin = std::io::stdin();
            while matches!(stdin.read(&mut sink), Ok(n) if n > 0) {}
            std::process::exit(0);
        });
    }
    surrealdb_server::init(surrealdb_server::core::CommunityComposer())
}
