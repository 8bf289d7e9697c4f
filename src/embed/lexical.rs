//! The built-in embedder: feature hashing of character 3–5-grams (of each word, with boundary
//! marks) and of whole words into 384 signed buckets, L2-normalised. Deterministic, no model, no
//! network. It measures shared wording — "reset my password" is near "password reset" — not
//! meaning ("forgotten password" and "can't log in" share little).

pub const DIMS: usize = 384;
/// Stored in `cache_embeddings.model`; a change to the hashing must change it.
pub const MODEL_ID: &str = "lexical-v1-384";

/// FNV-1a, 64-bit: stable across builds and platforms (unlike `std`'s hasher).
fn fnv1a(parts: &[&[u8]]) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for part in parts {
        for &b in *part {
            hash ^= u64::from(b);
            hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
        }
    }
    hash
}

fn add(vector: &mut [f32], hash: u64, weight: f32) {
    let bucket = (hash % DIMS as u64) as usize;
    let sign = if hash >> 63 == 0 { 1.0 } else { -1.0 };
    vector[bucket] += sign * weight;
}

/// The vector of `text`; all zeros when it has no letters or digits.
pub fn embed(text: &str) -> Vec<f32> {
    let mut vector = vec![0.0f32; DIMS];
    let lower = text.to_lowercase();
    for word in lower
        .split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
    {
        add(&mut vector, fnv1a(&[b"w:", word.as_bytes()]), 1.0);
        let marked: Vec<char> = std::iter::once('<')
            .chain(word.chars())
            .chain(std::iter::once('>'))
            .collect();
        let mut buf = [0u8; 4 * 5];
        for n in 3..=5 {
            for gram in marked.windows(n) {
                let mut len = 0;
                for c in gram {
                    len += c.encode_utf8(&mut buf[len..]).len();
                }
                add(&mut vector, fnv1a(&[b"c:", &buf[..len]]), 0.5);
            }
        }
    }
    normalise(&mut vector);
    vector
}

/// Scales `vector` to length 1 (a zero vector stays zero).
pub fn normalise(vector: &mut [f32]) {
    let norm = vector.iter().map(|x| x * x).sum::<f32>().sqrt();
    if norm > 0.0 {
        vector.iter_mut().for_each(|x| *x /= norm);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::embed::cosine;

    #[test]
    fn vectors_are_unit_length_and_deterministic() {
        let a = embed("How do I reset my password?");
        assert_eq!(a.len(), DIMS);
        let norm: f32 = a.iter().map(|x| x * x).sum::<f32>().sqrt();
        assert!((norm - 1.0).abs() < 1e-5);
        assert_eq!(a, embed("How do I reset my password?"));
        assert!(embed("?!").iter().all(|x| *x == 0.0));
    }

    #[test]
    fn shared_wording_is_nearer_than_none() {
        let q = embed("reset my password");
        let near = embed("how to reset a password");
        let far = embed("weather in Paris today");
        assert!(cosine(&q, &near) > cosine(&q, &far) + 0.3);
        assert!((cosine(&q, &q) - 1.0).abs() < 1e-5);
    }
}
