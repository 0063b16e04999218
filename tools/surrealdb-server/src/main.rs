//! Starts a SurrealDB server exactly as the upstream `surreal` binary would (`surreal start ...`).
//! It exists so that the remote-mode repository tests run against a real server of the same
//! major version as the SDK, built from crates.io with the memory engine only.

fn main() -> std::process::ExitCode {
    surrealdb_server::init(surrealdb_server::core::CommunityComposer())
}
