//! A library whose header claims plugin ABI v0, as a plugin built against an older plugin-api
//! would: the host must refuse it, naming both versions, before reading anything else.

use switchyard_plugin_api::abi::{HeaderPrefix, MAGIC};

#[allow(unsafe_code)]
#[unsafe(no_mangle)]
pub static SWITCHYARD_PLUGIN_HEADER: HeaderPrefix = HeaderPrefix {
    magic: MAGIC,
    abi_version: 0,
    header_size: size_of::<HeaderPrefix>() as u32,
};
