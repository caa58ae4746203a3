//! The Internet checksum (RFC 1071) and the IPv4 pseudo-header sum used by UDP.

use core::net::Ipv4Addr;

/// Adds `data` to a running one's-complement sum; the result is at most `0xffff`.
///
/// Sums 16-bit big-endian words; an odd trailing byte is padded with zero on the right.
pub fn accumulate(sum: u32, data: &[u8]) -> u32 {
    // Bulk: native-endian 32-bit halves of 8-byte words, no byte swaps. The one's-complement sum
    // is byte-order independent (RFC 1071 section 2(B)): folded to 16 bits, a sum of swapped
    // words is the swapped sum of the words.
    // Carries out of the 64-bit sum are counted apart: 2^64 = 1 (mod 0xffff), so each adds one.
    let (mut native, mut carries) = (0u64, 0u64);
    let mut chunks = data.chunks_exact(8);
    for c in &mut chunks {
        let w = u64::from_ne_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]);
        let (s, overflow) = native.overflowing_add(w);
        native = s;
        carries += u64::from(overflow);
    }
    let native = fold(u64::from(fold(native)) + carries) as u16;
    let mut wide = u64::from(sum) + u64::from(u16::from_be_bytes(native.to_ne_bytes()));
    let mut rest = chunks.remainder();
    while rest.len() >= 2 {
        wide += u64::from(u16::from_be_bytes([rest[0], rest[1]]));
        rest = &rest[2..];
    }
    if let [last] = rest {
        wide += u64::from(*last) << 8;
    }
    fold(wide)
}

/// Folds a 64-bit sum to at most `0xffff` with end-around carry.
fn fold(mut wide: u64) -> u32 {
    while wide > 0xffff {
        wide = (wide & 0xffff) + (wide >> 16);
    }
    wide as u32
}

/// Folds a running sum into the final 16-bit one's-complement checksum.
pub fn finish(mut sum: u32) -> u16 {
    sum = (sum & 0xffff) + (sum >> 16);
    sum = (sum & 0xffff) + (sum >> 16);
    !(sum as u16)
}

/// The checksum of `data` alone.
pub fn checksum(data: &[u8]) -> u16 {
    finish(accumulate(0, data))
}

/// The IPv4 pseudo-header sum for a transport segment (RFC 768).
pub fn pseudo_header(src: Ipv4Addr, dst: Ipv4Addr, protocol: u8, length: u16) -> u32 {
    let mut sum = accumulate(0, &src.octets());
    sum = accumulate(sum, &dst.octets());
    sum + u32::from(protocol) + u32::from(length)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc1071_example() {
        // RFC 1071 section 3: the sum of these words is ddf2, so the checksum is 220d.
        let data = [0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7];
        assert_eq!(checksum(&data), !0xddf2);
    }

    #[test]
    fn odd_length_pads_right() {
        assert_eq!(checksum(&[0x12]), !0x1200);
        assert_eq!(checksum(&[0x12, 0x34, 0x56]), !(0x1234 + 0x5600));
    }

    fn naive(init: u32, data: &[u8]) -> u16 {
        let mut sum = init;
        for w in data.chunks(2) {
            sum += u32::from(u16::from_be_bytes([w[0], *w.get(1).unwrap_or(&0)]));
            sum = (sum & 0xffff) + (sum >> 16);
        }
        finish(sum)
    }

    proptest::proptest! {
        #[test]
        fn matches_a_naive_sum(
            data in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..2000),
            init in 0u32..=0xffff,
        ) {
            proptest::prop_assert_eq!(finish(accumulate(init, &data)), naive(init, &data));
        }
    }

    #[test]
    fn all_ones_words_carry_out_of_64_bits() {
        let data = [0xffu8; 4096];
        assert_eq!(checksum(&data), naive(0, &data));
    }

    #[test]
    fn wide_and_narrow_sums_agree() {
        let data: std::vec::Vec<u8> = (0..=255u8).cycle().take(1031).collect();
        let mut narrow: u32 = 0;
        for w in data.chunks(2) {
            narrow += u32::from(u16::from_be_bytes([w[0], *w.get(1).unwrap_or(&0)]));
        }
        assert_eq!(checksum(&data), finish(narrow));
    }
}
