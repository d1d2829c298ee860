//! Boots a Debian kernel with a busybox initramfs under QEMU (TCG) to run device-mapper tests.
