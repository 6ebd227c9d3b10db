//! Opening a plugin library and the ABI handshake. Together with `services`, the host's only
//! unsafe code: everything a plugin exports is checked here before it is trusted.
//!
//! Libraries are never closed (`dlclose`): code that ran on host threads may still be referenced
//! (thread-locals, destructors), and the dynamic loader would hand back the old image for the
//! same path anyway. Each library stays mapped until the process exits.
#![allow(unsafe_code)]

use std::{
    ffi::c_void,
    path::{Path, PathBuf},
    ptr::NonNull,
};

use async_ffi::FfiFuture;
use libloading::Library;
use switchyard_plugin_api::{
    CommandSpec, Permissions, PluginConfig, Subscription,
    abi::{self, FfiBytes, FfiSlice, HeaderPrefix, HostServices, PluginHeader, PluginVTable},
    wire::CreateReply,
};

use super::elf;

/// Why a library was refused. Each message names the file.
#[derive(Debug, Clone, thiserror::Error)]
pub enum LoadError {
    #[error("{}: no such file (build it with `cargo build --release --workspace`)", path.display())]
    Missing { path: PathBuf },
    #[error("{name}: not found in {} (build it with `cargo build --release --workspace`, or add its folder to plugin_dirs)", searched.iter().map(|d| d.display().to_string()).collect::<Vec<_>>().join(", "))]
    NotFound {
        name: String,
        searched: Vec<PathBuf>,
    },
    #[error("{}: cannot load: {reason}", path.display())]
    Open { path: PathBuf, reason: String },
    #[error("{}: not a Switchyard plugin: {reason}", path.display())]
    NotAPlugin { path: PathBuf, reason: String },
    #[error("{}: {reason}", path.display())]
    Incompatible { path: PathBuf, reason: String },
    #[error("{}: the plugin refused to start: {reason}", path.display())]
    Create { path: PathBuf, reason: String },
    /// The entry's `permissions` asks for more than the plugin declares.
    #[error("{reason}")]
    Widened { reason: String },
    /// The plugin's command declarations, or the entry's `commands`, cannot be taken.
    #[error("{reason}")]
    Commands { reason: String },
}

/// A started plugin instance and what it declared in the handshake.
pub struct Created {
    pub instance: PluginInstance,
    pub subscriptions: Vec<Subscription>,
    pub permissions: Option<Permissions>,
    pub commands: Vec<CommandSpec>,
}

/// What a plugin says about itself in its header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PluginInfo {
    pub package: String,
    pub version: String,
    pub rustc_version: String,
}

/// A checked plugin library. The vtable is `'static` because the library is never unloaded.
pub struct PluginLibrary {
    path: PathBuf,
    pub info: PluginInfo,
    vtable: &'static PluginVTable,
}

/// Opens a private copy of `path` made in `scratch`, once the file proved to be a complete
/// shared object for this machine (see `elf`). The copy holds exactly the bytes checked, so
/// nothing done to the operator's file afterwards (a rebuild in place, a cut copy renamed over
/// it) reaches the mapped pages; and the dynamic loader, which hands back the image already
/// mapped for a path it opened before, sees a new path each time. The copy is deleted once
/// mapped (the mapping stays); errors name `path`, not the copy.
pub fn open_copy(path: &Path, scratch: &Path) -> Result<PluginLibrary, LoadError> {
    let bytes = std::fs::read(path).map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => LoadError::Missing {
            path: path.to_owned(),
        },
        _ => LoadError::Open {
            path: path.to_owned(),
            reason: format!("cannot read it: {e}"),
        },
    })?;
    if bytes.is_empty() && path.is_dir() {
        return Err(LoadError::Missing {
            path: path.to_owned(),
        });
    }
    elf::check_shared_object(&bytes).map_err(|reason| LoadError::Open {
        path: path.to_owned(),
        reason,
    })?;
    let name = path.file_name().unwrap_or_default().to_string_lossy();
    let copy = private_copy(&bytes, scratch, &name).map_err(|e| LoadError::Open {
        path: path.to_owned(),
        reason: format!("cannot copy it to {}: {e}", scratch.display()),
    })?;
    open(copy.path())
        .map(|mut library| {
            library.path = path.to_owned();
            library
        })
        .map_err(|error| error.at(path))
}

/// Writes `bytes` to a new file of this process's own in `scratch` (created exclusively, so
/// nothing planted there is followed), deleted when dropped.
fn private_copy(
    bytes: &[u8],
    scratch: &Path,
    name: &str,
) -> std::io::Result<tempfile::NamedTempFile> {
    use std::io::Write as _;
    std::fs::create_dir_all(scratch)?;
    let mut copy = tempfile::Builder::new()
        .prefix(&format!("{}-", std::process::id()))
        .suffix(&format!("-{name}"))
        .tempfile_in(scratch)?;
    copy.write_all(bytes)?;
    copy.flush()?;
    Ok(copy)
}

impl LoadError {
    /// The same error, naming `path`.
    fn at(self, path: &Path) -> Self {
        let path = path.to_owned();
        match self {
            Self::Missing { .. } => Self::Missing { path },
            Self::NotFound { name, searched } => Self::NotFound { name, searched },
            Self::Open { reason, .. } => Self::Open { path, reason },
            Self::NotAPlugin { reason, .. } => Self::NotAPlugin { path, reason },
            Self::Incompatible { reason, .. } => Self::Incompatible { path, reason },
            Self::Create { reason, .. } => Self::Create { path, reason },
            Self::Widened { reason } => Self::Widened { reason },
            Self::Commands { reason } => Self::Commands { reason },
        }
    }
}

/// Opens `path` and checks its header against this host. Only ever given a checked private
/// copy (see [`open_copy`]).
fn open(path: &Path) -> Result<PluginLibrary, LoadError> {
    let refuse = |reason: String| LoadError::Incompatible {
        path: path.to_owned(),
        reason,
    };
    // Refusals a rebuild against this host's plugin-api fixes end with that advice.
    let rebuild = |reason: String| {
        refuse(format!(
            "{reason}; rebuild the plugin against switchyard-plugin-api {}",
            abi::API_VERSION
        ))
    };
    // SAFETY: loading runs the library's initialisers. This is the trust step of any plugin
    // system: the operator listed this file in the config.
    let library = unsafe { Library::new(path) }.map_err(|e| LoadError::Open {
        path: path.to_owned(),
        // libloading's Display says only "dlopen failed"; the reason is in its source.
        reason: std::error::Error::source(&e)
            .map(ToString::to_string)
            .unwrap_or_else(|| e.to_string()),
    })?;
    // Leaked on purpose: see the module docs.
    let library: &'static Library = Box::leak(Box::new(library));

    let not_a_plugin = |reason: &str| LoadError::NotAPlugin {
        path: path.to_owned(),
        reason: reason.to_owned(),
    };
    // SAFETY: we only take the symbol's address here; what it points at is checked below.
    let header =
        unsafe { library.get::<*const HeaderPrefix>(abi::HEADER_SYMBOL) }.map_err(|_| {
            not_a_plugin(
                "it exports no SWITCHYARD_PLUGIN_HEADER (was it built with `declare_plugin!`?)",
            )
        })?;
    // Asked for as a pointer type, a data symbol yields the static's own address.
    let prefix_ptr: *const HeaderPrefix = *header;
    if prefix_ptr.is_null() {
        return Err(not_a_plugin("its header symbol is null"));
    }
    // SAFETY: every ABI version starts with this prefix (magic, version, size), so reading it is
    // valid for any library that exports the symbol; the magic confirms it is really ours.
    let prefix = unsafe { std::ptr::read_unaligned(prefix_ptr) };
    if prefix.magic != abi::MAGIC {
        return Err(not_a_plugin(
            "its header does not start with Switchyard's magic bytes",
        ));
    }
    if prefix.abi_version != abi::ABI_VERSION {
        return Err(rebuild(format!(
            "plugin ABI v{} but host speaks ABI v{}",
            prefix.abi_version,
            abi::ABI_VERSION
        )));
    }
    if (prefix.header_size as usize) < size_of::<PluginHeader>() {
        return Err(rebuild(format!(
            "plugin header is {} bytes but ABI v{} needs {}",
            prefix.header_size,
            abi::ABI_VERSION,
            size_of::<PluginHeader>()
        )));
    }
    // SAFETY: magic, ABI version and size all match this host's PluginHeader layout.
    let header: &'static PluginHeader = unsafe { &*prefix_ptr.cast::<PluginHeader>() };
    // SAFETY: the FfiStr fields of a checked header point at the library's static strings.
    let text = |s: &abi::FfiStr| unsafe { s.to_string_lossy() };
    let info = PluginInfo {
        package: text(&header.plugin_name),
        version: text(&header.plugin_version),
        rustc_version: text(&header.rustc_version),
    };
    if header.async_ffi_abi != async_ffi::ABI_VERSION {
        return Err(rebuild(format!(
            "plugin uses async-ffi ABI v{} but host uses v{}",
            header.async_ffi_abi,
            async_ffi::ABI_VERSION
        )));
    }
    if header.panic_unwind != 1 {
        return Err(refuse(
            "plugin was built with panic = \"abort\"; a panic would kill the host. Build it with panic = \"unwind\"".to_owned(),
        ));
    }
    let target = text(&header.target);
    if target != abi::TARGET {
        return Err(refuse(format!(
            "plugin was built for {target} but the host runs on {}",
            abi::TARGET
        )));
    }
    if info.rustc_version != abi::RUSTC_VERSION {
        // Only C types cross the boundary, so another compiler is safe; say so, do not refuse.
        tracing::warn!(
            library = %path.display(),
            plugin_rustc = %info.rustc_version,
            host_rustc = abi::RUSTC_VERSION,
            "plugin was built with another compiler"
        );
    }

    // SAFETY: as for the header; a plugin whose header checked out exports its vtable with this layout.
    let vtable = unsafe { library.get::<*const PluginVTable>(abi::VTABLE_SYMBOL) }
        .map_err(|_| not_a_plugin("it exports a header but no SWITCHYARD_PLUGIN_VTABLE"))?;
    let vtable: *const PluginVTable = *vtable;
    if vtable.is_null() {
        return Err(not_a_plugin("its vtable symbol is null"));
    }
    Ok(PluginLibrary {
        path: path.to_owned(),
        info,
        // SAFETY: the library is never unloaded, so its static lives for the process.
        vtable: unsafe { &*vtable },
    })
}

/// A running plugin instance: destroyed (its runtime shut down) when the last job using it ends.
pub struct PluginInstance {
    vtable: &'static PluginVTable,
    instance: NonNull<c_void>,
}

// SAFETY: the instance is the plugin's `Plugin: Send + Sync` value plus its runtime handle;
// the plugin side only ever uses it through `&`.
unsafe impl Send for PluginInstance {}
// SAFETY: as above.
unsafe impl Sync for PluginInstance {}

impl PluginLibrary {
    /// Creates an instance with its settings; returns it with the plugin's own subscriptions
    /// and the permissions it declares (`None`: it declares none).
    pub fn instantiate(&self, config: &PluginConfig) -> Result<Created, LoadError> {
        let config = abi::to_json(config);
        // SAFETY: a checked vtable; `config` lives across the call, which copies it.
        let created = unsafe { (self.vtable.create)(FfiSlice::new(&config)) };
        let reply: Result<CreateReply, _> = serde_json::from_slice(created.reply.as_slice());
        let create_error = |reason: String| LoadError::Create {
            path: self.path.clone(),
            reason,
        };
        match (NonNull::new(created.instance), reply) {
            (
                Some(instance),
                Ok(CreateReply::Ready {
                    subscriptions,
                    permissions,
                    commands,
                }),
            ) => Ok(Created {
                instance: PluginInstance {
                    vtable: self.vtable,
                    instance,
                },
                subscriptions,
                permissions,
                commands,
            }),
            (None, Ok(CreateReply::Failed { error })) => Err(create_error(error)),
            (instance, reply) => {
                if let Some(instance) = instance {
                    // SAFETY: the instance came from this vtable's create and is not shared.
                    unsafe { (self.vtable.destroy)(instance.as_ptr()) };
                }
                Err(create_error(format!(
                    "unexpected answer from create: {reply:?}"
                )))
            }
        }
    }
}

impl PluginInstance {
    /// Hands one job to the plugin. Dropping the future aborts the plugin's task.
    pub fn call(&self, head: &[u8], payload: &[u8], services: HostServices) -> FfiFuture<FfiBytes> {
        let (head, payload) = (FfiSlice::new(head), FfiSlice::new(payload));
        // SAFETY: the instance is alive while `self` is, and both slices outlive this call (the
        // plugin copies them before returning).
        unsafe { (self.vtable.handle)(self.instance.as_ptr(), head, payload, services) }
    }
}

impl Drop for PluginInstance {
    fn drop(&mut self) {
        // SAFETY: created by this vtable, destroyed once; no call is in flight as jobs hold an
        // Arc of the instance while they call it.
        unsafe { (self.vtable.destroy)(self.instance.as_ptr()) }
    }
}
