//! Result sinks (to be written).
