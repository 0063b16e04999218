//! The live pipeline: its desired state ([`spec`]), the running stages ([`running`]), their
//! status and counters ([`status`]) and the [`manager`] that reconciles one with the other.

pub mod manager;
pub mod running;
pub mod spec;
pub mod status;

pub use manager::{
    Components, ManagerSettings, PipelineError, PipelineHandle, PipelineManager, RuntimeEvent,
};
pub use running::{NavigationInfo, PipelineOutputs, RunningPipeline};
pub use spec::{DetectorSpec, PipelineSpec, SourceSpec, load_references};
pub use status::{
    ComponentState, DetectorStatus, PipelineState, PipelineStats, PipelineStatus, SinkStatus,
    SourceStatus,
};

#[cfg(test)]
mod tests;
