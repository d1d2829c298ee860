//! The reconciliation rules as a table: inventory state × token state → finding, action.

use super::*;
use crate::process::Liveness::{Alive, Dead, OtherHost};

const K: Digest = [1; 32];
const K2: Digest = [2; 32];
const C: Digest = [3; 32];
const C2: Digest = [4; 32];

fn token(private: bool, public: bool, spki: Option<Digest>, certs: &[Digest]) -> TokenView {
    TokenView {
        private_key: private,
        any_object: private || public,
        key_spki: spki,
        certificates: certs.to_vec(),
        debris: false,
    }
}

fn with_debris(mut view: TokenView) -> TokenView {
    view.debris = true;
    view
}

fn empty() -> TokenView {
    token(false, false, None, &[])
}

fn pending(stage: IntentStage, owner: Liveness, cert: Option<(Digest, Digest)>) -> InventoryView {
    InventoryView::Pending { stage, owner, cert }
}

fn recorded(status: DeviceStatus) -> InventoryView {
    InventoryView::Recorded {
        status,
        spki: K,
        cert: C,
    }
}

use IntentStage::{CertIssued, Recorded};

#[test]
fn reconciliation_table() {
    let rec = |o| pending(Recorded, o, None);
    let issued = |o| pending(CertIssued, o, Some((K, C)));
    #[rustfmt::skip]
    let table: Vec<(&str, InventoryView, TokenView, bool, Finding, Action)> = vec![
        // -- nothing recorded
        ("absent, empty token", InventoryView::Absent, empty(), false, Finding::NotRecorded, Action::Nothing),
        ("absent, foreign key", InventoryView::Absent, token(true, true, Some(K), &[]), false, Finding::NotRecorded, Action::Report),
        // -- intents owned by someone alive are left alone
        ("recorded, owner alive", rec(Alive), empty(), false, Finding::InProgress, Action::Wait),
        ("issued, owner alive", issued(Alive), token(true, true, Some(K), &[]), true, Finding::InProgress, Action::Wait),
        ("recorded, other host", rec(OtherHost), empty(), false, Finding::InProgress, Action::Wait),
        ("recorded, other host, takeover", rec(OtherHost), empty(), true, Finding::InterruptedBeforeKey, Action::DropIntent),
        // -- stage recorded: roll back whatever the dead run left
        ("recorded, died before keygen", rec(Dead), empty(), false, Finding::InterruptedBeforeKey, Action::DropIntent),
        ("recorded, died after keygen", rec(Dead), token(true, true, Some(K), &[]), false, Finding::InterruptedAfterKey, Action::RollBack),
        ("recorded, only a public key", rec(Dead), token(false, true, Some(K), &[]), false, Finding::InterruptedAfterKey, Action::RollBack),
        ("recorded, stray certificate", rec(Dead), token(false, false, None, &[C]), false, Finding::InterruptedAfterKey, Action::RollBack),
        ("recorded, only debris of keygen", rec(Dead), with_debris(empty()), false, Finding::InterruptedAfterKey, Action::RollBack),
        // -- stage cert-issued: roll forward if the certified key is there
        ("issued, cert not yet written", issued(Dead), token(true, true, Some(K), &[]), false, Finding::InterruptedAfterCertificate, Action::WriteCertificateAndComplete),
        ("issued, cert written", issued(Dead), token(true, true, Some(K), &[C]), false, Finding::InterruptedAfterCertificate, Action::Complete),
        ("issued, cert write cut short", issued(Dead), with_debris(token(true, true, Some(K), &[])), false, Finding::InterruptedAfterCertificate, Action::WriteCertificateAndComplete),
        ("issued, other cert under id", issued(Dead), token(true, true, Some(K), &[C2]), false, Finding::InterruptedAfterCertificate, Action::WriteCertificateAndComplete),
        ("issued, two certs under id", issued(Dead), token(true, true, Some(K), &[C, C2]), false, Finding::InterruptedAfterCertificate, Action::WriteCertificateAndComplete),
        ("issued, key gone", issued(Dead), empty(), false, Finding::CertifiedKeyLost, Action::RollBack),
        ("issued, key gone, cert left", issued(Dead), token(false, true, Some(K), &[C]), false, Finding::CertifiedKeyLost, Action::RollBack),
        ("issued, other key", issued(Dead), token(true, true, Some(K2), &[]), false, Finding::KeyMismatch, Action::RollBack),
        ("issued, key not exposed", issued(Dead), token(true, false, None, &[]), false, Finding::KeyUnverifiable, Action::RollBack),
        ("issued without cert bytes", pending(CertIssued, Dead, None), token(true, true, Some(K), &[]), false, Finding::InterruptedAfterKey, Action::RollBack),
        // -- recorded devices: never deleted; certificates rewritten, key problems reported
        ("active, consistent", recorded(DeviceStatus::Active), token(true, true, Some(K), &[C]), false, Finding::Consistent, Action::Nothing),
        ("active, consistent with debris", recorded(DeviceStatus::Active), with_debris(token(true, true, Some(K), &[C])), false, Finding::Debris, Action::RemoveDebris),
        ("active, cert missing, debris", recorded(DeviceStatus::Active), with_debris(token(true, true, Some(K), &[])), false, Finding::CertificateMissing, Action::RewriteCertificate),
        ("absent, debris", InventoryView::Absent, with_debris(empty()), false, Finding::NotRecorded, Action::Report),
        ("active, cert missing", recorded(DeviceStatus::Active), token(true, true, Some(K), &[]), false, Finding::CertificateMissing, Action::RewriteCertificate),
        ("active, other cert", recorded(DeviceStatus::Active), token(true, true, Some(K), &[C2]), false, Finding::CertificateMismatch, Action::RewriteCertificate),
        ("active, extra cert", recorded(DeviceStatus::Active), token(true, true, Some(K), &[C, C2]), false, Finding::CertificateMismatch, Action::RewriteCertificate),
        ("active, key missing", recorded(DeviceStatus::Active), token(false, false, None, &[C]), false, Finding::KeyMissing, Action::Report),
        ("active, empty token", recorded(DeviceStatus::Active), empty(), false, Finding::KeyMissing, Action::Report),
        ("active, other key", recorded(DeviceStatus::Active), token(true, true, Some(K2), &[C]), false, Finding::KeyMismatch, Action::Report),
        ("active, key not exposed", recorded(DeviceStatus::Active), token(true, false, None, &[C]), false, Finding::KeyUnverifiable, Action::Report),
        ("revoked", recorded(DeviceStatus::Revoked), empty(), false, Finding::Inactive(DeviceStatus::Revoked), Action::Nothing),
        ("retired", recorded(DeviceStatus::Retired), token(true, true, Some(K), &[C]), false, Finding::Inactive(DeviceStatus::Retired), Action::Nothing),
    ];
    for (name, inv, tok, takeover, finding, action) in table {
        assert_eq!(assess(&inv, &tok, takeover), (finding, action), "{name}");
    }
}

#[test]
fn token_view_filters_by_id() {
    let id = KeyId::from_bytes(vec![1, 2]);
    let other = KeyId::from_bytes(vec![9]);
    let cert = b"certificate".to_vec();
    let obj = |class, id: &KeyId, spki: Option<Digest>, certificate: Option<Vec<u8>>| TokenObject {
        class,
        id: id.clone(),
        label: "l".into(),
        spki_sha256: spki,
        certificate,
    };
    let objects = vec![
        obj(ObjectClass::PrivateKey, &id, None, None),
        obj(ObjectClass::PublicKey, &id, Some(K), None),
        obj(ObjectClass::Certificate, &id, None, Some(cert.clone())),
        obj(ObjectClass::PrivateKey, &other, Some(K2), None),
        obj(ObjectClass::Certificate, &other, None, Some(b"x".to_vec())),
    ];
    let view = TokenView::of(&objects, &id, "l");
    assert_eq!(
        view,
        token(true, true, Some(K), &[openssl::sha::sha256(&cert)])
    );
    assert_eq!(
        TokenView::of(&objects, &KeyId::from_bytes(vec![7]), "l"),
        empty()
    );
    // Objects without an id are debris when unlabelled or labelled like the device's key.
    let none = KeyId::from_bytes(vec![]);
    let mut cut_short = objects.clone();
    cut_short.push(TokenObject {
        label: String::new(),
        ..obj(ObjectClass::Certificate, &none, None, Some(vec![]))
    });
    assert!(TokenView::of(&cut_short, &id, "l").debris);
    let labelled = vec![obj(ObjectClass::PrivateKey, &none, None, None)];
    assert!(TokenView::of(&labelled, &id, "l").debris);
    assert!(!TokenView::of(&labelled, &id, "other").debris);
    let data = vec![TokenObject {
        label: String::new(),
        ..obj(ObjectClass::Other, &none, None, None)
    }];
    assert!(!TokenView::of(&data, &id, "l").debris);
}

#[test]
fn only_changes_are_repairs() {
    use Action::*;
    for a in [
        DropIntent,
        RollBack,
        WriteCertificateAndComplete,
        Complete,
        RewriteCertificate,
        RemoveDebris,
    ] {
        assert!(a.is_repair(), "{a:?}");
    }
    for a in [Nothing, Wait, Report] {
        assert!(!a.is_repair(), "{a:?}");
    }
}

#[test]
fn provision_step_table() {
    use ProvisionStep::*;
    #[rustfmt::skip]
    let table = [
        ("nothing recorded", InventoryView::Absent, Start),
        ("active device: report, change nothing", recorded(DeviceStatus::Active), Report),
        ("revoked device: report, change nothing", recorded(DeviceStatus::Revoked), Report),
        ("retired device: report, change nothing", recorded(DeviceStatus::Retired), Report),
        ("run in progress here", pending(Recorded, Alive, None), Busy),
        ("run in progress elsewhere", pending(CertIssued, OtherHost, Some((K, C))), Busy),
        ("dead run, stage recorded", pending(Recorded, Dead, None), RepairFirst),
        ("dead run, stage cert-issued", pending(CertIssued, Dead, Some((K, C))), RepairFirst),
    ];
    for (name, view, step) in table {
        assert_eq!(provision_step(&view), step, "{name}");
    }
}
