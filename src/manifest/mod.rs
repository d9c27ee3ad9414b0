//! The registry's file formats (docs/registry-format.md) as typed structs, and their parsers.
//! Parsing is pure: bytes in, typed value or located [`Diagnostic`](crate::diag::Diagnostic) out.

mod fast;
pub mod locate;
pub mod model;
pub mod modeline;
pub mod notify;
pub mod parse;
pub mod policy;
pub mod schema;
pub mod serde_util;
pub mod small_map;
pub mod target;
pub mod verify;
pub mod version;

pub use model::ModelManifest;
pub use parse::{parse_model, parse_policy, parse_version, ParseError, MAX_MANIFEST_BYTES};
pub use policy::{Environment, Gate, Policy, Stage};
pub use small_map::SmallMap;
pub use version::{Artifact, Evidence, VersionManifest};
