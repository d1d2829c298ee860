//! Test support: a temporary SoftHSM token as a value that cleans up on Drop.
