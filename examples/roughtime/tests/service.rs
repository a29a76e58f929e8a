//! The Roughtime service through its generated dispatcher: every answer verifies, calls that
//! arrive together share a signature, and a bad nonce is an invalid argument.

use gateway_core::{CallContext, Code, Dispatch, Message};
use roughtime::keys::LongTermKey;
use roughtime::protocol::Version;
use roughtime::service::examples::roughtime::roughtime::method;
use roughtime::service::{
    EmptyT, PublicKeyT, RoughtimeServer, ServiceConfig, TimeReplyT, TimeRequestT, TimeService,
};
use roughtime::verify::verify;
use roughtime::wire::{Message as Rt, Tag, unframe};

fn service() -> (TimeService, [u8; 32]) {
    let key = LongTermKey::from_seed(&[41; 32]);
    let public = key.public();
    (TimeService::start(key, ServiceConfig::default()).expect("starts"), public)
}

async fn call(
    server: &RoughtimeServer<TimeService>,
    nonce: Vec<u8>,
    draft: bool,
) -> Result<TimeReplyT, gateway_core::Status> {
    let request = Message::pack(&TimeRequestT { nonce, draft }).into_bytes();
    let reply = server.dispatch(CallContext::new(method::TIME), request).await?;
    Ok(Message::<TimeReplyT>::from_bytes(reply).expect("a reply").get().unpack())
}

/// 64 calls at once, all verified; most of the time they take a handful of batches. Whether they
/// share one depends on the scheduler: on a loaded machine the batching thread, woken by the
/// first call, can take the core from the caller and sign each call before the next is queued.
/// So the calls go out in up to 5 waves, and sharing must show in one of them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calls_arriving_together_share_a_signature_and_every_answer_verifies() {
    let (service, public) = service();
    let server = std::sync::Arc::new(RoughtimeServer::new(service.clone()));
    let mut batches_per_wave = Vec::new();
    for _ in 0..5 {
        let before = service.batches();
        let calls = (0..64u8).map(|i| {
            let server = server.clone();
            async move { (i, call(&server, vec![i; 32], i % 4 == 0).await.expect("answered")) }
        });
        let replies = futures::future::join_all(calls).await;
        for (i, reply) in &replies {
            let verified = verify(&reply.request, &reply.response, &public).expect("valid");
            assert_eq!(verified.version, if i % 4 == 0 { Version::Draft } else { Version::Rfc });
            let request = Rt::parse(unframe(&reply.request).expect("packet")).expect("message");
            assert_eq!(
                request.get(Tag::NONC),
                Some(&[*i; 32][..]),
                "the request carries the caller's nonce"
            );
        }
        batches_per_wave.push(service.batches() - before);
        if batches_per_wave.last() < Some(&64) {
            break;
        }
    }
    assert!(
        batches_per_wave.iter().any(|&batches| batches < 64),
        "every wave of 64 calls took 64 batches: {batches_per_wave:?}"
    );

    let key = server
        .dispatch(CallContext::new(method::PUBLIC_KEY), Message::pack(&EmptyT {}).into_bytes())
        .await
        .expect("answered");
    assert_eq!(
        Message::<PublicKeyT>::from_bytes(key).expect("a reply").get().unpack().key,
        public.to_vec()
    );
}

#[tokio::test]
async fn a_nonce_that_is_not_32_bytes_is_an_invalid_argument() {
    let (service, _) = service();
    let server = RoughtimeServer::new(service);
    let status = call(&server, vec![1; 31], false).await.expect_err("refused");
    assert_eq!(status.code(), Code::InvalidArgument);
    assert!(status.message().contains("32 bytes, not 31"), "{}", status.message());
}
