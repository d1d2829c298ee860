//! The dm-verity hash tree (format 1, SHA-256, 4 KiB blocks, no superblock).
