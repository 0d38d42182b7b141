//! zlib compression of data and metadata blocks, inline or on worker threads, with
//! results always handed back in submission order so the image does not depend on
//! how many threads ran.

use alloc::boxed::Box;
use alloc::collections::BTreeMap;
use alloc::vec::Vec;

use miniz_oxide::deflate::core::{
    compress, create_comp_flags_from_zip_params, CompressorOxide, TDEFLFlush, TDEFLStatus,
};

/// One zlib compressor, reused for every block it compresses.
pub(super) struct Compressor {
    engine: Box<CompressorOxide>,
}

impl Compressor {
    pub(super) fn new(level: u8) -> Compressor {
        // A positive window size asks for the zlib wrapper, which is what SquashFS's
        // "gzip" compressor stores.
        let flags = create_comp_flags_from_zip_params(i32::from(level), 15, 0);
        Compressor {
            engine: Box::new(CompressorOxide::new(flags)),
        }
    }

    /// Compress `input` into `output`. Returns false, leaving `output` meaningless,
    /// when the result would not be smaller than the input: the block is then stored.
    pub(super) fn compress(&mut self, input: &[u8], output: &mut Vec<u8>) -> bool {
        if input.is_empty() {
            return false;
        }
        self.engine.reset();
        output.clear();
        // An output buffer one byte short of the input makes "does not shrink" show up
        // as an unfinished stream, without compressing into a larger buffer first.
        output.resize(input.len() - 1, 0);
        let (status, _, written) = compress(&mut self.engine, input, output, TDEFLFlush::Finish);
        if status == TDEFLStatus::Done && written < input.len() {
            output.truncate(written);
            true
        } else {
            false
        }
    }
}

/// Where a finished block belongs; the writer records its position there.
#[derive(Debug, Clone, Copy)]
pub(super) enum Target {
    /// The next block of the file record with this index.
    Block { record: u32 },
    /// The fragment block with this index.
    Fragment { index: u32 },
}

/// A block as it goes into the image.
pub(super) enum Encoded {
    /// An all-zero data block: stored as a size of 0, no bytes (a sparse block).
    Sparse,
    /// Stored as is, because compression did not make it smaller.
    Stored(Vec<u8>),
    /// Compressed.
    Compressed(Vec<u8>),
}

/// A block ready to be written: where it goes, its bytes, and the input buffer
/// returned for reuse when it is not the stored bytes themselves.
pub(super) struct Finished {
    pub(super) target: Target,
    pub(super) encoded: Encoded,
    pub(super) spare: Option<Vec<u8>>,
}

/// Whether every byte is zero. Checked a few KiB at a time: each chunk's OR is a
/// vectorized loop, and typical data leaves after the first chunk.
fn is_zero(data: &[u8]) -> bool {
    data.chunks(4096)
        .all(|chunk| chunk.iter().fold(0u8, |all, byte| all | byte) == 0)
}

fn encode(compressor: &mut Compressor, target: Target, data: Vec<u8>) -> Finished {
    if matches!(target, Target::Block { .. }) && is_zero(&data) {
        return Finished {
            target,
            encoded: Encoded::Sparse,
            spare: Some(data),
        };
    }
    let mut output = Vec::with_capacity(data.len());
    if compressor.compress(&data, &mut output) {
        Finished {
            target,
            encoded: Encoded::Compressed(output),
            spare: Some(data),
        }
    } else {
        Finished {
            target,
            encoded: Encoded::Stored(data),
            spare: None,
        }
    }
}

pub(super) struct Job {
    sequence: u64,
    target: Target,
    data: Vec<u8>,
}

/// Compresses blocks and hands them to `commit` in the order they were submitted.
pub(super) enum Encoder {
    /// Compress on the calling thread.
    Inline(Compressor),
    /// Compress on worker threads; at most `limit` blocks are in flight, which bounds memory.
    Threads {
        jobs: Option<std::sync::mpsc::SyncSender<Job>>,
        results: std::sync::mpsc::Receiver<(u64, Finished)>,
        waiting: BTreeMap<u64, Finished>,
        next_sequence: u64,
        next_commit: u64,
        limit: u64,
    },
}

impl Encoder {
    /// Start `threads` workers in `scope` (or none: compress inline when `threads` <= 1).
    pub(super) fn start<'scope, 'env>(
        scope: &'scope std::thread::Scope<'scope, 'env>,
        threads: usize,
        level: u8,
    ) -> Encoder {
        if threads <= 1 {
            return Encoder::Inline(Compressor::new(level));
        }
        let limit = threads as u64 * 2 + 2;
        let (job_sender, job_receiver) = std::sync::mpsc::sync_channel::<Job>(threads * 2);
        let (result_sender, results) = std::sync::mpsc::channel();
        let job_receiver = std::sync::Arc::new(std::sync::Mutex::new(job_receiver));
        for _ in 0..threads {
            let job_receiver = job_receiver.clone();
            let result_sender = result_sender.clone();
            scope.spawn(move || {
                let mut compressor = Compressor::new(level);
                loop {
                    // Hold the lock only to take a job, never while compressing.
                    let job = match job_receiver.lock() {
                        Ok(receiver) => receiver.recv(),
                        Err(_) => return,
                    };
                    let Ok(job) = job else { return };
                    let finished = encode(&mut compressor, job.target, job.data);
                    if result_sender.send((job.sequence, finished)).is_err() {
                        return;
                    }
                }
            });
        }
        Encoder::Threads {
            jobs: Some(job_sender),
            results,
            waiting: BTreeMap::new(),
            next_sequence: 0,
            next_commit: 0,
            limit,
        }
    }

    /// Compress `data` for `target`; `commit` receives finished blocks in order.
    pub(super) fn submit<E>(
        &mut self,
        target: Target,
        data: Vec<u8>,
        commit: &mut impl FnMut(Finished) -> Result<(), E>,
    ) -> Result<(), E> {
        match self {
            Encoder::Inline(compressor) => commit(encode(compressor, target, data)),
            Encoder::Threads {
                jobs,
                next_sequence,
                limit,
                ..
            } => {
                let sequence = *next_sequence;
                *next_sequence += 1;
                let sent = jobs.as_ref().map(|jobs| {
                    jobs.send(Job {
                        sequence,
                        target,
                        data,
                    })
                });
                // A worker only stops early by panicking; the scope re-raises that panic.
                assert!(matches!(sent, Some(Ok(()))), "a compression worker stopped");
                let limit = *limit;
                while self.in_flight() >= limit {
                    self.receive_one(commit)?;
                }
                Ok(())
            }
        }
    }

    /// Wait for every submitted block and commit it, then stop the workers.
    pub(super) fn finish<E>(
        &mut self,
        commit: &mut impl FnMut(Finished) -> Result<(), E>,
    ) -> Result<(), E> {
        loop {
            match self {
                Encoder::Inline(_) => return Ok(()),
                Encoder::Threads {
                    jobs,
                    next_sequence,
                    next_commit,
                    ..
                } => {
                    if next_commit == next_sequence {
                        // Dropping the sender ends the workers' loops.
                        *jobs = None;
                        return Ok(());
                    }
                }
            }
            self.receive_one(commit)?;
        }
    }

    fn in_flight(&self) -> u64 {
        match self {
            Encoder::Inline(_) => 0,
            Encoder::Threads {
                next_sequence,
                next_commit,
                ..
            } => next_sequence - next_commit,
        }
    }

    fn receive_one<E>(
        &mut self,
        commit: &mut impl FnMut(Finished) -> Result<(), E>,
    ) -> Result<(), E> {
        let Encoder::Threads {
            results,
            waiting,
            next_commit,
            ..
        } = self
        else {
            return Ok(());
        };
        let received = results.recv();
        let Ok((sequence, finished)) = received else {
            panic!("a compression worker stopped");
        };
        waiting.insert(sequence, finished);
        while let Some(finished) = waiting.remove(next_commit) {
            *next_commit += 1;
            commit(finished)?;
        }
        Ok(())
    }
}

impl Drop for Encoder {
    fn drop(&mut self) {
        // On an early error the workers must still see the channel close, or the
        // scope would wait for them forever.
        if let Encoder::Threads { jobs, .. } = self {
            *jobs = None;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use miniz_oxide::inflate::decompress_to_vec_zlib;

    #[test]
    fn zero_blocks_are_found() {
        let mut block = vec![0u8; 131_072];
        assert!(is_zero(&block));
        assert!(is_zero(&[]));
        for at in [0, 4095, 4096, 70_000, 131_071] {
            block[at] = 1;
            assert!(!is_zero(&block), "{at}");
            block[at] = 0;
        }
    }

    #[test]
    fn compresses_to_zlib_or_declines() {
        let mut compressor = Compressor::new(9);
        let mut output = Vec::new();
        let text = b"squashfs squashfs squashfs squashfs squashfs squashfs".repeat(100);
        assert!(compressor.compress(&text, &mut output));
        assert!(output.len() < text.len());
        assert_eq!(decompress_to_vec_zlib(&output).unwrap(), text);

        // Bytes with no redundancy do not shrink and must be stored.
        let noise = crate::random::Random::new(0x1234_5678).bytes(4096);
        assert!(!compressor.compress(&noise, &mut output));
        assert!(!compressor.compress(&[], &mut output));
        assert!(!compressor.compress(&[7], &mut output));

        // The compressor is reusable after declining.
        assert!(compressor.compress(&text, &mut output));
        assert_eq!(decompress_to_vec_zlib(&output).unwrap(), text);
    }

    #[test]
    fn threads_commit_in_submission_order() {
        let blocks: Vec<Vec<u8>> = (0..50u32)
            .map(|n| {
                alloc::format!("block {n} ")
                    .repeat(n as usize * 40 + 1)
                    .into_bytes()
            })
            .collect();
        let run = |threads: usize| {
            let mut seen = Vec::new();
            std::thread::scope(|scope| {
                let mut encoder = Encoder::start(scope, threads, 6);
                let mut commit = |finished: Finished| -> Result<(), ()> {
                    let Target::Block { record } = finished.target else {
                        return Err(());
                    };
                    let bytes = match finished.encoded {
                        Encoded::Compressed(bytes) => decompress_to_vec_zlib(&bytes).unwrap(),
                        Encoded::Stored(bytes) => bytes,
                        Encoded::Sparse => Vec::new(),
                    };
                    seen.push((record, bytes));
                    Ok(())
                };
                for (record, block) in blocks.iter().enumerate() {
                    let target = Target::Block {
                        record: record as u32,
                    };
                    encoder.submit(target, block.clone(), &mut commit).unwrap();
                }
                encoder.finish(&mut commit).unwrap();
            });
            seen
        };
        let expected: Vec<(u32, Vec<u8>)> = blocks
            .iter()
            .enumerate()
            .map(|(n, block)| (n as u32, block.clone()))
            .collect();
        assert_eq!(run(1), expected);
        assert_eq!(run(3), expected);
    }
}
