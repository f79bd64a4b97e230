//! Sources: the drop folder and the native record format.

mod folder;
pub mod native;

pub use folder::{DropFolder, FileOutcome};
