//! Workspace-wide checks that no single crate can make about itself: which crate may depend on
//! which (the layer rule), and that every source file says what it is for. The checks live in
//! `tests/`; this library is empty.
