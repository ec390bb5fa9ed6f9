//! The end of a parallel upload: the final upload (`Upload-Concat: final;<urls>`) made of the
//! partial uploads, and finding one an earlier run already made.

use reqwest::Url;

use crate::ClientError;
use crate::http::Failure;
use crate::transfer::Context;

/// POST the final upload of `partials` (in file order) with the metadata; its URL, saved.
pub(crate) async fn create_final(ctx: &Context, partials: &[Url]) -> Result<Url, ClientError> {
    let list: Vec<&str> = partials.iter().map(Url::as_str).collect();
    let concat = format!("final;{}", list.join(" "));
    let mut retrier = ctx.retrier();
    loop {
        match ctx
            .client
            .create(&ctx.endpoint, None, Some(&ctx.metadata), Some(&concat))
            .await
        {
            Ok(url) => {
                ctx.update_state(|s| s.final_url = Some(url.to_string()))?;
                return Ok(url);
            }
            Err(Failure::Transient {
                reason,
                retry_after,
            }) => {
                retrier
                    .failed(&reason, retry_after, ctx.progress.as_ref())
                    .await?
            }
            Err(Failure::Lost { status }) => {
                return Err(ClientError::Refused {
                    method: "POST",
                    status,
                    message: "the final upload was refused".into(),
                });
            }
            Err(Failure::Fatal(err)) => return Err(err),
        }
    }
}

/// The final upload an earlier run created, if the server holds it complete (`length`
/// bytes); `None` if it does not (then it is made again from the partial uploads).
pub(crate) async fn saved_final(
    ctx: &Context,
    url: &str,
    length: u64,
) -> Result<Option<Url>, ClientError> {
    let Ok(url) = Url::parse(url) else {
        return Ok(None);
    };
    let mut retrier = ctx.retrier();
    loop {
        match ctx.client.head(&url).await {
            Ok(head) if head.offset == length && head.length.is_none_or(|l| l == length) => {
                return Ok(Some(url));
            }
            Ok(_) | Err(Failure::Lost { .. }) => {
                ctx.update_state(|s| s.final_url = None)?;
                return Ok(None);
            }
            Err(Failure::Transient {
                reason,
                retry_after,
            }) => {
                retrier
                    .failed(&reason, retry_after, ctx.progress.as_ref())
                    .await?
            }
            Err(Failure::Fatal(err)) => return Err(err),
        }
    }
}
