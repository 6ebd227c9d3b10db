//! The host's side of the services table handed to plugins: the job log, GitHub calls,
//! checkouts, locks and running commands. Each function copies its input, runs the work on the host's runtime and
//! returns a future that only awaits it, so plugin threads never run host code paths that need
//! the host's tokio context.
#![allow(unsafe_code)]

use std::{
    ffi::c_void,
    panic::{AssertUnwindSafe, catch_unwind},
    sync::Arc,
};

use async_ffi::FfiFuture;
use serde::Serialize;
use switchyard_plugin_api::{
    HostError, LockAnswer,
    abi::{self, FfiBytes, FfiSlice, HostServices, HostVTable},
    wire::{ServiceRequest, ServiceResult},
};

use crate::{
    commands::CommandService,
    github::{Caller, GitHub, posted::posted},
    job_log::JobLogs,
    journal::JobId,
    journal::PostLog,
    sandbox::{Allowance, Sandbox},
    services::checkout::Checkouts,
    services::deploys::Deploys,
    services::heads::Heads,
    services::locks::Locks,
    services::outbound::WebhookClient,
    services::process::{self, Place},
    workers::{Attempt, Cancellations},
};

/// What every job's services share.
pub struct ServiceDeps {
    pub logs: JobLogs,
    pub github: Arc<dyn GitHub>,
    /// Where what jobs post to GitHub is recorded, for the dashboard.
    pub journal: Arc<dyn PostLog>,
    pub checkouts: Checkouts,
    pub webhooks: WebhookClient,
    pub locks: Arc<Locks>,
    /// Where commands run.
    pub sandbox: Arc<Sandbox>,
    /// Environment variables holding the host's secrets, which commands must not inherit.
    pub hidden_env: Vec<String>,
    /// Cancelling and superseding jobs, on any host.
    pub cancellations: Cancellations,
    /// Comment commands' gate: permissions, acknowledgements, the reply budget.
    pub commands: Arc<CommandService>,
    /// Heads of pull requests, seen and approved (the CI runner's fork gate).
    pub heads: Arc<Heads>,
    /// The deployer's sticky locks and the deployments plugins created.
    pub deploys: Arc<Deploys>,
}

/// What one job's plugin call may use. Shared with the plugin as a reference-counted pointer,
/// which a plugin's task may keep past the attempt: every service checks the attempt first.
pub struct JobServices {
    pub attempt: Arc<Attempt>,
    /// Who its GitHub calls and checkouts act as.
    pub caller: Caller,
    /// What the plugin's entry lets its commands have (network, binds, passed variables).
    pub allowance: Arc<Allowance>,
    pub deps: Arc<ServiceDeps>,
    pub runtime: tokio::runtime::Handle,
}

static HOST_VTABLE: HostVTable = HostVTable {
    retain,
    release,
    log,
    request,
};

impl JobServices {
    /// The table handed to the plugin; it owns one reference to `self`.
    pub fn into_ffi(self: Arc<Self>) -> HostServices {
        HostServices {
            ctx: Arc::into_raw(self).cast(),
            vtable: &HOST_VTABLE,
        }
    }

    /// Serves a request while the attempt lasts: refused once it ended, and dropped (its
    /// command killed, its lock wait given up) if it ends meanwhile.
    async fn serve(&self, request: ServiceRequest) -> FfiBytes {
        let attempt = &self.attempt;
        if attempt.has_ended() {
            return encode::<()>(Err(HostError::JobEnded));
        }
        if let ServiceRequest::Cancelled = request {
            return tokio::select! {
                reason = attempt.cancelled() => encode(Ok(reason)),
                () = attempt.ended() => encode::<()>(Err(HostError::JobEnded)),
            };
        }
        tokio::select! {
            answer = self.work(request) => answer,
            () = attempt.ended() => encode::<()>(Err(HostError::JobEnded)),
        }
    }

    /// Where this job's commands run, with `workspace` as their folder.
    fn place<'a>(&'a self, workspace: &'a std::path::Path) -> Place<'a> {
        Place {
            sandbox: &self.deps.sandbox,
            allowance: &self.allowance,
            workspace,
            hidden_env: &self.deps.hidden_env,
            disk_mib: self.deps.checkouts.disk_limit(self.allowance.disk_mib),
        }
    }

    async fn work(&self, request: ServiceRequest) -> FfiBytes {
        let deps = &self.deps;
        let job = self.attempt.job;
        match request {
            ServiceRequest::Github(call) => {
                let answer = deps.github.send(call.clone(), &self.caller).await;
                // Recorded before the plugin hears back, so a deployment is in the journal
                // before any status of it.
                if let Some(post) = answer.as_ref().ok().and_then(|a| posted(job, &call, a))
                    && let Err(error) = deps.journal.record_post(post).await
                {
                    tracing::warn!(%job, error = error.to_string(), "cannot record what a job posted to GitHub");
                }
                encode(answer)
            }
            ServiceRequest::Run(request) => {
                let run = async {
                    let workspace = deps
                        .checkouts
                        .ensure(
                            job,
                            deps.sandbox.run_as(),
                            self.allowance.disk_mib,
                            &deps.logs,
                        )
                        .await?;
                    let fork = request.untrusted.then(|| self.allowance.for_fork());
                    let mut place = self.place(&workspace);
                    if let Some(fork) = &fork {
                        place.allowance = fork;
                    }
                    process::run(request, deps.logs.clone(), job, &place).await
                };
                encode(run.await)
            }
            ServiceRequest::Checkout(request) => {
                let checkout = async {
                    // A token only for the configured GitHub: none is minted for a mirror.
                    let token = match deps.checkouts.wants_credentials(&request.clone_url) {
                        true => deps.github.git_token(&self.caller).await?,
                        false => None,
                    };
                    let local = deps.checkouts.local_origin(
                        &request.clone_url,
                        self.allowance.clone_url.as_deref(),
                        self.caller.repository.as_deref(),
                    )?;
                    let workspace = deps.checkouts.workspace(job);
                    let place = self.place(&workspace);
                    deps.checkouts
                        .checkout(request, &deps.logs, job, place, token.as_deref(), local)
                        .await
                };
                encode(checkout.await)
            }
            ServiceRequest::HttpPost(post) => encode(deps.webhooks.post(post).await),
            ServiceRequest::Lock(request) => {
                let acquired = deps
                    .locks
                    .acquire(&request.name, job, self.attempt.number, request.wait)
                    .await;
                encode(
                    acquired
                        .map(|acquired| LockAnswer { acquired })
                        .map_err(|e| HostError::Internal(format!("lock {:?}: {e}", request.name))),
                )
            }
            ServiceRequest::Supersede(request) => encode(
                deps.cancellations
                    .supersede(&self.caller.plugin, &request.line, job, &request.sha)
                    .await,
            ),
            ServiceRequest::LatestOfLine(request) => encode(
                deps.cancellations
                    .latest_of_line(&self.caller.plugin, &request.line)
                    .await,
            ),
            ServiceRequest::RecordHead(note) => encode(deps.heads.record(job, note).await),
            ServiceRequest::Heads(request) => {
                encode(deps.heads.read(&request.repository, request.number).await)
            }
            ServiceRequest::Deploys(request) => {
                encode(deps.deploys.serve(job, &self.caller, request).await)
            }
            ServiceRequest::CancelJob(request) => encode(
                deps.cancellations
                    .request_for_plugin(&self.caller.plugin, JobId(request.job), request.by)
                    .await,
            ),
            ServiceRequest::Reply(reply) => encode(
                crate::commands::reply_for_plugin(&*deps.github, &self.caller, &reply.body).await,
            ),
            ServiceRequest::React(reaction) => encode(
                crate::commands::react_for_plugin(&*deps.github, &self.caller, &reaction.content)
                    .await,
            ),
            // Answered by `serve` before any work starts.
            ServiceRequest::Cancelled => encode::<()>(Err(HostError::Internal(
                "cancellation asked for as work".to_owned(),
            ))),
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
                let job = services.attempt.job;
                // An ended attempt's log is closed: a late line would land after its end.
                if services.attempt.has_ended() {
                    tracing::debug!(%job, "log line after the attempt ended dropped");
                    return;
                }
                if let Err(error) = services.deps.logs.append(job, &text).await {
                    tracing::warn!(%job, error = error.to_string(), "cannot write job log");
                }
            },
            |_| (),
        )
    }));
    started.unwrap_or_else(|_| abi::ready(()))
}

unsafe extern "C" fn request(ctx: *const c_void, request: FfiSlice) -> FfiFuture<FfiBytes> {
    let started = catch_unwind(AssertUnwindSafe(|| {
        // SAFETY: called through the table with the ctx and a slice alive for this call.
        let (services, bytes) = unsafe { (services(ctx), request.to_vec()) };
        let request = match serde_json::from_slice::<ServiceRequest>(&bytes) {
            Ok(request) => request,
            Err(e) => {
                // Also what a plugin built against a newer API gets for a service this host
                // does not offer.
                let error = HostError::InvalidRequest(format!("unreadable service request: {e}"));
                return abi::ready(encode::<()>(Err(error)));
            }
        };
        let runtime = services.runtime.clone();
        abi::spawn_ffi(
            &runtime,
            async move { services.serve(request).await },
            panicked,
        )
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
    tracing::error!(panic = message.as_str(), "host service panicked");
    encode::<()>(Err(HostError::Internal(format!(
        "host service panicked: {message}"
    ))))
}
