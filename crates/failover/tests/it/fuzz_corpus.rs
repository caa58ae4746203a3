//! Runs the failover fuzz target's body on stable over its checked-in corpus (`fuzz/corpus/
//! failover_decode/`: ISC's golden messages) and deterministic mutations of every file:
//! truncations, bit flips, and header fields (length, type, payload offset) set to edge values.

use std::path::PathBuf;

use crate::failover_targets::failover_decode;

fn corpus() -> Vec<Vec<u8>> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/corpus/failover_decode");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("corpus {}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    files
        .into_iter()
        .map(|p| std::fs::read(p).unwrap())
        .collect()
}

#[test]
fn the_corpus_and_its_mutations_never_panic() {
    let corpus = corpus();
    assert_eq!(corpus.len(), 27);
    let mut accepted = 0;
    for file in &corpus {
        if peregrine_failover::message::decode(file).is_ok() {
            accepted += 1;
        }
        failover_decode(file);
        for cut in 0..file.len() {
            failover_decode(&file[..cut]);
        }
        for bit in 0..file.len() * 8 {
            let mut m = file.clone();
            m[bit / 8] ^= 1 << (bit % 8);
            failover_decode(&m);
        }
        for (at, values) in [
            (0, &[0u8, 11, 12, 0xff][..]),
            (1, &[0, 11, 12, 13, 0xff]),
            (2, &[0, 13, 127, 128, 255]),
            (3, &[0, 8, 11, 13, 0xff]),
        ] {
            for &v in values {
                let mut m = file.clone();
                m[at] = v;
                failover_decode(&m);
            }
        }
    }
    assert_eq!(accepted, corpus.len(), "every golden message decodes");
}
