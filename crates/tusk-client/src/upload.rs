//! [`upload`]: options checked, state found or started, parts sent, state removed.

use std::sync::{Arc, Mutex};

use futures_util::future::try_join_all;
use reqwest::Url;

use crate::http::{Capabilities, Client, Failure, parse_headers};
use crate::state::{self, FileIdentity, Loaded, Saved};
use crate::transfer::{Context, PartRun, Tracker};
use crate::{ClientError, Progress, Protocol, UploadOptions, Uploaded, metadata, parallel};

/// Upload `options.file` to the collection `options.endpoint` with `options.protocol`,
/// resuming the upload an earlier run saved in the state file if the server still has it and
/// the file did not change; report to `progress`. On success the state file is removed.
pub async fn upload(
    options: UploadOptions,
    progress: Arc<dyn Progress>,
) -> Result<Uploaded, ClientError> {
    let usage = |text: &str| Err(ClientError::Usage(text.to_owned()));
    let endpoint = match Url::parse(&options.endpoint) {
        Ok(url) if matches!(url.scheme(), "http" | "https") => url,
        Ok(_) => return usage("the URL must be http:// or https://"),
        Err(err) => return usage(&format!("{:?} is not a URL ({err})", options.endpoint)),
    };
    if options.parallel == 0 {
        return usage("--parallel must be at least 1");
    }
    let protocol = options.protocol;
    if options.parallel > 1 && !protocol.concatenates() {
        // Refused rather than quietly slower: the user asked for something this protocol
        // cannot do, and tus can.
        return usage(
            "--parallel needs tus's concatenation, which the IETF draft does not have: \
             drop --parallel to upload in one stream with --ietf, or drop --ietf",
        );
    }
    if options.chunk_size == Some(0) {
        return usage("--chunk-size must be at least 1 byte");
    }
    if options.timeout.is_zero() {
        return usage("--timeout must be longer than 0");
    }
    let metadata = metadata::for_file(&options.file, &options.metadata)?;
    let client = Client::new(protocol, parse_headers(&options.headers)?, options.timeout)?;
    let identity = FileIdentity::of(&options.file)?;
    let state_path = match &options.state_file {
        Some(path) => path.clone(),
        None => state::default_dir(std::env::var_os("XDG_STATE_HOME"), std::env::var_os("HOME"))
            .ok_or_else(|| {
                ClientError::Usage(
                    "no state directory: set XDG_STATE_HOME or HOME, or give --state-file".into(),
                )
            })?
            .join(format!(
                "{}.json",
                state::state_key(endpoint.as_str(), &identity, protocol)
            )),
    };

    let saved = match state::load(&state_path, endpoint.as_str(), &identity, protocol)? {
        Loaded::Found(saved) => Some(saved),
        Loaded::Absent => None,
        Loaded::Unusable(why) => {
            progress.notice(&format!(
                "ignoring state file {}: {why}; starting a new upload",
                state_path.display()
            ));
            None
        }
    };
    let wants_parallel = saved.is_none() && options.parallel > 1;
    let wants_checksum = options.checksum && options.chunk_size.is_some();
    let capabilities = match protocol {
        Protocol::IetfDraft => Capabilities::of_draft(),
        Protocol::Tus if wants_parallel || wants_checksum => {
            capabilities(&client, &endpoint, &options, progress.as_ref()).await?
        }
        Protocol::Tus => Capabilities::default(),
    };
    let resumed = saved.is_some();
    let saved = match saved {
        Some(saved) => saved,
        None => {
            let mut parts = options.parallel;
            if parts > 1 && !capabilities.concatenation {
                progress.notice(
                    "the server does not offer the concatenation extension; uploading in one stream",
                );
                parts = 1;
            }
            Saved::new(endpoint.as_str(), protocol, identity.clone(), parts)
        }
    };
    let parts = saved.parts.len();
    let length = identity.size;
    let ctx = Context {
        client,
        progress: progress.clone(),
        tracker: Arc::new(Tracker::new(parts, progress.clone())),
        file: options.file.clone(),
        identity,
        endpoint,
        metadata,
        chunk_size: options.chunk_size,
        checksum: wants_checksum && capabilities.checksum,
        policy: options.retry,
        max_retries: options.max_retries,
        state_path: state_path.clone(),
        saved: Mutex::new(saved),
    };
    let url = send(&ctx, length).await?;
    state::remove(&state_path)?;
    progress.finished(url.as_str());
    Ok(Uploaded {
        url: url.to_string(),
        length,
        resumed,
    })
}

/// Send every part, then (parallel) concatenate them.
async fn send(ctx: &Context, length: u64) -> Result<Url, ClientError> {
    let (parts, final_url) = {
        let saved = ctx
            .saved
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        (saved.parts.len(), saved.final_url.clone())
    };
    let partial = parts > 1;
    if let Some(url) = final_url
        && let Some(url) = parallel::saved_final(ctx, &url, length).await?
    {
        ctx.progress
            .notice(&format!("an earlier run already finished {url}"));
        ctx.tracker.start(length);
        return Ok(url);
    }
    let mut runs = (0..parts)
        .map(|i| PartRun::new(ctx, i, partial))
        .collect::<Result<Vec<_>, _>>()?;
    let saved = runs.iter().filter(|r| r.was_saved()).count();
    if saved > 0 {
        ctx.progress.notice(&format!(
            "resuming the upload saved in {}",
            ctx.state_path.display()
        ));
    }
    if partial {
        ctx.progress
            .notice(&format!("uploading in {parts} partial uploads at once"));
    }
    try_join_all(runs.iter_mut().map(PartRun::sync)).await?;
    ctx.tracker.start(length);
    let urls = try_join_all(runs.iter_mut().map(PartRun::run)).await?;
    match urls.as_slice() {
        [url] if !partial => Ok(url.clone()),
        _ => parallel::create_final(ctx, &urls).await,
    }
}

/// OPTIONS on the collection, retried like any request.
async fn capabilities(
    client: &Client,
    endpoint: &Url,
    options: &UploadOptions,
    progress: &dyn Progress,
) -> Result<Capabilities, ClientError> {
    let mut retrier = crate::retry::Retrier::new(options.retry, options.max_retries);
    loop {
        match client.options(endpoint).await {
            Ok(capabilities) => return Ok(capabilities),
            Err(Failure::Transient {
                reason,
                retry_after,
            }) => retrier.failed(&reason, retry_after, progress).await?,
            Err(Failure::Lost { .. }) => return Ok(Capabilities::default()),
            Err(Failure::Fatal(err)) => return Err(err),
        }
    }
}
