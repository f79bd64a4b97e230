//! Sources: the drop folder and the native record format.

pub mod csv;
pub mod fhir;
mod folder;
pub mod native;
pub mod sdtm;

pub use folder::{DropFolder, FileOutcome};
