//! A shared library with no Switchyard header: the host must refuse it by name.

/// Something for the library to export.
#[allow(unsafe_code)]
#[unsafe(no_mangle)]
pub extern "C" fn not_a_plugin() -> u32 {
    7
}
