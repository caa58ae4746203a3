//! RFC 3074 load balancing: which server of the pair answers a client in NORMAL (D12 §5.3).

/// RFC 3074 §6's mixing table: a permutation of 0..=255 in pseudo-random order.
const MIXING: [u8; 256] = [
    251, 175, 119, 215, 81, 14, 79, 191, 103, 49, 181, 143, 186, 157, 0, 232, //
    31, 32, 55, 60, 152, 58, 17, 237, 174, 70, 160, 144, 220, 90, 57, 223, //
    59, 3, 18, 140, 111, 166, 203, 196, 134, 243, 124, 95, 222, 179, 197, 65, //
    180, 48, 36, 15, 107, 46, 233, 130, 165, 30, 123, 161, 209, 23, 97, 16, //
    40, 91, 219, 61, 100, 10, 210, 109, 250, 127, 22, 138, 29, 108, 244, 67, //
    207, 9, 178, 204, 74, 98, 126, 249, 167, 116, 34, 77, 193, 200, 121, 5, //
    20, 113, 71, 35, 128, 13, 182, 94, 25, 226, 227, 199, 75, 27, 41, 245, //
    230, 224, 43, 225, 177, 26, 155, 150, 212, 142, 218, 115, 241, 73, 88, 105, //
    39, 114, 62, 255, 192, 201, 145, 214, 168, 158, 221, 148, 154, 122, 12, 84, //
    82, 163, 44, 139, 228, 236, 205, 242, 217, 11, 187, 146, 159, 64, 86, 239, //
    195, 42, 106, 198, 118, 112, 184, 172, 87, 2, 173, 117, 176, 229, 247, 253, //
    137, 185, 99, 164, 102, 147, 45, 66, 231, 52, 141, 211, 194, 206, 246, 238, //
    56, 110, 78, 248, 63, 240, 189, 93, 92, 51, 53, 183, 19, 171, 72, 50, //
    33, 104, 101, 69, 8, 252, 83, 120, 76, 135, 85, 54, 202, 125, 188, 213, //
    96, 235, 136, 208, 162, 129, 190, 132, 156, 38, 47, 1, 7, 254, 24, 4, //
    216, 131, 89, 21, 28, 133, 37, 153, 149, 80, 170, 68, 6, 169, 234, 151, //
];

/// The RFC 3074 bucket (0..=255) of a client key: the value of its option 61 (type byte
/// included) if it sent one, else its `chaddr` (`hlen` bytes).
pub fn bucket(key: &[u8]) -> u8 {
    // The hash starts from the key's length (mod 256) and mixes the bytes from the last.
    key.iter()
        .rev()
        .fold(key.len() as u8, |h, &b| MIXING[usize::from(h ^ b)])
}

/// How a hash bucket assignment's bits are read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum BitOrder {
    /// Bucket `b` is bit `b & 7` (least significant first) of byte `b >> 3`, as D12 §12.11 and
    /// RFC 3074 draw it.
    Draft,
    /// ISC dhcpd 4.4 tests bit `b & 3` of byte `b >> 3` (`load_balance_mine`). It agrees with
    /// [`BitOrder::Draft`] wherever each byte is all ones or all zeros, as with every `split`
    /// that is a multiple of 8; towards ISC, the pair must read the map as ISC does.
    Isc,
}

/// The 256-bit hash bucket assignment carried in CONNECT: a set bit means the primary answers
/// that bucket (ISC's reading, which this crate follows; the secondary answers the rest).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct HashBucketAssignment(pub [u8; 32]);

impl HashBucketAssignment {
    /// The primary answers buckets `0..split` (ISC's `split N`; 128 is an even split).
    pub fn split(split: u16) -> Self {
        let mut map = [0u8; 32];
        for b in 0..usize::from(split.min(256)) {
            map[b >> 3] |= 1 << (b & 7);
        }
        HashBucketAssignment(map)
    }

    /// Whether the primary answers `bucket`.
    pub fn primary_answers(&self, bucket: u8, order: BitOrder) -> bool {
        let bit = match order {
            BitOrder::Draft => bucket & 7,
            BitOrder::Isc => bucket & 3,
        };
        self.0[usize::from(bucket >> 3)] & (1 << bit) != 0
    }
}
