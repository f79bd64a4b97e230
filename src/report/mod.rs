//! DSMB reports.
