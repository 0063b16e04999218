//! Integration tests of the sinks against the real things: a Mosquitto broker started by the test,
//! an HTTP receiver on a loopback port, files in a temporary directory. One test binary with a
//! module per sink, so the workspace links it once.

mod file;
mod mqtt;
mod support;
mod webhook;
