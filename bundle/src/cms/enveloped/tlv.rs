//! Minimal DER tag-length-value reading and writing.
//!
//! The EnvelopedData of a large fleet holds 100,000 RecipientInfos; encoding and scanning them
//! through generic ASN.1 types would re-encode every element to sort or compare it. These
//! helpers work on raw bytes instead: the encoder writes pre-sorted, pre-encoded elements and the
//! decoder walks a SET without decoding the elements it does not need. Only single-byte tags and
//! definite lengths are accepted (DER); BER input is normalised by the caller first.

/// Universal tags and context-specific tags used by CMS.
pub(crate) mod tag {
    /// INTEGER.
    pub const INTEGER: u8 = 0x02;
    /// BIT STRING.
    pub const BIT_STRING: u8 = 0x03;
    /// OCTET STRING.
    pub const OCTET_STRING: u8 = 0x04;
    /// NULL.
    pub const NULL: u8 = 0x05;
    /// OBJECT IDENTIFIER.
    pub const OID: u8 = 0x06;
    /// SEQUENCE (constructed).
    pub const SEQUENCE: u8 = 0x30;
    /// SET (constructed).
    pub const SET: u8 = 0x31;
    /// `[0]` primitive (IMPLICIT OCTET STRING and similar).
    pub const CTX0: u8 = 0x80;
    /// `[0]` constructed.
    pub const CTX0_C: u8 = 0xa0;
    /// `[1]` constructed.
    pub const CTX1_C: u8 = 0xa1;
    /// `[2]` constructed.
    pub const CTX2_C: u8 = 0xa2;
}

/// A structural DER problem; the message names what was expected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct DerError(pub &'static str);

/// Number of bytes of a DER length field for a content of `len` bytes.
pub(crate) fn length_len(len: usize) -> usize {
    match len {
        0..=0x7f => 1,
        0x80..=0xff => 2,
        0x100..=0xffff => 3,
        0x1_0000..=0xff_ffff => 4,
        _ => 5,
    }
}

/// Encoded size of a TLV with a single-byte tag and `content_len` content bytes.
pub(crate) fn tlv_len(content_len: usize) -> usize {
    1 + length_len(content_len) + content_len
}

/// Appends a tag and a DER length.
pub(crate) fn put_header(out: &mut Vec<u8>, tag: u8, len: usize) {
    out.push(tag);
    let n = length_len(len);
    if n == 1 {
        out.push(len as u8);
    } else {
        out.push(0x80 | (n - 1) as u8);
        for i in (0..n - 1).rev() {
            out.push((len >> (8 * i)) as u8);
        }
    }
}

/// Appends a complete TLV.
pub(crate) fn put_tlv(out: &mut Vec<u8>, tag: u8, content: &[u8]) {
    put_header(out, tag, content.len());
    out.extend_from_slice(content);
}

/// One decoded TLV: its tag, its content and the raw bytes of the whole element.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Tlv<'a> {
    /// The (single-byte) tag.
    pub tag: u8,
    /// The content octets.
    pub content: &'a [u8],
    /// Tag, length and content, as found in the input.
    pub raw: &'a [u8],
}

/// Reads one TLV from the front of `input`; returns it and the remaining bytes.
pub(crate) fn read_tlv(input: &[u8]) -> Result<(Tlv<'_>, &[u8]), DerError> {
    let (&tag, rest) = input
        .split_first()
        .ok_or(DerError("unexpected end of data"))?;
    if tag & 0x1f == 0x1f {
        return Err(DerError("multi-byte tags are not supported"));
    }
    let (&first, rest) = rest.split_first().ok_or(DerError("missing length"))?;
    let (len, rest) = if first < 0x80 {
        (first as usize, rest)
    } else {
        let n = (first & 0x7f) as usize;
        if n == 0 {
            return Err(DerError("indefinite length (BER) where DER is required"));
        }
        if n > 4 || rest.len() < n {
            return Err(DerError("length field too long"));
        }
        let len = rest[..n]
            .iter()
            .fold(0usize, |acc, &b| (acc << 8) | b as usize);
        if rest[0] == 0 || len < 0x80 {
            return Err(DerError("non-minimal length encoding"));
        }
        (len, &rest[n..])
    };
    if rest.len() < len {
        return Err(DerError("element extends past the end of its container"));
    }
    let header = input.len() - rest.len();
    let tlv = Tlv {
        tag,
        content: &rest[..len],
        raw: &input[..header + len],
    };
    Ok((tlv, &rest[len..]))
}

/// A cursor over the elements inside one constructed value.
#[derive(Debug, Clone)]
pub(crate) struct Reader<'a> {
    rest: &'a [u8],
}

impl<'a> Reader<'a> {
    /// Starts reading `content`.
    pub fn new(content: &'a [u8]) -> Self {
        Reader { rest: content }
    }

    /// True once every element was read.
    pub fn is_empty(&self) -> bool {
        self.rest.is_empty()
    }

    /// Reads the next element, whatever its tag.
    pub fn any(&mut self) -> Result<Tlv<'a>, DerError> {
        let (tlv, rest) = read_tlv(self.rest)?;
        self.rest = rest;
        Ok(tlv)
    }

    /// Reads the next element, which must carry `tag`.
    pub fn expect(&mut self, tag: u8, what: &'static str) -> Result<Tlv<'a>, DerError> {
        let tlv = self.any().map_err(|_| DerError(what))?;
        if tlv.tag != tag {
            return Err(DerError(what));
        }
        Ok(tlv)
    }

    /// Reads the next element if it carries `tag`.
    pub fn optional(&mut self, tag: u8) -> Result<Option<Tlv<'a>>, DerError> {
        match self.rest.first() {
            Some(&t) if t == tag => self.any().map(Some),
            _ => Ok(None),
        }
    }

    /// Fails unless every element was read.
    pub fn finish(&self, what: &'static str) -> Result<(), DerError> {
        if self.rest.is_empty() {
            Ok(())
        } else {
            Err(DerError(what))
        }
    }
}

/// Decodes a small non-negative INTEGER (a CMS version number).
pub(crate) fn small_uint(tlv: &Tlv<'_>) -> Result<u64, DerError> {
    match tlv.content {
        [] => Err(DerError("empty INTEGER")),
        [b, ..] if b & 0x80 != 0 => Err(DerError("negative version number")),
        c if c.len() > 8 => Err(DerError("version number too large")),
        c => Ok(c.iter().fold(0u64, |acc, &b| (acc << 8) | b as u64)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lengths_round_trip_across_thresholds() {
        for len in [
            0usize, 1, 127, 128, 255, 256, 65535, 65536, 0xff_ffff, 0x100_0000,
        ] {
            let content = vec![0xabu8; len];
            let mut out = Vec::new();
            put_tlv(&mut out, tag::OCTET_STRING, &content);
            assert_eq!(out.len(), tlv_len(len), "len {len}");
            let (tlv, rest) = read_tlv(&out).unwrap();
            assert!(rest.is_empty());
            assert_eq!(tlv.tag, tag::OCTET_STRING);
            assert_eq!(tlv.content.len(), len);
            assert_eq!(tlv.raw.len(), out.len());
        }
    }

    #[test]
    fn rejects_ber_and_truncation() {
        assert!(read_tlv(&[0x30, 0x80, 0, 0]).is_err());
        assert!(read_tlv(&[0x04, 0x81, 0x05, 1, 2, 3, 4, 5]).is_err());
        assert!(read_tlv(&[0x04, 0x03, 1, 2]).is_err());
        assert!(read_tlv(&[0x1f, 0x01, 0x00]).is_err());
        assert!(read_tlv(&[]).is_err());
    }

    #[test]
    fn reader_walks_and_checks_tags() {
        let mut out = Vec::new();
        put_tlv(&mut out, tag::INTEGER, &[2]);
        put_tlv(&mut out, tag::OCTET_STRING, b"x");
        let mut r = Reader::new(&out);
        assert_eq!(
            small_uint(&r.expect(tag::INTEGER, "version").unwrap()).unwrap(),
            2
        );
        assert!(r.optional(tag::CTX0_C).unwrap().is_none());
        assert!(r.expect(tag::SEQUENCE, "a sequence").is_err());
    }
}
