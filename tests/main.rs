//! baton's integration tests, one binary (linked once): each module is one area of
//! docs/, with the shared support in `common` (repositories, keys, the daemon) and `world`.
//!
//! `cargo test --test it daemon::` runs one area; `cargo test --test it NAME` one test.

mod common;
mod world;

mod approvals;
mod authoring;
mod check;
mod daemon;
mod dashboard;
mod directory_artifacts;
mod integrity;
mod kserve;
mod loader;
mod registry;
mod s3;
mod schema;
mod targets;
mod verify;
mod walkthrough;
