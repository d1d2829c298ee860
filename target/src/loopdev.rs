//! Loop devices over a byte range of a bundle file.
