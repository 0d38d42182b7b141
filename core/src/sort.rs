//! One small stable sort for the device code, instead of the standard library's sorts.
//!
//! The standard library's sorts are fast and generic: every element type and comparison
//! gets its own copy, several kilobytes each (a few hundred bytes even with the
//! standard library's `optimize_for_size`). Here the sorting is one non-generic merge
//! sort over positions; what each call site adds is its comparison and a short loop
//! that moves the elements into place. The lists sorted on the device are small (keys,
//! files, a generation's packages, search results) or arrive sorted (an index's
//! entries), which the first pass notices. Sorts on a hot path (the solver's search)
//! and host-only code keep the standard library's.

use alloc::vec::Vec;
use core::cmp::Ordering;

/// Sort `items` by `compare`, stably: equal items keep their order.
pub fn sort_by<T>(items: &mut [T], mut compare: impl FnMut(&T, &T) -> Ordering) {
    let order = {
        let items = &*items;
        sorted_positions(items.len(), &mut |a, b| {
            compare(&items[a], &items[b]) == Ordering::Greater
        })
    };
    permute(items, order);
}

/// Sort `items` in their natural order, stably.
pub fn sort<T: Ord>(items: &mut [T]) {
    sort_by(items, T::cmp);
}

/// Sort `items` by a key computed for each comparison, stably.
pub fn sort_by_key<T, K: Ord>(items: &mut [T], mut key: impl FnMut(&T) -> K) {
    sort_by(items, |a, b| key(a).cmp(&key(b)));
}

/// The positions `0..len` in sorted order, by a bottom-up merge sort; `greater(a, b)`
/// tells whether the item at `a` sorts after the one at `b`.
fn sorted_positions(len: usize, greater: &mut dyn FnMut(usize, usize) -> bool) -> Vec<usize> {
    let mut order: Vec<usize> = (0..len).collect();
    if (1..len).all(|at| !greater(at - 1, at)) {
        return order;
    }
    let mut merged = order.clone();
    let mut width = 1;
    while width < len {
        let mut start = 0;
        while start < len {
            let middle = (start + width).min(len);
            let end = (start + 2 * width).min(len);
            let (mut left, mut right) = (start, middle);
            for slot in &mut merged[start..end] {
                // The right run's head goes first only when strictly smaller: stable.
                if right < end && (left == middle || greater(order[left], order[right])) {
                    *slot = order[right];
                    right += 1;
                } else {
                    *slot = order[left];
                    left += 1;
                }
            }
            start = end;
        }
        core::mem::swap(&mut order, &mut merged);
        width *= 2;
    }
    order
}

/// Move `items[order[i]]` to position `i` for every `i`, following each cycle of the
/// permutation with swaps.
fn permute<T>(items: &mut [T], mut order: Vec<usize>) {
    const DONE: usize = usize::MAX;
    for start in 0..items.len() {
        let mut at = start;
        while order[at] != DONE {
            let from = core::mem::replace(&mut order[at], DONE);
            if from == start {
                break;
            }
            items.swap(at, from);
            at = from;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec;

    /// A small deterministic generator, so the tests need no dependency.
    fn numbers(seed: u64, count: usize, modulo: u64) -> Vec<u64> {
        let mut state = seed;
        (0..count)
            .map(|_| {
                state = state
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                (state >> 33) % modulo
            })
            .collect()
    }

    #[test]
    fn sorts_like_the_standard_library() {
        for count in [0, 1, 2, 3, 7, 8, 9, 16, 31, 33, 100, 1000] {
            for seed in 0..4 {
                let mut ours = numbers(seed, count, 1000);
                let mut theirs = ours.clone();
                sort(&mut ours);
                theirs.sort();
                assert_eq!(ours, theirs, "count {count}, seed {seed}");
            }
        }
    }

    #[test]
    fn is_stable() {
        // Pairs (key, original position) with many equal keys: positions must stay in
        // ascending order within each key, as the standard library's stable sort keeps
        // them.
        for count in [5, 17, 64, 257] {
            let keys = numbers(count as u64, count, 4);
            let mut ours: Vec<(u64, usize)> = keys.iter().copied().zip(0..).collect();
            let mut theirs = ours.clone();
            sort_by(&mut ours, |a, b| a.0.cmp(&b.0));
            theirs.sort_by_key(|pair| pair.0);
            assert_eq!(ours, theirs, "count {count}");
        }
    }

    #[test]
    fn sorts_by_key_and_in_reverse() {
        let mut words = vec!["pear", "fig", "apple", "kiwi", "banana"];
        sort_by_key(&mut words, |word| word.len());
        assert_eq!(words, ["fig", "pear", "kiwi", "apple", "banana"]);
        sort_by(&mut words, |a, b| b.cmp(a));
        assert_eq!(words, ["pear", "kiwi", "fig", "banana", "apple"]);
    }

    #[test]
    fn sorted_and_reversed_input() {
        let mut sorted: Vec<u32> = (0..100).collect();
        sort(&mut sorted);
        assert!(sorted.iter().copied().eq(0..100));
        let mut reversed: Vec<u32> = (0..100).rev().collect();
        sort(&mut reversed);
        assert!(reversed.iter().copied().eq(0..100));
    }
}
