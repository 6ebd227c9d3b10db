//! The host's side of the services table handed to plugins: the job log, GitHub calls and
//! running commands. Each function copies its input, runs the work on the host's runtime and
//! returns a future that only awaits it, so plugin threads never run host code paths that need
//! the host's tokio context.
#![allow(unsafe_code)]

use std::{
    ffi::c_void,
    panic::{AssertUnwindSafe, catch_unwind},
    sync::Arc,
};

use async_ffi::FfiFuture;
use serde::{Serialize, de::DeserializeOwned};
use switchyard_plugin_api::{
    HostError, RunRequest,
    abi::{self, FfiBytes, FfiSlice, HostServices, HostVTable},
    wire::{GitHubCall, ServiceResult},
};

use crate::{github::GitHub, job_log::JobLogs, journal::JobId, process};

/// What one job's plugin call may use. Shared with the plugin as a reference-counted pointer.
pub struct JobServices {
    pub job: JobId,
    pub logs: JobLogs,
    pub github: Arc<dyn GitHub>,
    pub runtime: tokio::runtime::Handle,
}

static HOST_VTABLE: HostVTable = HostVTable {
    retain,
    release,
    log,
    github,
    run,
};

impl JobServices {
    /// The table handed to the plugin; it owns one reference to `self`.
    pub fn into_ffi(self: Arc<Self>) -> HostServices {
        HostServices {
            ctx: Arc::into_raw(self).cast(),
            vtable: &HOST_VTABLE,
        }
    }
}

/// Borrows the context as a new `Arc` without taking over the plugin's reference.
///
/// # Safety
/// `ctx` must come from `JobServices::into_ffi` and still hold a reference.
unsafe fn services(ctx: *const c_void) -> Arc<JobServices> {
    let ctx = ctx.cast::<JobServices>();
    // SAFETY: per the contract, ctx is a live Arc<JobServices> pointer.
    unsafe {
        Arc::increment_strong_count(ctx);
        Arc::from_raw(ctx)
    }
}

unsafe extern "C" fn retain(ctx: *const c_void) {
    // SAFETY: the plugin only passes back the ctx it was given, while holding a reference.
    unsafe { Arc::increment_strong_count(ctx.cast::<JobServices>()) }
}

unsafe extern "C" fn release(ctx: *const c_void) {
    // SAFETY: each HostServices value gives back exactly the one reference it owns. Dropping
    // JobServices cannot panic (it holds Arcs, a handle and a path).
    unsafe { Arc::decrement_strong_count(ctx.cast::<JobServices>()) }
}

unsafe extern "C" fn log(ctx: *const c_void, text: FfiSlice) -> FfiFuture<()> {
    let started = catch_unwind(AssertUnwindSafe(|| {
        // SAFETY: called through the table with the ctx and a slice alive for this call.
        let (services, text) = unsafe { (services(ctx), text.to_vec()) };
        let runtime = services.runtime.clone();
        abi::spawn_ffi(
            &runtime,
            async move {
                if let Err(error) = services.logs.append(services.job, &text).await {
                    tracing::warn!(job = %services.job, %error, "cannot write job log");
                }
            },
            |_| (),
        )
    }));
    started.unwrap_or_else(|_| abi::ready(()))
}

unsafe extern "C" fn github(ctx: *const c_void, request: FfiSlice) -> FfiFuture<FfiBytes> {
    // SAFETY: called through the table with the ctx and a slice alive for this call.
    unsafe {
        serve(ctx, request, |services, call: GitHubCall| async move {
            services.github.send(call).await
        })
    }
}

unsafe extern "C" fn run(ctx: *const c_void, request: FfiSlice) -> FfiFuture<FfiBytes> {
    // SAFETY: as in `github`.
    unsafe {
        serve(ctx, request, |services, request: RunRequest| async move {
            process::run(request, services.logs.clone(), services.job).await
        })
    }
}

/// The shared shape of a JSON service: copy and decode the request, run the work on the host
/// runtime, encode its result. A panic anywhere becomes an `Internal` error for the plugin.
///
/// # Safety
/// As for [`services`], and `request` must be alive for this call.
unsafe fn serve<Req, Resp, Work>(
    ctx: *const c_void,
    request: FfiSlice,
    work: impl FnOnce(Arc<JobServices>, Req) -> Work,
) -> FfiFuture<FfiBytes>
where
    Req: DeserializeOwned,
    Resp: Serialize,
    Work: Future<Output = Result<Resp, HostError>> + Send + 'static,
{
    let started = catch_unwind(AssertUnwindSafe(|| {
        // SAFETY: per this function's contract.
        let (services, bytes) = unsafe { (services(ctx), request.to_vec()) };
        let runtime = services.runtime.clone();
        let answer = match serde_json::from_slice::<Req>(&bytes) {
            Ok(request) => work(services, request),
            Err(e) => {
                let error = HostError::InvalidRequest(format!("unreadable service request: {e}"));
                return abi::ready(encode::<Resp>(Err(error)));
            }
        };
        abi::spawn_ffi(&runtime, async move { encode(answer.await) }, panicked)
    }));
    started.unwrap_or_else(|panic| abi::ready(panicked(abi::panic_message(&*panic))))
}

fn encode<T: Serialize>(result: Result<T, HostError>) -> FfiBytes {
    let result = match result {
        Ok(value) => ServiceResult::Ok(value),
        Err(error) => ServiceResult::Err(error),
    };
    FfiBytes::from_vec(abi::to_json(&result))
}

fn panicked(message: String) -> FfiBytes {
    tracing::error!(panic = %message, "host service panicked");
    encode::<()>(Err(HostError::Internal(format!(
        "host service panicked: {message}"
    ))))
}
