//! The live pipeline: its desired state ([`spec`]), the running stages ([`running`]), their
//! status and counters ([`status`]) and the [`manager`] that reconciles one with the other.
