//! device-mapper: dm-verity and dm-crypt devices through the `devicemapper` crate (the only place that issues dm ioctls).
