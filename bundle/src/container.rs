//! The container: `payload | CMS | u64 BE CMS length`.
