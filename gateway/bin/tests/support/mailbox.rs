//! The mailbox relay's test helpers: bundles to send, batches as the verifier takes them, and
//! every device's mailbox read back and verified.

use std::collections::HashMap;

use mailbox::service::{BatchT, FetchRequestT, KeysRequestT, MailboxClient, PartT, SendRequestT};
use mailbox::{Delivered, DeviceVerifier, KeyRing, SeqId, Signed};

/// A bundle of `common` to `recipients`, each part naming its recipient.
pub(crate) fn bundle(recipients: &[&str], common: &str) -> SendRequestT {
    SendRequestT {
        recipients: recipients.iter().map(|r| (*r).to_owned()).collect(),
        common: Some(common.as_bytes().to_vec()),
        parts: recipients
            .iter()
            .map(|r| PartT { bytes: Some(format!("{common}, for {r}").into_bytes()) })
            .collect(),
    }
}

pub(crate) fn id(bytes: &[u8]) -> SeqId {
    SeqId::from_bytes(bytes.try_into().expect("16 bytes"))
}

/// A batch as the API carries it, as the verifier takes it.
pub(crate) fn decoded(batch: &BatchT) -> (Signed, Vec<Delivered>) {
    let attestation = Signed::decode(&batch.attestation).expect("a signed attestation");
    let messages = batch
        .messages
        .iter()
        .map(|m| Delivered {
            id: id(&m.id),
            bundle: id(&m.bundle),
            recipients: m.recipients.clone().into(),
            common: m.common.clone().unwrap_or_default().into(),
            part: m.part.clone().unwrap_or_default().into(),
        })
        .collect();
    (attestation, messages)
}

/// The shards' public keys, as `keys` returns them.
pub(crate) async fn key_ring<T: gateway_core::Transport>(mailbox: &MailboxClient<T>) -> KeyRing {
    let keys = mailbox.keys(KeysRequestT {}).await.expect("the keys").unpack();
    let mut ring = KeyRing::new();
    for shard in &keys.shards {
        let key: [u8; 32] = shard.public_key.as_slice().try_into().expect("32 bytes");
        ring.insert(shard.shard, ed25519_dalek::VerifyingKey::from_bytes(&key).expect("a key"));
    }
    ring
}

/// Every message in the mailboxes of `devices`, fetched to the end, each device's chain verified
/// under `ring` (and, with `shards`, every batch signed by the device's own shard): (device,
/// bundle) → the bundle's common text. A message held twice panics.
pub(crate) async fn read_mailboxes<T: gateway_core::Transport>(
    mailbox: &MailboxClient<T>,
    devices: &[String],
    ring: &KeyRing,
    shards: Option<u32>,
) -> HashMap<(String, SeqId), String> {
    let mut held = HashMap::new();
    for device in devices {
        let mut verifier = DeviceVerifier::new(device, ring.clone());
        let mut after: Option<SeqId> = None;
        loop {
            let request = FetchRequestT {
                device: Some(device.clone()),
                after: after.map(|a| a.to_bytes().to_vec()),
                max_batches: 1000,
            };
            let batches = mailbox.fetch(request).await.expect("fetched").unpack().batches;
            if batches.is_empty() {
                break;
            }
            for batch in &batches {
                let (attestation, messages) = decoded(batch);
                if let Some(shards) = shards {
                    let shard = attestation.attestation().expect("an attestation").shard;
                    let owner = mailbox::hash::owner(device, shards);
                    assert_eq!(shard, owner, "{device}'s batches come from its shard");
                }
                verifier
                    .accept(&attestation, &messages)
                    .unwrap_or_else(|e| panic!("{device}: {e}"));
                for m in messages {
                    after = Some(m.id);
                    let common = String::from_utf8(m.common.to_vec()).expect("UTF-8");
                    assert!(
                        held.insert((device.clone(), m.bundle), common).is_none(),
                        "{device} got {} twice",
                        m.bundle
                    );
                }
            }
        }
    }
    held
}
