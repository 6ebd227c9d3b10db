//! The C boundary between the host and a plugin library. Plugin authors never see this module.
//!
//! Across it travel only bytes, `#[repr(C)]` structs, `extern "C"` function pointers and
//! completion futures (`async_ffi::FfiFuture`): each side runs its own code on its own tokio
//! runtime, with its own copy of std. No panic crosses: every function here runs under
//! `catch_unwind`, and whoever allocates a buffer also frees it (`FfiBytes` carries its free
//! function). Everything that is not a fixed-size field travels as JSON (see `wire`).
#![allow(unsafe_code)]

use std::{
    ffi::c_void,
    future::Future,
    panic::{AssertUnwindSafe, catch_unwind},
    sync::Arc,
};

use async_ffi::{FfiFuture, FutureExt as _};

use crate::{
    Host, Plugin, PluginConfig, PluginError,
    event::Event,
    wire::{CallResult, CreateReply},
};

/// Bumped whenever anything in this module, or what a call may expect of the other side,
/// changes. The host refuses other versions. v3: cancellation (a handler is told and given a
/// grace before its future is dropped), and each handler on a thread of its own. (A plugin's
/// GitHub permissions came later within v3, as an optional field of `create`'s JSON reply: see
/// `wire::CreateReply`; so did its comment commands, and the command a call carries, an
/// optional field of `wire::CallHead`; so did the `supersede` and `cancel_job` services, which a host that
/// predates them answers with `HostError::InvalidRequest`.)
pub const ABI_VERSION: u32 = 3;
/// First bytes of every plugin header: tells a Switchyard plugin from any other library.
pub const MAGIC: [u8; 8] = *b"SWYDPLG\0";
/// Symbol of the [`PluginHeader`] static. The host reads it before anything else.
pub const HEADER_SYMBOL: &[u8] = b"SWITCHYARD_PLUGIN_HEADER\0";
/// Symbol of the [`PluginVTable`] static, read only once the header checked out.
pub const VTABLE_SYMBOL: &[u8] = b"SWITCHYARD_PLUGIN_VTABLE\0";
/// Version of this crate, recorded in every plugin's header.
pub const API_VERSION: &str = env!("CARGO_PKG_VERSION");
/// `rustc --version` of the compiler that built this copy of the crate.
pub const RUSTC_VERSION: &str = env!("SWITCHYARD_RUSTC_VERSION");
/// Target triple this copy of the crate was built for.
pub const TARGET: &str = env!("SWITCHYARD_TARGET");

/// A borrowed string with `'static` lifetime on the side that made it.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct FfiStr {
    ptr: *const u8,
    len: usize,
}

// SAFETY: an FfiStr only ever points at a `&'static str`, which is immutable and shareable.
unsafe impl Sync for FfiStr {}
// SAFETY: as above.
unsafe impl Send for FfiStr {}

impl FfiStr {
    pub const fn new(s: &'static str) -> Self {
        Self {
            ptr: s.as_ptr(),
            len: s.len(),
        }
    }

    /// Copies the string out, replacing invalid UTF-8 rather than trusting the other side.
    ///
    /// # Safety
    /// `self` must have been made by [`FfiStr::new`] in a library that is still mapped.
    pub unsafe fn to_string_lossy(&self) -> String {
        // SAFETY: the caller guarantees ptr/len describe a live `&'static str`.
        let bytes = unsafe { std::slice::from_raw_parts(self.ptr, self.len) };
        String::from_utf8_lossy(bytes).into_owned()
    }
}

/// Bytes borrowed for the duration of one call; the callee copies what it keeps.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct FfiSlice {
    ptr: *const u8,
    len: usize,
}

impl FfiSlice {
    pub fn new(bytes: &[u8]) -> Self {
        Self {
            ptr: bytes.as_ptr(),
            len: bytes.len(),
        }
    }

    /// # Safety
    /// The slice must still be alive: only use it inside the call it was passed to.
    pub unsafe fn to_vec(self) -> Vec<u8> {
        if self.len == 0 {
            return Vec::new();
        }
        // SAFETY: the caller keeps the memory alive for the call, per the type's contract.
        unsafe { std::slice::from_raw_parts(self.ptr, self.len) }.to_vec()
    }
}

/// An owned buffer that carries the function that frees it, so the allocating side frees it.
#[repr(C)]
pub struct FfiBytes {
    ptr: *mut u8,
    len: usize,
    cap: usize,
    free: unsafe extern "C" fn(*mut u8, usize, usize),
}

// SAFETY: FfiBytes uniquely owns its buffer, like the Vec it came from.
unsafe impl Send for FfiBytes {}

unsafe extern "C" fn free_vec(ptr: *mut u8, len: usize, cap: usize) {
    // SAFETY: ptr/len/cap come from `Vec::into_raw_parts` semantics in `FfiBytes::from_vec`,
    // made by this same copy of std; dropping a Vec of u8 cannot panic.
    drop(unsafe { Vec::from_raw_parts(ptr, len, cap) });
}

impl FfiBytes {
    pub fn from_vec(bytes: Vec<u8>) -> Self {
        let mut bytes = std::mem::ManuallyDrop::new(bytes);
        Self {
            ptr: bytes.as_mut_ptr(),
            len: bytes.len(),
            cap: bytes.capacity(),
            free: free_vec,
        }
    }

    pub fn as_slice(&self) -> &[u8] {
        // SAFETY: ptr/len describe the live buffer this value owns.
        unsafe { std::slice::from_raw_parts(self.ptr, self.len) }
    }
}

impl Drop for FfiBytes {
    fn drop(&mut self) {
        // SAFETY: the free function belongs to the side that allocated these exact parts.
        unsafe { (self.free)(self.ptr, self.len, self.cap) }
    }
}

/// The part of the header every ABI version shares. The host reads this first, and only reads
/// the rest when `abi_version` matches and `header_size` covers it.
#[repr(C)]
pub struct HeaderPrefix {
    pub magic: [u8; 8],
    pub abi_version: u32,
    pub header_size: u32,
}

/// Exported by every plugin under [`HEADER_SYMBOL`].
#[repr(C)]
pub struct PluginHeader {
    pub prefix: HeaderPrefix,
    pub async_ffi_abi: u32,
    /// 1 when built with `panic = "unwind"`; the host refuses 0, as it could not contain a panic.
    pub panic_unwind: u8,
    pub api_version: FfiStr,
    pub rustc_version: FfiStr,
    pub target: FfiStr,
    pub plugin_name: FfiStr,
    pub plugin_version: FfiStr,
}

impl PluginHeader {
    pub const fn new(name: &'static str, version: &'static str, panic_unwind: bool) -> Self {
        Self {
            prefix: HeaderPrefix {
                magic: MAGIC,
                abi_version: ABI_VERSION,
                header_size: size_of::<PluginHeader>() as u32,
            },
            async_ffi_abi: async_ffi::ABI_VERSION,
            panic_unwind: panic_unwind as u8,
            api_version: FfiStr::new(API_VERSION),
            rustc_version: FfiStr::new(RUSTC_VERSION),
            target: FfiStr::new(TARGET),
            plugin_name: FfiStr::new(name),
            plugin_version: FfiStr::new(version),
        }
    }
}

/// What `create` hands back: an instance pointer (null on failure) and a JSON [`CreateReply`].
#[repr(C)]
pub struct CreateResult {
    pub instance: *mut c_void,
    pub reply: FfiBytes,
}

/// Exported by every plugin under [`VTABLE_SYMBOL`].
#[repr(C)]
pub struct PluginVTable {
    /// `config` is a JSON [`crate::PluginConfig`].
    pub create: unsafe extern "C" fn(config: FfiSlice) -> CreateResult,
    /// `head` is a JSON `wire::CallHead`, `payload` the delivery's JSON exactly as GitHub sent
    /// it; the future yields a JSON [`CallResult`]. Dropping the future aborts the handler's
    /// task.
    pub handle: unsafe extern "C" fn(
        instance: *const c_void,
        head: FfiSlice,
        payload: FfiSlice,
        services: HostServices,
    ) -> FfiFuture<FfiBytes>,
    pub destroy: unsafe extern "C" fn(instance: *mut c_void),
}

impl PluginVTable {
    pub const fn new<P: Plugin>(create: unsafe extern "C" fn(FfiSlice) -> CreateResult) -> Self {
        Self {
            create,
            handle: handle::<P>,
            destroy: destroy::<P>,
        }
    }
}

/// The host's services for one job: an opaque, reference-counted context and its functions.
#[repr(C)]
pub struct HostServices {
    pub ctx: *const c_void,
    pub vtable: &'static HostVTable,
}

// SAFETY: the host's context is an `Arc` of a `Send + Sync` value; the table is immutable.
unsafe impl Send for HostServices {}
// SAFETY: as above.
unsafe impl Sync for HostServices {}

/// Functions the host offers a plugin. Each copies its input, spawns the work on the host's
/// runtime and returns a future that only awaits its completion.
#[repr(C)]
pub struct HostVTable {
    pub retain: unsafe extern "C" fn(ctx: *const c_void),
    pub release: unsafe extern "C" fn(ctx: *const c_void),
    /// Appends text to the job's log.
    pub log: unsafe extern "C" fn(ctx: *const c_void, text: FfiSlice) -> FfiFuture<()>,
    /// JSON `wire::ServiceRequest` in, JSON `wire::ServiceResult<_>` out. One entry for every
    /// service, so a new service is a new enum variant, not a new ABI version; a host that does
    /// not know a service answers `InvalidRequest` naming it.
    pub request: unsafe extern "C" fn(ctx: *const c_void, request: FfiSlice) -> FfiFuture<FfiBytes>,
}

impl HostServices {
    /// Takes another reference on the host's context.
    pub fn retain(&self) -> Self {
        // SAFETY: ctx is live while self is, and retain only bumps its reference count.
        unsafe { (self.vtable.retain)(self.ctx) };
        Self {
            ctx: self.ctx,
            vtable: self.vtable,
        }
    }
}

impl HostServices {
    // Each service copies its input before returning, so borrowing `bytes` for the call is
    // enough; the returned future holds no borrow.

    pub fn log(&self, text: &[u8]) -> FfiFuture<()> {
        // SAFETY: ctx is live while self is; the host copies `text` during the call.
        unsafe { (self.vtable.log)(self.ctx, FfiSlice::new(text)) }
    }

    pub fn request(&self, request: &[u8]) -> FfiFuture<FfiBytes> {
        // SAFETY: as in `log`.
        unsafe { (self.vtable.request)(self.ctx, FfiSlice::new(request)) }
    }
}

impl Drop for HostServices {
    fn drop(&mut self) {
        // SAFETY: every HostServices value owns one reference, given back exactly once here.
        unsafe { (self.vtable.release)(self.ctx) }
    }
}

/// One plugin instance: the author's value and the runtime its handlers run on.
struct Instance<P> {
    plugin: Arc<P>,
    runtime: tokio::runtime::Runtime,
}

/// Called by the `create` function that `declare_plugin!` generates.
///
/// # Safety
/// `config` must be valid for the duration of the call.
pub unsafe fn create<P: Plugin>(
    config: FfiSlice,
    construct: impl FnOnce(&PluginConfig) -> Result<P, PluginError>,
) -> CreateResult {
    // SAFETY: the host keeps `config` alive for this call.
    let config = unsafe { config.to_vec() };
    let made = catch_unwind(AssertUnwindSafe(|| -> Result<(Instance<P>, _), String> {
        let config: PluginConfig = serde_json::from_slice(&config)
            .map_err(|e| format!("host sent an unreadable plugin config: {e}"))?;
        let plugin = construct(&config).map_err(|e| e.to_string())?;
        // Asked here, under catch_unwind: a panic in it fails the load, not the host.
        let subscriptions = plugin.subscriptions();
        let permissions = plugin.permissions();
        let commands = plugin.commands();
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(config.worker_threads.clamp(1, 64))
            .thread_name(format!("plugin-{}", config.name))
            .enable_all()
            .build()
            .map_err(|e| format!("cannot start the plugin's runtime: {e}"))?;
        Ok((
            Instance {
                plugin: Arc::new(plugin),
                runtime,
            },
            (subscriptions, permissions, commands),
        ))
    }));
    let made = made.unwrap_or_else(|panic| Err(format!("panicked: {}", panic_message(&*panic))));
    match made {
        Ok((instance, (subscriptions, permissions, commands))) => {
            let reply = CreateReply::Ready {
                subscriptions,
                permissions,
                commands,
            };
            CreateResult {
                instance: Box::into_raw(Box::new(instance)).cast(),
                reply: FfiBytes::from_vec(to_json(&reply)),
            }
        }
        Err(error) => CreateResult {
            instance: std::ptr::null_mut(),
            reply: FfiBytes::from_vec(to_json(&CreateReply::Failed { error })),
        },
    }
}

unsafe extern "C" fn handle<P: Plugin>(
    instance: *const c_void,
    head: FfiSlice,
    payload: FfiSlice,
    services: HostServices,
) -> FfiFuture<FfiBytes> {
    let started = catch_unwind(AssertUnwindSafe(|| {
        // SAFETY: the host passes back the pointer `create` returned and keeps it alive (it
        // never calls destroy while a call is in flight).
        let instance = unsafe { &*instance.cast::<Instance<P>>() };
        // SAFETY: both slices are alive for the duration of this function; we copy them.
        let (head, payload) = unsafe { (head.to_vec(), payload.to_vec()) };
        let plugin = Arc::clone(&instance.plugin);
        let host = Host::new(services);
        let runtime = instance.runtime.handle().clone();
        // Dropped with the host's future (a cancellation past its grace): stops the handler.
        let (dropped, on_drop) = tokio::sync::oneshot::channel::<()>();
        // A thread of the blocking pool per job, driving the handler on the plugin's runtime:
        // a handler that blocks its thread holds up no other job of this plugin.
        let task = instance.runtime.spawn_blocking(move || {
            runtime.block_on(async move {
                let handled = async {
                    let event = Event::from_call(&head, payload)?;
                    plugin.handle(&event, &host).await
                };
                tokio::select! {
                    result = handled => Some(result),
                    _ = on_drop => None,
                }
            })
        });
        (task, dropped)
    }));
    match started {
        Ok((task, dropped)) => async move {
            let _dropped = dropped;
            let result = match task.await {
                Ok(Some(Ok(outcome))) => CallResult::Ok(outcome),
                Ok(Some(Err(error))) => CallResult::Err(error),
                Ok(None) => CallResult::Err(PluginError::fatal("plugin task was cancelled")),
                Err(join) if join.is_panic() => CallResult::Err(PluginError::fatal(format!(
                    "plugin panicked: {}",
                    panic_message(&*join.into_panic())
                ))),
                Err(_) => CallResult::Err(PluginError::fatal("plugin task was cancelled")),
            };
            FfiBytes::from_vec(to_json(&result))
        }
        .into_ffi(),
        Err(panic) => {
            let error = PluginError::fatal(format!("plugin panicked: {}", panic_message(&*panic)));
            ready(FfiBytes::from_vec(to_json(&CallResult::Err(error))))
        }
    }
}

unsafe extern "C" fn destroy<P: Plugin>(instance: *mut c_void) {
    let _ = catch_unwind(AssertUnwindSafe(|| {
        // SAFETY: `instance` came from Box::into_raw in `create`, and the host destroys once.
        let instance = unsafe { Box::from_raw(instance.cast::<Instance<P>>()) };
        // Never block the caller's thread (it may be a host runtime worker).
        instance.runtime.shutdown_background();
    }));
}

/// Aborts the plugin's task when the host drops the future (a timeout or shutdown), so child
/// processes spawned with `kill_on_drop` die with it.
struct AbortOnDrop<T>(tokio::task::JoinHandle<T>);

impl<T> AbortOnDrop<T> {
    async fn wait(mut self) -> Result<T, tokio::task::JoinError> {
        (&mut self.0).await
    }
}

impl<T> Drop for AbortOnDrop<T> {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// The text of a caught panic, for error messages on both sides.
pub fn panic_message(panic: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = panic.downcast_ref::<&str>() {
        (*s).to_owned()
    } else if let Some(s) = panic.downcast_ref::<String>() {
        s.clone()
    } else {
        "(no message)".to_owned()
    }
}

/// Serializes a wire value. Our wire types only hold strings, numbers and JSON values, for
/// which serde_json cannot fail.
pub fn to_json<T: serde::Serialize>(value: &T) -> Vec<u8> {
    serde_json::to_vec(value).expect("wire types always serialize")
}

/// A future that is ready at once, in FFI form.
pub fn ready<T: Send + 'static>(value: T) -> FfiFuture<T> {
    std::future::ready(value).into_ffi()
}

/// Runs `work` on the given runtime and returns an FFI future awaiting its result; a panic in
/// `work` becomes `on_panic(message)`. The host's services use this to run on the host runtime.
pub fn spawn_ffi<T, F>(
    runtime: &tokio::runtime::Handle,
    work: F,
    on_panic: fn(String) -> T,
) -> FfiFuture<T>
where
    T: Send + 'static,
    F: Future<Output = T> + Send + 'static,
{
    let task = AbortOnDrop(runtime.spawn(work));
    async move {
        match task.wait().await {
            Ok(value) => value,
            Err(join) if join.is_panic() => on_panic(panic_message(&*join.into_panic())),
            Err(_) => on_panic("cancelled".to_owned()),
        }
    }
    .into_ffi()
}
