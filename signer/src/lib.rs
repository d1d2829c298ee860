//! Build host: bundle, encrypt, resign, info, extract verbs and the signer binary.
