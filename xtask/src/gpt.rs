//! A GUID partition table, written directly: protective MBR, primary header and
//! partition array at the start, backup array and header at the end, CRC32 over both.
//!
//! GUIDs are derived from the board name and the partition's role rather than drawn at
//! random, so an image builds to the same bytes every time.

pub const SECTOR: u64 = 512;
/// Partitions start on 1 MiB boundaries.
pub const ALIGN: u64 = 1 << 20;
const ENTRIES: u64 = 128;
const ENTRY_SIZE: u64 = 128;
/// Sectors the partition array takes: 128 entries of 128 bytes.
const ARRAY_SECTORS: u64 = ENTRIES * ENTRY_SIZE / SECTOR;

/// The EFI system partition type.
pub const TYPE_ESP: &str = "C12A7328-F81F-11D2-BA4B-00A0C93EC93B";
/// Linux filesystem data.
pub const TYPE_LINUX: &str = "0FC63DAF-8483-4772-8E79-3D69D8477DE4";

#[derive(Debug, Clone)]
pub struct Partition {
    pub name: String,
    pub type_guid: [u8; 16],
    pub unique_guid: [u8; 16],
    /// Byte offset on the disk (a multiple of [`ALIGN`]).
    pub offset: u64,
    pub size: u64,
}

/// A disk layout: partitions placed one after the other, aligned.
#[derive(Debug, Clone)]
pub struct Layout {
    pub disk_guid: [u8; 16],
    pub partitions: Vec<Partition>,
    pub disk_size: u64,
}

impl Layout {
    /// Place partitions `(name, type, size)` in order from 1 MiB, each size rounded up
    /// to the alignment, and leave room for the backup table at the end.
    pub fn new(seed: &str, partitions: &[(&str, &str, u64)]) -> Result<Layout, String> {
        let mut offset = ALIGN;
        let mut placed = Vec::new();
        for (name, type_guid, size) in partitions {
            let size = size.div_ceil(ALIGN) * ALIGN;
            if name.encode_utf16().count() > 36 {
                return Err(format!(
                    "partition name `{name}` is longer than 36 characters"
                ));
            }
            placed.push(Partition {
                name: (*name).to_owned(),
                type_guid: parse_guid(type_guid)?,
                unique_guid: derived_guid(&format!("{seed}/partition/{name}")),
                offset,
                size,
            });
            offset += size;
        }
        Ok(Layout {
            disk_guid: derived_guid(&format!("{seed}/disk")),
            partitions: placed,
            disk_size: offset + ALIGN,
        })
    }

    /// The protective MBR, primary header and array: the disk's first sectors.
    pub fn head(&self) -> Vec<u8> {
        let last = self.disk_size / SECTOR - 1;
        let mut out = vec![0u8; (SECTOR * (2 + ARRAY_SECTORS)) as usize];
        // Protective MBR: one partition of type 0xEE covering the disk (or as much of
        // it as 32 bits can say).
        let entry = &mut out[446..462];
        entry[1..4].copy_from_slice(&[0x00, 0x02, 0x00]);
        entry[4] = 0xee;
        entry[5..8].copy_from_slice(&[0xff, 0xff, 0xff]);
        entry[8..12].copy_from_slice(&1u32.to_le_bytes());
        entry[12..16].copy_from_slice(&(last.min(u64::from(u32::MAX)) as u32).to_le_bytes());
        out[510] = 0x55;
        out[511] = 0xaa;
        let array = self.array();
        let header = self.header(1, last, 2, &array);
        out[SECTOR as usize..SECTOR as usize + header.len()].copy_from_slice(&header);
        out[2 * SECTOR as usize..].copy_from_slice(&array);
        out
    }

    /// The backup array and header: the disk's last sectors.
    pub fn tail(&self) -> Vec<u8> {
        let last = self.disk_size / SECTOR - 1;
        let array = self.array();
        let mut out = array.clone();
        let mut header = self.header(last, 1, last - ARRAY_SECTORS, &array);
        header.resize(SECTOR as usize, 0);
        out.extend_from_slice(&header);
        out
    }

    /// Byte offset of [`Layout::tail`].
    pub fn tail_offset(&self) -> u64 {
        self.disk_size - (ARRAY_SECTORS + 1) * SECTOR
    }

    fn array(&self) -> Vec<u8> {
        let mut array = vec![0u8; (ENTRIES * ENTRY_SIZE) as usize];
        for (index, partition) in self.partitions.iter().enumerate() {
            let entry = &mut array[index * ENTRY_SIZE as usize..][..ENTRY_SIZE as usize];
            entry[0..16].copy_from_slice(&partition.type_guid);
            entry[16..32].copy_from_slice(&partition.unique_guid);
            let first = partition.offset / SECTOR;
            let last = (partition.offset + partition.size) / SECTOR - 1;
            entry[32..40].copy_from_slice(&first.to_le_bytes());
            entry[40..48].copy_from_slice(&last.to_le_bytes());
            for (at, unit) in partition.name.encode_utf16().enumerate() {
                entry[56 + 2 * at..58 + 2 * at].copy_from_slice(&unit.to_le_bytes());
            }
        }
        array
    }

    fn header(&self, current: u64, backup: u64, array_lba: u64, array: &[u8]) -> Vec<u8> {
        let last = self.disk_size / SECTOR - 1;
        let mut header = vec![0u8; 92];
        header[0..8].copy_from_slice(b"EFI PART");
        header[8..12].copy_from_slice(&0x0001_0000u32.to_le_bytes());
        header[12..16].copy_from_slice(&92u32.to_le_bytes());
        header[24..32].copy_from_slice(&current.to_le_bytes());
        header[32..40].copy_from_slice(&backup.to_le_bytes());
        header[40..48].copy_from_slice(&(2 + ARRAY_SECTORS).to_le_bytes());
        header[48..56].copy_from_slice(&(last - ARRAY_SECTORS - 1).to_le_bytes());
        header[56..72].copy_from_slice(&self.disk_guid);
        header[72..80].copy_from_slice(&array_lba.to_le_bytes());
        header[80..84].copy_from_slice(&(ENTRIES as u32).to_le_bytes());
        header[84..88].copy_from_slice(&(ENTRY_SIZE as u32).to_le_bytes());
        header[88..92].copy_from_slice(&crc32(array).to_le_bytes());
        let checksum = crc32(&header);
        header[16..20].copy_from_slice(&checksum.to_le_bytes());
        header
    }
}

/// `C12A7328-F81F-11D2-BA4B-00A0C93EC93B` → on-disk bytes (first three fields
/// little-endian, the rest as written).
pub fn parse_guid(text: &str) -> Result<[u8; 16], String> {
    let hex: String = text.chars().filter(|c| *c != '-').collect();
    let groups: Vec<usize> = text.split('-').map(str::len).collect();
    if hex.len() != 32 || groups != [8, 4, 4, 4, 12] {
        return Err(format!("`{text}` is not a GUID"));
    }
    let mut bytes = [0u8; 16];
    for (index, byte) in bytes.iter_mut().enumerate() {
        *byte = u8::from_str_radix(&hex[2 * index..2 * index + 2], 16)
            .map_err(|_| format!("`{text}` is not a GUID"))?;
    }
    bytes[0..4].reverse();
    bytes[4..6].reverse();
    bytes[6..8].reverse();
    Ok(bytes)
}

/// A version-4-shaped GUID whose bits come from hashing `seed` (FNV-1a, twice).
pub fn derived_guid(seed: &str) -> [u8; 16] {
    let hash = |salt: u64| {
        seed.bytes()
            .fold(0xcbf2_9ce4_8422_2325 ^ salt, |hash, byte| {
                (hash ^ u64::from(byte)).wrapping_mul(0x0100_0000_01b3)
            })
    };
    let mut bytes = [0u8; 16];
    bytes[..8].copy_from_slice(&hash(0).to_le_bytes());
    bytes[8..].copy_from_slice(&hash(0x9e37_79b9_7f4a_7c15).to_le_bytes());
    bytes[7] = (bytes[7] & 0x0f) | 0x40;
    bytes[8] = (bytes[8] & 0x3f) | 0x80;
    bytes
}

/// The standard GUID text of on-disk GUID bytes.
pub fn guid_text(bytes: &[u8; 16]) -> String {
    let mut ordered = *bytes;
    ordered[0..4].reverse();
    ordered[4..6].reverse();
    ordered[6..8].reverse();
    let hex: String = ordered.iter().map(|b| format!("{b:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &hex[0..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..32]
    )
}

/// CRC-32 (IEEE 802.3, reflected), as GPT uses.
pub fn crc32(bytes: &[u8]) -> u32 {
    let mut crc = 0xffff_ffffu32;
    for &byte in bytes {
        crc ^= u32::from(byte);
        for _ in 0..8 {
            crc = if crc & 1 == 1 {
                (crc >> 1) ^ 0xedb8_8320
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crc32_known_answer() {
        assert_eq!(crc32(b"123456789"), 0xcbf4_3926);
        assert_eq!(crc32(b""), 0);
    }

    #[test]
    fn guid_round_trip_and_byte_order() {
        let bytes = parse_guid(TYPE_ESP).unwrap();
        assert_eq!(bytes[..4], [0x28, 0x73, 0x2a, 0xc1]);
        assert_eq!(bytes[8..], [0xba, 0x4b, 0x00, 0xa0, 0xc9, 0x3e, 0xc9, 0x3b]);
        assert_eq!(guid_text(&bytes), TYPE_ESP.to_lowercase());
        assert!(parse_guid("C12A7328-F81F-11D2-BA4B").is_err());
        assert!(parse_guid("X12A7328-F81F-11D2-BA4B-00A0C93EC93B").is_err());
    }

    #[test]
    fn layout_places_and_checksums() {
        let layout = Layout::new(
            "test",
            &[
                ("EFI system", TYPE_ESP, 3 << 20),
                ("amber-data", TYPE_LINUX, 5 << 20),
            ],
        )
        .unwrap();
        assert_eq!(layout.partitions[0].offset, 1 << 20);
        assert_eq!(layout.partitions[1].offset, 4 << 20);
        assert_eq!(layout.disk_size, 10 << 20);
        let head = layout.head();
        let header = &head[512..604];
        let mut zeroed = header.to_vec();
        zeroed[16..20].fill(0);
        assert_eq!(crc32(&zeroed).to_le_bytes(), header[16..20]);
        assert_eq!(crc32(&head[1024..]).to_le_bytes(), header[88..92]);
        let tail = layout.tail();
        assert_eq!(tail.len() as u64, layout.disk_size - layout.tail_offset());
        assert_eq!(&tail[16384..16392], b"EFI PART");
        // The two headers point at each other.
        let last = layout.disk_size / 512 - 1;
        assert_eq!(header[32..40], last.to_le_bytes());
        assert_eq!(tail[16384 + 32..16384 + 40], 1u64.to_le_bytes());
        assert_ne!(
            layout.partitions[0].unique_guid,
            layout.partitions[1].unique_guid
        );
    }

    /// sgdisk (gdisk) reads our table and finds no problem.
    #[test]
    fn sgdisk_verifies_it() {
        if !crate::cmd::have("sgdisk") && !std::path::Path::new("/usr/sbin/sgdisk").exists() {
            eprintln!("sgdisk is not installed: `cargo xtask deps` installs gdisk");
            return;
        }
        let layout = Layout::new(
            "test",
            &[
                ("EFI system", TYPE_ESP, 2 << 20),
                ("amber-data", TYPE_LINUX, 2 << 20),
            ],
        )
        .unwrap();
        let mut disk = vec![0u8; layout.disk_size as usize];
        let head = layout.head();
        disk[..head.len()].copy_from_slice(&head);
        let tail = layout.tail();
        disk[layout.tail_offset() as usize..].copy_from_slice(&tail);
        let file = std::env::temp_dir().join(format!("xtask-gpt-{}.img", std::process::id()));
        std::fs::write(&file, &disk).unwrap();
        let verify = std::process::Command::new("sgdisk")
            .arg("-v")
            .arg(&file)
            .output()
            .unwrap();
        let print = std::process::Command::new("sgdisk")
            .arg("-p")
            .arg(&file)
            .output()
            .unwrap();
        std::fs::remove_file(&file).unwrap();
        let verify = String::from_utf8_lossy(&verify.stdout);
        let print = String::from_utf8_lossy(&print.stdout);
        assert!(verify.contains("No problems found"), "{verify}");
        assert!(print.contains("EF00"), "{print}");
        assert!(print.contains("amber-data"), "{print}");
    }
}
