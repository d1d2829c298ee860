//! The bundle mount stack: loop → dm-verity → (dm-crypt) → squashfs, torn down on every path.
