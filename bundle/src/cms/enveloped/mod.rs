//! CMS EnvelopedData: encryption to many recipients and decryption with one [`crate::keys::RecipientKey`].
