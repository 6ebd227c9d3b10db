//! Checking a plugin file before the dynamic loader maps it. `dlopen` maps a library's
//! segments straight from the file: a segment that reaches past the end of a truncated file is
//! mapped anyway, and the first touch of it kills the process with SIGBUS. So the host reads the
//! file, checks that it is a shared object for this machine whose every segment lies within
//! it, and loads a private copy of exactly the bytes it checked.

use object::{
    Endianness, elf,
    read::elf::{FileHeader as _, ProgramHeader as _},
};

/// The ELF machine this host runs on; `None` where it is not known here (no check made).
const HOST_MACHINE: Option<elf::Machine> = if cfg!(target_arch = "x86_64") {
    Some(elf::EM_X86_64)
} else if cfg!(target_arch = "aarch64") {
    Some(elf::EM_AARCH64)
} else if cfg!(target_arch = "riscv64") {
    Some(elf::EM_RISCV)
} else {
    None
};

/// Whether `data` is a complete ELF shared object that this host could map safely; the error
/// says what is wrong, for a message that also names the file.
pub(super) fn check_shared_object(data: &[u8]) -> Result<(), String> {
    let header = elf::FileHeader64::<Endianness>::parse(data)
        .map_err(|_| "not a 64-bit ELF shared library (its header is missing or cut)".to_owned())?;
    let endian = header
        .endian()
        .map_err(|_| "not an ELF file this host can read (unknown byte order)".to_owned())?;
    let kind = header.e_type(endian);
    if kind != elf::ET_DYN {
        return Err(format!(
            "not a shared library (ELF type {}); build the plugin crate as a `cdylib`",
            kind.0
        ));
    }
    let machine = header.e_machine(endian);
    if HOST_MACHINE.is_some_and(|host| host != machine) {
        return Err(format!(
            "built for another machine (ELF machine {}); this host runs on {}",
            machine.0,
            std::env::consts::ARCH
        ));
    }
    let segments = header.program_headers(endian, data).map_err(|_| {
        format!(
            "truncated: its program headers lie past its end ({} bytes)",
            data.len()
        )
    })?;
    if segments.is_empty() {
        return Err("not a loadable library: it has no segments".to_owned());
    }
    for segment in segments {
        let start = segment.p_offset(endian);
        let end = start.checked_add(segment.p_filesz(endian));
        if end.is_none_or(|end| end > data.len() as u64) {
            return Err(format!(
                "truncated: a segment at byte {start} reaches past its end ({} bytes); rebuild or copy it again",
                data.len()
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// This test binary's own ELF image is an executable, not a library; a plugin of the
    /// workspace is a library, but building one here would be slow, so the library case is in
    /// the integration tests. These cut and change a real ELF file.
    fn own_image() -> Vec<u8> {
        std::fs::read(std::env::current_exe().unwrap()).unwrap()
    }

    fn as_library(mut image: Vec<u8>) -> Vec<u8> {
        // e_type is the 16-bit field at offset 16; test binaries are position-independent
        // executables, which are ET_DYN already.
        image[16..18].copy_from_slice(&elf::ET_DYN.0.to_le_bytes());
        image
    }

    #[test]
    fn a_complete_library_passes() {
        assert_eq!(check_shared_object(&as_library(own_image())), Ok(()));
    }

    /// Where the last byte of the file's segments lies: cutting there truncates a segment.
    fn segments_end(image: &[u8]) -> usize {
        let header = elf::FileHeader64::<Endianness>::parse(image).unwrap();
        let endian = header.endian().unwrap();
        let segments = header.program_headers(endian, image).unwrap();
        let ends = segments
            .iter()
            .map(|s| s.p_offset(endian) + s.p_filesz(endian));
        ends.max().unwrap() as usize
    }

    #[test]
    fn cut_or_foreign_files_are_refused_saying_why() {
        let whole = as_library(own_image());
        let cut = segments_end(&whole) - 1;
        let mut other_machine = whole.clone();
        other_machine[18..20].copy_from_slice(&elf::EM_S390.0.to_le_bytes());
        let mut not_a_library = whole.clone();
        not_a_library[16..18].copy_from_slice(&elf::ET_REL.0.to_le_bytes());
        // (file, the error starts with)
        let cases: [(&[u8], &str); 6] = [
            (b"", "not a 64-bit ELF shared library"),
            (
                b"#!/bin/sh\necho not a library\n",
                "not a 64-bit ELF shared library",
            ),
            (&whole[..40], "not a 64-bit ELF shared library"),
            (&whole[..cut], "truncated: a segment at byte"),
            (&other_machine, "built for another machine"),
            (&not_a_library, "not a shared library"),
        ];
        for (file, expected) in cases {
            let error = check_shared_object(file).unwrap_err();
            assert!(error.starts_with(expected), "{} bytes: {error}", file.len());
        }
    }
}
