//! CMS (RFC 5652) structures of a bundle: SignedData ([`signed`], [`verify`]) and EnvelopedData ([`enveloped`]).
pub mod enveloped;
pub mod signed;
pub mod verify;
