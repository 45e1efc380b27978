//! A deterministic synthetic image dataset whose dimensions and JPEG sizes follow COCO's.
//!
//! COCO train2017 has 118,287 JPEGs, about 18.0 GiB (≈ 160 KB each); nearly all have a longest side of
//! 640 px and the median image is 640×480. Images here are drawn from a fixed table of COCO's common
//! dimensions, filled with smooth gradients, a few flat shapes and fine-grained noise so that the JPEG
//! encoder produces sizes of the same order as photographs. The same seed and count always give
//! the same bytes.

use image::codecs::jpeg::JpegEncoder;
use image::{ExtendedColorType, RgbImage};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::manifest::{Entry, sha256_hex};

/// Common COCO dimensions (width, height) with their weight in per-mille: the median is 640×480.
const DIMENSIONS: &[((u32, u32), u32)] = &[
    ((640, 480), 420),
    ((640, 427), 230),
    ((640, 426), 60),
    ((640, 424), 40),
    ((480, 640), 90),
    ((427, 640), 60),
    ((640, 640), 30),
    ((640, 360), 30),
    ((500, 375), 20),
    ((640, 512), 20),
];

/// JPEG quality of the generated images; COCO's photographs were mostly saved at 85–95.
const QUALITY: u8 = 90;

/// Picks the dimensions of image `index` of the dataset with `seed`.
pub fn dimensions(rng: &mut ChaCha8Rng) -> (u32, u32) {
    let total: u32 = DIMENSIONS.iter().map(|(_, w)| w).sum();
    let mut pick = rng.random_range(0..total);
    for (dims, weight) in DIMENSIONS {
        if pick < *weight {
            return *dims;
        }
        pick -= weight;
    }
    unreachable!("weights cover the range")
}

/// File name of image `index`, in COCO's style.
pub fn key(index: u64) -> String {
    format!("{index:012}.jpg")
}

/// Renders image `index` of the dataset with `seed` as JPEG bytes.
pub fn image(seed: u64, index: u64) -> Vec<u8> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed ^ index.wrapping_mul(0x9E37_79B9_7F4A_7C15));
    let (width, height) = dimensions(&mut rng);
    let base: [f32; 3] = [rng.random_range(20.0..230.0), rng.random_range(20.0..230.0), rng.random_range(20.0..230.0)];
    let slope: [f32; 3] = [rng.random_range(-0.3..0.3), rng.random_range(-0.3..0.3), rng.random_range(-0.3..0.3)];
    let shapes: Vec<(u32, u32, u32, u32, [u8; 3])> = (0..rng.random_range(3..9))
        .map(|_| {
            let (x, y) = (rng.random_range(0..width), rng.random_range(0..height));
            let (w, h) = (rng.random_range(20..width / 2), rng.random_range(20..height / 2));
            (x, y, w, h, [rng.random(), rng.random(), rng.random()])
        })
        .collect();
    let noise: f32 = rng.random_range(26.0..46.0);
    let mut img = RgbImage::new(width, height);
    for (x, y, pixel) in img.enumerate_pixels_mut() {
        let shape = shapes.iter().rev().find(|(sx, sy, w, h, _)| x >= *sx && x < sx + w && y >= *sy && y < sy + h);
        for c in 0..3 {
            let smooth = match shape {
                Some((.., colour)) => f32::from(colour[c]),
                None => base[c] + slope[c] * (x as f32 + y as f32 * 0.5),
            };
            let grain = (rng.random::<f32>() - 0.5) * noise;
            pixel.0[c] = (smooth + grain).clamp(0.0, 255.0) as u8;
        }
    }
    let mut out = Vec::with_capacity((width * height / 2) as usize);
    JpegEncoder::new_with_quality(&mut out, QUALITY)
        .encode(img.as_raw(), width, height, ExtendedColorType::Rgb8)
        .expect("encoding into memory cannot fail");
    out
}

/// Generates images `0..count` with `seed`, calling `write` for each (key and bytes) from up to
/// `threads` threads, and returns the manifest entries sorted by key.
pub fn generate<F>(seed: u64, count: u64, threads: usize, write: F) -> std::io::Result<Vec<Entry>>
where
    F: Fn(&str, &[u8]) -> std::io::Result<()> + Sync,
{
    let threads = threads.clamp(1, 64) as u64;
    let results: Vec<std::io::Result<Vec<Entry>>> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..threads)
            .map(|t| {
                let write = &write;
                scope.spawn(move || {
                    let mut entries = Vec::new();
                    for index in (t..count).step_by(threads as usize) {
                        let data = image(seed, index);
                        let key = key(index);
                        write(&key, &data)?;
                        entries.push(Entry { key, size: data.len() as u64, sha256: sha256_hex(&data) });
                    }
                    Ok(entries)
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().expect("generator thread panicked")).collect()
    });
    let mut entries = Vec::new();
    for r in results {
        entries.extend(r?);
    }
    entries.sort_by(|a, b| a.key.cmp(&b.key));
    Ok(entries)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_same_seed_gives_the_same_bytes_and_another_seed_does_not() {
        assert_eq!(image(7, 3), image(7, 3));
        assert_ne!(image(7, 3), image(8, 3));
        assert_ne!(image(7, 3), image(7, 4));
    }

    #[test]
    fn images_are_decodable_jpegs_of_coco_sizes() {
        let entries = generate(1, 24, 2, |_, _| Ok(())).unwrap();
        assert_eq!(entries.len(), 24);
        let mut sizes: Vec<u64> = entries.iter().map(|e| e.size).collect();
        sizes.sort();
        let median = sizes[sizes.len() / 2];
        // COCO's median JPEG is ~160 KB; a synthetic median within a factor of two keeps transfer
        // times comparable.
        assert!((80_000..=320_000).contains(&median), "median {median} bytes");
        let decoded = image::load_from_memory(&image(1, 0)).unwrap();
        assert_eq!(decoded.width().max(decoded.height()), 640);
    }

    #[test]
    fn the_median_dimensions_are_640_by_480() {
        let mut rng = ChaCha8Rng::seed_from_u64(0);
        let mut areas: Vec<u32> = (0..2001).map(|_| dimensions(&mut rng)).map(|(w, h)| w * h).collect();
        areas.sort();
        assert_eq!(areas[1000], 640 * 480);
    }
}
