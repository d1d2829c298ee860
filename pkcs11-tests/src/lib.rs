//! Test support shared by the integration tests in `tests/` and the benchmarks in `benches/`:
//! measuring commands against their peers ([`bench`]) and the QEMU VM harness ([`vm`]).

pub mod bench;
pub mod station;
pub mod vm;
