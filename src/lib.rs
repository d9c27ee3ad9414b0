//! baton: a GitOps promotion controller for machine-learning models.
//! The library holds the registry model, the gates engine and the controller; `main.rs` is the CLI edge.

pub mod audit;
pub mod authoring;
pub mod check;
pub mod daemon;
pub mod diag;
pub mod fsutil;
pub mod gitcli;
pub mod gitopts;
pub mod history;
pub mod http_client;
pub mod manifest;
pub mod names;
pub mod register;
pub mod registry;
pub mod repo;
pub mod stage_move;
