//! The endpoint's request parsing and image decoding on arbitrary and damaged input (proptest): a
//! parsed request or a one-line error, never a panic; a damaged JPEG or PNG decodes to an image within
//! the pixel limit or is refused.

use std::io::Cursor;

use base64::Engine;
use invoke::api::{BodyError, parse_body};
use proptest::prelude::*;

fn encoded(format: image::ImageFormat, width: u32, height: u32) -> Vec<u8> {
    let img = image::RgbImage::from_fn(width, height, |x, y| image::Rgb([(x * 7) as u8, (y * 13) as u8, ((x + y) * 3) as u8]));
    let mut out = Cursor::new(Vec::new());
    img.write_to(&mut out, format).unwrap();
    out.into_inner()
}

/// A way to damage an encoded image.
#[derive(Debug, Clone)]
enum Damage {
    Flip { at: usize, mask: u8 },
    Truncate { keep: usize },
    Insert { at: usize, bytes: Vec<u8> },
    Overwrite { at: usize, bytes: Vec<u8> },
}

fn damage() -> impl Strategy<Value = Damage> {
    prop_oneof![
        (any::<usize>(), 1u8..=255).prop_map(|(at, mask)| Damage::Flip { at, mask }),
        any::<usize>().prop_map(|keep| Damage::Truncate { keep }),
        (any::<usize>(), prop::collection::vec(any::<u8>(), 1..16)).prop_map(|(at, bytes)| Damage::Insert { at, bytes }),
        (any::<usize>(), prop::collection::vec(any::<u8>(), 1..8)).prop_map(|(at, bytes)| Damage::Overwrite { at, bytes }),
    ]
}

fn apply(mut data: Vec<u8>, damages: &[Damage]) -> Vec<u8> {
    for d in damages {
        let len = data.len().max(1);
        match d {
            Damage::Flip { at, mask } => {
                if !data.is_empty() {
                    data[at % len] ^= mask;
                }
            }
            Damage::Truncate { keep } => data.truncate(keep % len),
            Damage::Insert { at, bytes } => {
                let at = at % (data.len() + 1);
                data.splice(at..at, bytes.iter().copied());
            }
            Damage::Overwrite { at, bytes } => {
                for (i, b) in bytes.iter().enumerate() {
                    if let Some(slot) = data.get_mut((at % len) + i) {
                        *slot = *b;
                    }
                }
            }
        }
    }
    data
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 400, ..ProptestConfig::default() })]

    #[test]
    fn damaged_images_decode_within_the_limit_or_are_refused(png in any::<bool>(), w in 1u32..48, h in 1u32..48, damages in prop::collection::vec(damage(), 1..4)) {
        let format = if png { image::ImageFormat::Png } else { image::ImageFormat::Jpeg };
        let data = apply(encoded(format, w, h), &damages);
        let limit = 64 * 64;
        match detector::pre::decode(&data, limit) {
            Ok(img) => prop_assert!(u64::from(img.width()) * u64::from(img.height()) <= limit && img.width() > 0),
            Err(e) => prop_assert!(!e.to_string().contains('\n'), "one line: {e}"),
        }
    }

    #[test]
    fn any_body_is_parsed_or_refused(content_type in prop::option::of("[ -~]{0,40}"), body in prop::collection::vec(any::<u8>(), 0..256), max in 0usize..4) {
        match parse_body(content_type.as_deref(), &body, max) {
            Ok(parsed) => prop_assert!(!parsed.images.is_empty() && parsed.images.len() <= max),
            Err(e) => prop_assert!(!e.to_string().contains('\n'), "one line: {e}"),
        }
    }

    #[test]
    fn json_bodies_of_any_shape(images in prop::collection::vec("[A-Za-z0-9+/=:;,._ -]{0,24}", 0..6), single in prop::option::of("[A-Za-z0-9+/=]{0,12}"), conf in prop::option::of(any::<f32>()), extra in any::<bool>()) {
        let mut value = serde_json::json!({ "images": images });
        if let Some(s) = &single {
            value["image"] = serde_json::json!(s);
        }
        if let Some(c) = conf.filter(|c| c.is_finite()) {
            value["conf"] = serde_json::json!(c);
        }
        if extra {
            value["unexpected"] = serde_json::json!(1);
        }
        let body = serde_json::to_vec(&value).unwrap();
        match parse_body(Some("application/json"), &body, 8) {
            Ok(parsed) => {
                prop_assert!(!extra, "unknown fields are refused");
                prop_assert_eq!(parsed.images.len(), images.len() + usize::from(single.is_some()));
            }
            Err(BodyError::Json(_) | BodyError::Empty | BodyError::TooMany { .. }) => {}
            Err(e) => prop_assert!(false, "unexpected error {e}"),
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 400, ..ProptestConfig::default() })]

    #[test]
    fn damaged_multipart_forms_are_parsed_or_refused(files in prop::collection::vec(prop::collection::vec(any::<u8>(), 0..64), 1..4), damages in prop::collection::vec(damage(), 0..3), max in 1usize..4) {
        let boundary = "----cloudbenchBoundary7";
        let mut body = Vec::new();
        for (i, file) in files.iter().enumerate() {
            body.extend_from_slice(format!("--{boundary}\r\nContent-Disposition: form-data; name=\"f{i}\"; filename=\"{i}.jpg\"\r\n\r\n").as_bytes());
            body.extend_from_slice(file);
            body.extend_from_slice(b"\r\n");
        }
        body.extend_from_slice(format!("--{boundary}--\r\n").as_bytes());
        let intact = damages.is_empty();
        let body = apply(body, &damages);
        match parse_body(Some(&format!("multipart/form-data; boundary={boundary}")), &body, max) {
            Ok(parsed) => {
                prop_assert!(!parsed.images.is_empty() && parsed.images.len() <= max);
                if intact && files.len() <= max && !files.iter().all(Vec::is_empty) {
                    prop_assert_eq!(parsed.images, files);
                }
            }
            Err(e) => prop_assert!(!e.to_string().contains('\n'), "one line: {e}"),
        }
    }
}

#[test]
fn a_data_url_and_bare_base64_carry_the_same_image() {
    let png = encoded(image::ImageFormat::Png, 3, 2);
    let b64 = base64::engine::general_purpose::STANDARD.encode(&png);
    let body = serde_json::to_vec(&serde_json::json!({ "images": [format!("data:image/png;base64,{b64}"), b64] })).unwrap();
    let parsed = parse_body(Some("application/json; charset=utf-8"), &body, 4).unwrap();
    assert_eq!(parsed.images, vec![png.clone(), png]);
}
