//! The controller behind `baton serve` (docs/daemon.md): watch the branch, re-check what landed
//! per model, and reconcile each environment's target to the committed stages, crash-safely.
//!
//! Pure core: [`plan`] (steps from intent vs observed), [`gate`] (holds from a gates report),
//! the loop: [`runner`]; admission: [`admission`]; edges: [`target`] (local), [`artifact`],
//! [`watch`], [`http`], [`state`], [`health`], [`process`]; the web UI: [`dashboard`].

pub mod admission;
pub mod artifact;
pub mod controller;
pub mod dashboard;
pub mod events;
pub mod features;
/// Moved to the crate root (the gates engine's caches write through it too); kept here so
/// `daemon::fsutil::...` paths still resolve.
pub use crate::fsutil;
pub mod gate;
pub mod health;
pub mod http;
pub mod inspect;
pub mod intent;
pub mod metrics;
pub mod notify;
pub mod plan;
pub mod process;
pub mod release;
pub mod run;
pub mod runner;
pub mod state;
pub mod target;
pub mod verify;
pub mod view;
pub mod watch;
pub mod webhook;

pub use controller::{Controller, ControllerConfig, ControllerError};
pub use run::{once, serve, OnceReport, ServeConfig, ServeError};
