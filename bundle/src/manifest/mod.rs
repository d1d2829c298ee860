//! The manifest (`manifest.raucm` and the signed external manifest).
