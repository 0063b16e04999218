//! Integration tests of the SurrealDB repository against the real database. Every test runs on
//! all three engines: embedded in memory, embedded on disk (a temporary directory), and a real
//! server over WebSocket (`visprompt-surrealdb-server`, started once per test binary).
//!
//! Set `TEST_LOG=1` to see the adapter's logs.

mod helpers;

mod cascade;
mod concurrency;
mod crud;
mod persistence;
