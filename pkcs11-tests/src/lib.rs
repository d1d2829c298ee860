//! Test support shared by the integration tests in `tests/`: the QEMU VM harness ([`vm`]).

pub mod vm;
