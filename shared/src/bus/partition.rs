//! Where a keyed record lands: Kafka's default partitioner — murmur2 of the key bytes, made
//! positive, modulo the partition count — exactly as librdkafka's `murmur2_random` (the
//! producer's configured partitioner) and the Java client compute it. A process can so tell
//! which partition, and therefore which member of a consumer group, a key belongs to without
//! publishing anything: the enricher decides which member runs an account's sync this way
//! (DESIGN §7.4). The embedded log has one partition per topic, where every key lands on 0.

/// Kafka's murmur2 (`org.apache.kafka.common.utils.Utils.murmur2`).
pub fn murmur2(data: &[u8]) -> i32 {
    const SEED: u32 = 0x9747_b28c;
    const M: u32 = 0x5bd1_e995;
    const R: u32 = 24;
    // The length is mixed in as Java's `int` (truncation is what Kafka does too).
    let mut h: u32 = SEED ^ (data.len() as u32);
    let mut chunks = data.chunks_exact(4);
    for chunk in &mut chunks {
        let mut k = u32::from_le_bytes([chunk[0], chunk[1], chunk[2], chunk[3]]);
        k = k.wrapping_mul(M);
        k ^= k >> R;
        k = k.wrapping_mul(M);
        h = h.wrapping_mul(M);
        h ^= k;
    }
    let tail = chunks.remainder();
    if !tail.is_empty() {
        if tail.len() == 3 {
            h ^= u32::from(tail[2]) << 16;
        }
        if tail.len() >= 2 {
            h ^= u32::from(tail[1]) << 8;
        }
        h ^= u32::from(tail[0]);
        h = h.wrapping_mul(M);
    }
    h ^= h >> 13;
    h = h.wrapping_mul(M);
    h ^= h >> 15;
    h as i32
}

/// The partition of `key` in a topic of `partitions` partitions (at least 1).
pub fn partition_for(key: &str, partitions: i32) -> i32 {
    let positive = murmur2(key.as_bytes()) & 0x7fff_ffff;
    positive % partitions.max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The vectors of Kafka's own `UtilsTest.testMurmur2`.
    #[test]
    fn matches_kafkas_murmur2() {
        let cases: [(&str, i32); 6] = [
            ("21", -973_932_308),
            ("foobar", -790_332_482),
            ("a-little-bit-long-string", -985_981_536),
            ("a-little-bit-longer-string", -1_486_304_829),
            (
                "lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8",
                -58_897_971,
            ),
            ("abc", 479_470_107),
        ];
        for (key, want) in cases {
            assert_eq!(murmur2(key.as_bytes()), want, "{key}");
        }
    }

    #[test]
    fn partitions_are_in_range_and_one_partition_is_zero() {
        for key in ["shop.retailcrm.ru", "", "a", "127.0.0.1:9000"] {
            assert_eq!(partition_for(key, 1), 0);
            assert!((0..12).contains(&partition_for(key, 12)));
        }
    }
}
