//! Unified kernel images (UAPI Type #2 boot entries): the systemd EFI stub with the
//! kernel, the initramfs, the command line and an os-release added as PE sections.
//!
//! Debian 12 has no `ukify`, and its host `objcopy` cannot write arm64 PE files, so the
//! sections are added here, the same way for both architectures. The result depends
//! only on its inputs: the stub's bytes are kept as they are, the new sections follow
//! at 4 KiB-aligned virtual addresses after the stub's last section (where the stub
//! looks for them by name), their file data follows the stub's at the file alignment
//! with zero padding, and the header's image size and checksum are computed.

/// One section to add: its name (at most 8 bytes) and contents.
pub struct Section<'a> {
    pub name: &'a str,
    pub data: &'a [u8],
}

/// IMAGE_SCN_CNT_INITIALIZED_DATA | IMAGE_SCN_MEM_READ: what ukify and objcopy give the
/// added sections.
const DATA_READ: u32 = 0x0000_0040 | 0x4000_0000;
/// Where the added sections start and how they are aligned in memory.
const SECTION_ALIGN: u64 = 4096;
/// The size of one section header.
const SECTION_HEADER: usize = 40;
/// PE32+ optional header magic.
const PE32_PLUS: u16 = 0x20b;

/// The PE headers this module reads and writes, as offsets into the file.
struct Layout {
    /// Where the COFF file header starts (after the `PE\0\0` signature).
    coff: usize,
    /// Where the optional header starts.
    optional: usize,
    sections: usize,
    section_table: usize,
    file_align: u64,
    section_align: u64,
    size_of_headers: u64,
}

/// The stub with `sections` added, or why the stub cannot take them.
pub fn build(stub: &[u8], sections: &[Section]) -> Result<Vec<u8>, String> {
    let layout = parse(stub)?;
    let free =
        layout.size_of_headers as usize - (layout.section_table + layout.sections * SECTION_HEADER);
    if sections.len() * SECTION_HEADER > free {
        return Err(format!(
            "the stub's headers have room for {} more sections, not {}",
            free / SECTION_HEADER,
            sections.len()
        ));
    }
    let mut out = stub.to_vec();
    // The first free virtual address after every section of the stub, and the end of its
    // file data: new sections never overlap the stub's, in memory or in the file.
    let mut virtual_end = 0u64;
    let mut file_end = layout.size_of_headers;
    for index in 0..layout.sections {
        let header = layout.section_table + index * SECTION_HEADER;
        let virtual_size = u32_at(stub, header + 8)? as u64;
        let address = u32_at(stub, header + 12)? as u64;
        let raw_size = u32_at(stub, header + 16)? as u64;
        let raw_pointer = u32_at(stub, header + 20)? as u64;
        virtual_end = virtual_end.max(address + virtual_size.max(raw_size));
        if raw_size > 0 {
            file_end = file_end.max(raw_pointer + raw_size);
        }
    }
    // Bytes after the last section's data (a stub may carry some) stay where they are.
    file_end = file_end.max(stub.len() as u64);
    let align = SECTION_ALIGN.max(layout.section_align);
    let mut address = align_up(virtual_end, align);
    let mut pointer = align_up(file_end, layout.file_align);
    out.resize(pointer as usize, 0);
    for (index, section) in sections.iter().enumerate() {
        if section.name.is_empty() || section.name.len() > 8 {
            return Err(format!(
                "section name `{}` must be 1 to 8 bytes",
                section.name
            ));
        }
        let raw_size = align_up(section.data.len() as u64, layout.file_align);
        let header = layout.section_table + (layout.sections + index) * SECTION_HEADER;
        let mut name = [0u8; 8];
        name[..section.name.len()].copy_from_slice(section.name.as_bytes());
        out[header..header + 8].copy_from_slice(&name);
        put_u32(&mut out, header + 8, fits(section.data.len() as u64)?);
        put_u32(&mut out, header + 12, fits(address)?);
        put_u32(&mut out, header + 16, fits(raw_size)?);
        put_u32(&mut out, header + 20, fits(pointer)?);
        // No relocations or line numbers.
        out[header + 24..header + 36].fill(0);
        put_u32(&mut out, header + 36, DATA_READ);
        out.extend_from_slice(section.data);
        out.resize((pointer + raw_size) as usize, 0);
        pointer += raw_size;
        address = align_up(address + section.data.len() as u64, align);
    }
    let count = u16::try_from(layout.sections + sections.len())
        .map_err(|_| "too many sections".to_owned())?;
    out[layout.coff + 2..layout.coff + 4].copy_from_slice(&count.to_le_bytes());
    // SizeOfImage: the end of the last section in memory, at the section alignment.
    put_u32(
        &mut out,
        layout.optional + 56,
        fits(align_up(address, layout.section_align))?,
    );
    // SizeOfInitializedData grows by what was added.
    let initialized = u32_at(&out, layout.optional + 8)? as u64
        + sections
            .iter()
            .map(|section| align_up(section.data.len() as u64, layout.file_align))
            .sum::<u64>();
    put_u32(&mut out, layout.optional + 8, fits(initialized)?);
    put_u32(&mut out, layout.optional + 64, 0);
    let sum = checksum(&out, layout.optional + 64);
    put_u32(&mut out, layout.optional + 64, sum);
    Ok(out)
}

/// The names and (virtual address, size) of every section of a PE image.
pub fn sections(image: &[u8]) -> Result<Vec<(String, u64, u64)>, String> {
    let layout = parse(image)?;
    (0..layout.sections)
        .map(|index| {
            let header = layout.section_table + index * SECTION_HEADER;
            let name = &image[header..header + 8];
            let name = String::from_utf8_lossy(name)
                .trim_end_matches('\0')
                .to_owned();
            Ok((
                name,
                u32_at(image, header + 12)? as u64,
                u32_at(image, header + 8)? as u64,
            ))
        })
        .collect()
}

fn parse(image: &[u8]) -> Result<Layout, String> {
    if image.get(..2) != Some(b"MZ") {
        return Err("not a PE image (no MZ header)".into());
    }
    let signature = u32_at(image, 0x3c)? as usize;
    if image.get(signature..signature + 4) != Some(b"PE\0\0") {
        return Err("not a PE image (no PE signature)".into());
    }
    let coff = signature + 4;
    let sections = u16_at(image, coff + 2)? as usize;
    let optional_size = u16_at(image, coff + 16)? as usize;
    let optional = coff + 20;
    if u16_at(image, optional)? != PE32_PLUS {
        return Err("not a PE32+ image".into());
    }
    let section_align = u32_at(image, optional + 32)? as u64;
    let file_align = u32_at(image, optional + 36)? as u64;
    let size_of_headers = u32_at(image, optional + 60)? as u64;
    let section_table = optional + optional_size;
    if !section_align.is_power_of_two() || !file_align.is_power_of_two() {
        return Err("the image's alignments are not powers of two".into());
    }
    if section_table + sections * SECTION_HEADER > size_of_headers as usize
        || size_of_headers as usize > image.len()
    {
        return Err("the image's section table does not fit its headers".into());
    }
    Ok(Layout {
        coff,
        optional,
        sections,
        section_table,
        file_align,
        section_align,
        size_of_headers,
    })
}

/// The PE checksum: 16-bit one's-complement-style sum of the file with the checksum
/// field counted as zero, folded, plus the file's length.
fn checksum(image: &[u8], field: usize) -> u32 {
    let mut sum: u64 = 0;
    for (index, pair) in image.chunks(2).enumerate() {
        let offset = index * 2;
        if offset == field || offset == field + 2 {
            continue;
        }
        let word = pair[0] as u64 | (*pair.get(1).unwrap_or(&0) as u64) << 8;
        sum += word;
        sum = (sum & 0xffff) + (sum >> 16);
    }
    sum = (sum & 0xffff) + (sum >> 16);
    (sum as u32).wrapping_add(image.len() as u32)
}

fn align_up(value: u64, align: u64) -> u64 {
    value.div_ceil(align) * align
}

fn fits(value: u64) -> Result<u32, String> {
    u32::try_from(value).map_err(|_| format!("{value} does not fit a PE header field"))
}

fn u16_at(bytes: &[u8], at: usize) -> Result<u16, String> {
    bytes
        .get(at..at + 2)
        .map(|b| u16::from_le_bytes([b[0], b[1]]))
        .ok_or_else(|| "the PE headers are cut short".to_owned())
}

fn u32_at(bytes: &[u8], at: usize) -> Result<u32, String> {
    bytes
        .get(at..at + 4)
        .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .ok_or_else(|| "the PE headers are cut short".to_owned())
}

fn put_u32(bytes: &mut [u8], at: usize, value: u32) {
    bytes[at..at + 4].copy_from_slice(&value.to_le_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A small PE32+ image: headers of 0x400 bytes, one .text section at 0x1000.
    fn stub() -> Vec<u8> {
        let mut image = vec![0u8; 0x600];
        image[..2].copy_from_slice(b"MZ");
        put_u32(&mut image, 0x3c, 0x80);
        image[0x80..0x84].copy_from_slice(b"PE\0\0");
        let coff = 0x84;
        image[coff..coff + 2].copy_from_slice(&0x8664u16.to_le_bytes());
        image[coff + 2..coff + 4].copy_from_slice(&1u16.to_le_bytes());
        image[coff + 16..coff + 18].copy_from_slice(&240u16.to_le_bytes());
        let optional = coff + 20;
        image[optional..optional + 2].copy_from_slice(&PE32_PLUS.to_le_bytes());
        put_u32(&mut image, optional + 32, 0x1000);
        put_u32(&mut image, optional + 36, 0x200);
        put_u32(&mut image, optional + 56, 0x2000);
        put_u32(&mut image, optional + 60, 0x400);
        let table = optional + 240;
        image[table..table + 5].copy_from_slice(b".text");
        put_u32(&mut image, table + 8, 0x123);
        put_u32(&mut image, table + 12, 0x1000);
        put_u32(&mut image, table + 16, 0x200);
        put_u32(&mut image, table + 20, 0x400);
        image[0x400..0x410].fill(0xcc);
        image
    }

    #[test]
    fn sections_follow_the_stub_at_aligned_addresses() {
        let linux = vec![7u8; 5000];
        let image = build(
            &stub(),
            &[
                Section {
                    name: ".osrel",
                    data: b"ID=amber\n",
                },
                Section {
                    name: ".linux",
                    data: &linux,
                },
            ],
        )
        .unwrap();
        let listed = sections(&image).unwrap();
        assert_eq!(
            listed,
            vec![
                (".text".to_owned(), 0x1000, 0x123),
                (".osrel".to_owned(), 0x2000, 9),
                (".linux".to_owned(), 0x3000, 5000),
            ]
        );
        // The stub's own bytes are untouched; the data is where the headers say.
        assert_eq!(&image[0x400..0x410], &[0xcc; 16]);
        assert_eq!(&image[0x600..0x609], b"ID=amber\n");
        assert_eq!(&image[0x800..0x800 + 5000], &linux[..]);
        assert_eq!(image.len() % 0x200, 0);
        let optional = 0x84 + 20;
        assert_eq!(u32_at(&image, optional + 56).unwrap(), 0x5000);
        let sum = u32_at(&image, optional + 64).unwrap();
        assert_eq!(checksum(&image, optional + 64), sum);
    }

    #[test]
    fn the_same_inputs_give_the_same_bytes() {
        let build_once = || {
            build(
                &stub(),
                &[Section {
                    name: ".cmdline",
                    data: b"console=ttyS0",
                }],
            )
            .unwrap()
        };
        assert_eq!(build_once(), build_once());
    }

    #[test]
    fn what_does_not_fit_is_refused() {
        let many: Vec<Section> = (0..15)
            .map(|_| Section {
                name: ".x",
                data: b"",
            })
            .collect();
        assert!(build(&stub(), &many).unwrap_err().contains("room for"));
        let long = [Section {
            name: ".toolongname",
            data: b"",
        }];
        assert!(build(&stub(), &long).unwrap_err().contains("1 to 8 bytes"));
        assert!(build(b"not a pe", &[]).unwrap_err().contains("not a PE"));
    }
}
