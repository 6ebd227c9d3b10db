//! A library whose header claims the previous plugin ABI, as a plugin built against the
//! plugin-api before it would: the host must refuse it, naming both versions, before reading
//! anything else.

use switchyard_plugin_api::abi::{ABI_VERSION, HeaderPrefix, MAGIC};

#[allow(unsafe_code)]
#[unsafe(no_mangle)]
pub static SWITCHYARD_PLUGIN_HEADER: HeaderPrefix = HeaderPrefix {
    magic: MAGIC,
    abi_version: ABI_VERSION - 1,
    header_size: size_of::<HeaderPrefix>() as u32,
};
