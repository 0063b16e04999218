//! API tests: each test starts the real server on a random loopback port over a fresh in-memory
//! database and talks HTTP to it. One binary, one module per area.

mod helpers;

mod discovery;
mod errors;
mod frames;
mod labels;
mod models;
mod neural;
mod openapi;
mod persistence;
mod pipeline;
mod projects;
mod prompts;
mod sinks;
mod sources;
mod ui;
mod webrtc;
