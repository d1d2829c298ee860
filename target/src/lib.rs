//! Device: system.conf, slots, verified open, device-mapper, install plan, D-Bus service.
