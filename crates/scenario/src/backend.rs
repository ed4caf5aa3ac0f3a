//! Scheduler backends by name. They are built by `tapesched-backends`, the one place that builds
//! backends for every binary; scenario runs use [`Backend::open`], which gives each run a fresh
//! namespace of its own, removed by [`OpenBackend::close`] (or on drop).

pub use tapesched_backends::{Backend, Cleanup, OpenBackend};
