//! A DOS (MBR) partition table, for the Raspberry Pi boards: the Pi's boot ROM reads
//! only MBR reliably (GPT support in its EEPROM keeps regressing, DESIGN §10).
//!
//! Partitions start on 4 MiB boundaries, as Raspberry Pi OS and Debian's Pi images
//! place them: SD cards erase in blocks of up to 4 MiB, and a file system that starts
//! on one wears and performs best. The disk signature is derived from the board name,
//! so an image builds to the same bytes every time.

use crate::gpt::{derived_guid, SECTOR};

/// Where partitions start, and what their sizes are rounded to.
pub const ALIGN: u64 = 4 << 20;
/// FAT32 with LBA addressing: the type the Pi firmware boots from.
pub const TYPE_FAT32_LBA: u8 = 0x0c;
/// FAT16 with LBA addressing: the Pi's small autoboot partition.
pub const TYPE_FAT16_LBA: u8 = 0x0e;
/// Linux.
pub const TYPE_LINUX: u8 = 0x83;

#[derive(Debug, Clone)]
pub struct Partition {
    pub kind: u8,
    /// Byte offset on the disk (a multiple of [`ALIGN`]).
    pub offset: u64,
    pub size: u64,
}

#[derive(Debug, Clone)]
pub struct Layout {
    pub signature: u32,
    pub partitions: Vec<Partition>,
    pub disk_size: u64,
}

impl Layout {
    /// Place up to four primary partitions `(type, size)` one after the other from
    /// 4 MiB. The disk is `disk_size` bytes when given (it must hold them all), else
    /// just big enough.
    pub fn new(
        seed: &str,
        partitions: &[(u8, u64)],
        disk_size: Option<u64>,
    ) -> Result<Layout, String> {
        if partitions.len() > 4 {
            return Err("an MBR holds at most four primary partitions".into());
        }
        let mut offset = ALIGN;
        let mut placed = Vec::new();
        for &(kind, size) in partitions {
            let size = size.div_ceil(ALIGN) * ALIGN;
            placed.push(Partition { kind, offset, size });
            offset += size;
        }
        let disk_size = match disk_size {
            Some(size) if size < offset => {
                return Err(format!(
                    "the partitions take {offset} bytes, more than the disk's {size}"
                ))
            }
            Some(size) => size,
            None => offset,
        };
        if disk_size / SECTOR > u32::MAX as u64 {
            return Err("an MBR addresses at most 2 TiB".into());
        }
        let guid = derived_guid(&format!("{seed}/mbr"));
        Ok(Layout {
            signature: u32::from_le_bytes([guid[0], guid[1], guid[2], guid[3]]),
            partitions: placed,
            disk_size,
        })
    }

    /// The disk's first sector.
    pub fn sector(&self) -> [u8; 512] {
        let mut sector = [0u8; 512];
        sector[440..444].copy_from_slice(&self.signature.to_le_bytes());
        for (index, partition) in self.partitions.iter().enumerate() {
            let entry = 446 + 16 * index;
            // Not marked active: the Pi ignores the flag, and PCs boot these by UEFI.
            sector[entry] = 0;
            // CHS fields that say "use LBA" (the maximum), as every modern tool writes.
            sector[entry + 1..entry + 4].copy_from_slice(&[0xfe, 0xff, 0xff]);
            sector[entry + 4] = partition.kind;
            sector[entry + 5..entry + 8].copy_from_slice(&[0xfe, 0xff, 0xff]);
            let first = (partition.offset / SECTOR) as u32;
            let count = (partition.size / SECTOR) as u32;
            sector[entry + 8..entry + 12].copy_from_slice(&first.to_le_bytes());
            sector[entry + 12..entry + 16].copy_from_slice(&count.to_le_bytes());
        }
        sector[510] = 0x55;
        sector[511] = 0xaa;
        sector
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partitions_are_aligned_and_recorded() {
        let layout = Layout::new(
            "rpi3",
            &[(TYPE_FAT32_LBA, 100 << 20), (TYPE_LINUX, 256 << 20)],
            Some(512 << 20),
        )
        .unwrap();
        assert_eq!(layout.partitions[0].offset, 4 << 20);
        assert_eq!(layout.partitions[0].size, 100 << 20);
        assert_eq!(layout.partitions[1].offset, 104 << 20);
        let sector = layout.sector();
        assert_eq!(&sector[510..], &[0x55, 0xaa]);
        assert_eq!(sector[446 + 4], 0x0c);
        assert_eq!(
            u32::from_le_bytes(sector[446 + 8..446 + 12].try_into().unwrap()),
            8192
        );
        assert_eq!(sector[462 + 4], 0x83);
        assert_eq!(
            u32::from_le_bytes(sector[462 + 12..462 + 16].try_into().unwrap()),
            (256 << 20) / 512
        );
        assert_eq!(
            layout.sector(),
            Layout::new(
                "rpi3",
                &[(TYPE_FAT32_LBA, 100 << 20), (TYPE_LINUX, 256 << 20)],
                Some(512 << 20)
            )
            .unwrap()
            .sector()
        );
        assert!(Layout::new("x", &[(TYPE_LINUX, 600 << 20)], Some(512 << 20)).is_err());
        assert!(Layout::new("x", &[(TYPE_LINUX, 1); 5], None).is_err());
    }

    /// sfdisk, the peer, reads the table as written.
    #[test]
    fn sfdisk_reads_it() {
        if !amber_testkit::require_tool("sfdisk", "fdisk") {
            return;
        }
        let layout = Layout::new(
            "rpi3",
            &[(TYPE_FAT32_LBA, 64 << 20), (TYPE_LINUX, 32 << 20)],
            None,
        )
        .unwrap();
        let dir = std::env::temp_dir().join(format!("amber-mbr-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let disk = dir.join("disk.img");
        let file = std::fs::File::create(&disk).unwrap();
        file.set_len(layout.disk_size).unwrap();
        std::os::unix::fs::FileExt::write_all_at(&file, &layout.sector(), 0).unwrap();
        let output = std::process::Command::new("sfdisk")
            .args(["--dump"])
            .arg(&disk)
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&output.stdout);
        std::fs::remove_dir_all(&dir).unwrap();
        assert!(output.status.success(), "{text}");
        assert!(text.contains("label: dos"), "{text}");
        assert!(
            text.contains("start=        8192, size=      131072, type=c"),
            "{text}"
        );
        assert!(
            text.contains("start=      139264, size=       65536, type=83"),
            "{text}"
        );
    }
}
