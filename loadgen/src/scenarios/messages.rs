//! The Paxos seed: messages stored under their SHA-256 digest.

use goose::prelude::*;
use rand::Rng;
use sha2::{Digest, Sha256};

use crate::request::{Call, fail, send};

/// POST a new message, check its digest, then GET it back.
pub async fn post_then_get(user: &mut GooseUser) -> TransactionResult {
    let message = format!("loadgen says {:016x}", rand::rng().random::<u64>());
    let digest = hex(&Sha256::digest(message.as_bytes()));
    let body = serde_json::json!({ "message": message }).to_string();
    let mut posted = send(
        user,
        Call::post("/messages", "/messages")
            .body("application/json", body)
            .expect(201),
    )
    .await?;
    if posted.status != Some(201) {
        return Ok(());
    }
    if posted.field("digest").as_deref() != Some(digest.as_str()) {
        return fail(user, &mut posted, "the digest is not the message's SHA-256");
    }
    let path = format!("/messages/{digest}");
    let mut fetched = send(user, Call::get("/messages/{digest}", &path).expect(200)).await?;
    if fetched.status == Some(200) && fetched.field("message").as_deref() != Some(message.as_str())
    {
        return fail(user, &mut fetched, "a different message came back");
    }
    Ok(())
}

/// GET a digest nobody stored: 404.
pub async fn get_unknown(user: &mut GooseUser) -> TransactionResult {
    let digest = hex(&rand::rng().random::<[u8; 32]>());
    let path = format!("/messages/{digest}");
    send(user, Call::get("/messages/{digest}", &path).expect(404)).await?;
    Ok(())
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
