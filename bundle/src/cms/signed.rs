//! CMS SignedData creation with a [`crate::keys::ContentSigner`].
