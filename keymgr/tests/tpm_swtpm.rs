//! TPM-native ECDH keys against a real swtpm: provisioning, ECDH agreement with OpenSSL, a
//! bundle CMS decrypted through the TPM, the EK certificate, and no handle left behind.

mod tpm_common;

use bundle::cms::enveloped::{EncryptOptions, Recipient, decrypt, encrypt};
use bundle::keys::{EcCurve, KeyKind, RecipientKey};
use keymgr::tpm::{
    EK_CERT_NV_ECC_P256, TpmEcdhKey, TpmError, create_persistent_ecdh_key, evict_persistent_key,
    read_ek_certificate,
};
use openssl::bn::BigNumContext;
use openssl::derive::Deriver;
use openssl::ec::{EcGroup, EcKey, PointConversionForm};
use openssl::nid::Nid;
use openssl::pkey::PKey;
use tpm_common::{Ca, Swtpm};

/// ECDH with a fresh OpenSSL key: (peer point to send to the TPM, Z computed by OpenSSL).
fn openssl_side(curve: Nid, tpm_spki: &[u8]) -> (Vec<u8>, Vec<u8>) {
    let group = EcGroup::from_curve_name(curve).unwrap();
    let eph = EcKey::generate(&group).unwrap();
    let point = eph
        .public_key()
        .to_bytes(
            &group,
            PointConversionForm::UNCOMPRESSED,
            &mut BigNumContext::new().unwrap(),
        )
        .unwrap();
    let eph = PKey::from_ec_key(eph).unwrap();
    let tpm_pub = PKey::public_key_from_der(tpm_spki).unwrap();
    let mut d = Deriver::new(&eph).unwrap();
    d.set_peer(&tpm_pub).unwrap();
    (point, d.derive_to_vec().unwrap())
}

#[test]
fn persistent_keys_agree_with_openssl_and_leave_nothing_loaded() {
    let tpm = Swtpm::start();
    let tcti = tpm.tcti();
    for (curve, nid, handle) in [
        (EcCurve::P256, Nid::X9_62_PRIME256V1, 0x8100_0100u32),
        (EcCurve::P384, Nid::SECP384R1, 0x8100_0101u32),
    ] {
        let spki = create_persistent_ecdh_key(&tcti, curve, handle).unwrap();
        assert_eq!(
            tpm.transient_handles(),
            "",
            "no transient object after provisioning"
        );
        assert!(matches!(
            create_persistent_ecdh_key(&tcti, curve, handle),
            Err(TpmError::HandleInUse { .. })
        ));
        let key = TpmEcdhKey::open(&format!("tpm2:handle={handle:#x};tcti={tcti}")).unwrap();
        assert_eq!(key.public_key_spki(), spki.as_slice());
        assert_eq!(key.kind(), KeyKind::Ec(curve));
        assert!(key.certificate_der().is_none());
        for _ in 0..4 {
            let (point, z) = openssl_side(nid, &spki);
            assert_eq!(key.ecdh(&point).unwrap().as_slice(), z.as_slice());
        }
        assert_eq!(
            tpm.transient_handles(),
            "",
            "no transient object after ECDH"
        );
        assert!(matches!(
            key.ecdh(&[4u8; 10]),
            Err(e) if e.to_string().contains("uncompressed point")
        ));
    }
    // The handles show up as persistent objects for tpm2-tools too.
    let persistent = tpm.tool(&["tpm2_getcap", "handles-persistent"]);
    assert!(persistent.contains("0x81000100") && persistent.contains("0x81000101"));
    evict_persistent_key(&tcti, 0x8100_0101).unwrap();
    assert!(matches!(
        TpmEcdhKey::open(&format!("tpm2:handle=0x81000101;tcti={tcti}")),
        Err(TpmError::NoKeyAtHandle {
            handle: 0x8100_0101
        })
    ));
}

#[test]
fn a_bundle_cms_encrypted_to_the_tpm_key_decrypts_through_the_tpm() {
    let tpm = Swtpm::start();
    let tcti = tpm.tcti();
    let spki = create_persistent_ecdh_key(&tcti, EcCurve::P256, 0x8100_0200).unwrap();
    let ca = Ca::new();
    let cert = ca.certify(&spki, "TPM device 1");
    let cert_path = tpm.dir().join("device.pem");
    std::fs::write(&cert_path, cert.to_pem().unwrap()).unwrap();

    // The TPM device among other devices (P-256 and P-384 software keys).
    let mut recipients = vec![Recipient::from_der(&cert.to_der().unwrap()).unwrap()];
    for (i, nid) in [Nid::X9_62_PRIME256V1, Nid::SECP384R1, Nid::X9_62_PRIME256V1]
        .iter()
        .enumerate()
    {
        let k = EcKey::generate(&EcGroup::from_curve_name(*nid).unwrap()).unwrap();
        let spki = PKey::from_ec_key(k).unwrap().public_key_to_der().unwrap();
        let c = ca.certify(&spki, &format!("other {i}"));
        recipients.push(Recipient::from_der(&c.to_der().unwrap()).unwrap());
    }
    recipients.rotate_left(2); // the TPM device somewhere in the middle
    let signed_data: Vec<u8> = (0..3000u32).map(|i| (i * 13) as u8).collect();

    let spec = format!(
        "tpm2:handle=0x81000200;tcti={tcti};cert={}",
        cert_path.display()
    );
    let with_cert = TpmEcdhKey::open(&spec).unwrap();
    assert_eq!(with_cert.certificate_der(), Some(cert.to_der().unwrap()));
    let bare = TpmEcdhKey::open(&format!("tpm2:handle=0x81000200;tcti={tcti}")).unwrap();
    for options in [EncryptOptions::default(), EncryptOptions::compact_ski()] {
        let env = encrypt(&signed_data, &recipients, &options).unwrap();
        let out = decrypt(&env, &with_cert).unwrap();
        assert_eq!(out.as_slice(), signed_data.as_slice(), "{options:?}");
        let out = decrypt(&env, &bare).unwrap();
        assert_eq!(
            out.as_slice(),
            signed_data.as_slice(),
            "{options:?} without certificate"
        );
    }
    assert_eq!(tpm.transient_handles(), "");

    // Without tcti= in the spec the TCTI comes from TPM2TOOLS_TCTI (as for tpm2-tools).
    // SAFETY: nextest runs each test in its own process; no other thread reads the variable.
    unsafe { std::env::set_var("TPM2TOOLS_TCTI", &tcti) };
    let from_env = TpmEcdhKey::open("tpm2:handle=0x81000200").unwrap();
    assert_eq!(from_env.public_key_spki(), spki.as_slice());
}

#[test]
fn ek_certificate_is_read_from_nv_with_its_fingerprint() {
    let tpm = Swtpm::start();
    let tcti = tpm.tcti();
    // Plain swtpm has no EK certificate.
    assert!(read_ek_certificate(&tcti).unwrap().is_none());
    // Provision one at the ECC P-256 EK certificate index, as a manufacturer would.
    let ca = Ca::new();
    let k = EcKey::generate(&EcGroup::from_curve_name(Nid::X9_62_PRIME256V1).unwrap()).unwrap();
    let ek = ca.certify(
        &PKey::from_ec_key(k).unwrap().public_key_to_der().unwrap(),
        "EK",
    );
    let der = ek.to_der().unwrap();
    let file = tpm.dir().join("ek.der");
    std::fs::write(&file, &der).unwrap();
    let index = format!("{EK_CERT_NV_ECC_P256:#x}");
    let size = (der.len() + 16).to_string(); // padded, like some TPMs store it
    tpm.tool(&[
        "tpm2_nvdefine",
        &index,
        "-C",
        "o",
        "-s",
        &size,
        "-a",
        "ownerread|ownerwrite|authread|no_da",
    ]);
    tpm.tool(&[
        "tpm2_nvwrite",
        &index,
        "-C",
        "o",
        "-i",
        file.to_str().unwrap(),
    ]);
    let got = read_ek_certificate(&tcti)
        .unwrap()
        .expect("EK certificate present");
    assert_eq!(got.nv_index, EK_CERT_NV_ECC_P256);
    assert_eq!(got.der, der);
    let expected = ek.digest(openssl::hash::MessageDigest::sha256()).unwrap();
    let expected: Vec<String> = expected.iter().map(|b| format!("{b:02X}")).collect();
    assert_eq!(got.fingerprint(), expected.join(":"));
    assert_eq!(tpm.transient_handles(), "");
}

#[test]
fn missing_tpm_gives_a_clear_error() {
    // Nothing listens on this port.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let e = TpmEcdhKey::open(&format!(
        "tpm2:handle=0x81000100;tcti=swtpm:host=127.0.0.1,port={port}"
    ))
    .unwrap_err();
    assert!(matches!(e, TpmError::Tcti { .. }), "{e}");
}
