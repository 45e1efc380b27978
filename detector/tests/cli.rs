//! `detector detect` as a user runs it: JSON per image, batched, boxes drawn, bad images named.

use std::process::Command;

use image::{Rgb, RgbImage};

const WEIGHTS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/fixtures/yolov8n-random.onnx");

fn picture(w: u32, h: u32) -> RgbImage {
    RgbImage::from_fn(w, h, |x, y| Rgb([(x * 7 % 256) as u8, (y * 5 % 256) as u8, ((x + y) % 256) as u8]))
}

#[test]
fn detections_are_json_lines_and_drawn_copies() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = (dir.path().join("a.png"), dir.path().join("b.jpg"));
    picture(200, 150).save(&a).unwrap();
    picture(120, 240).save(&b).unwrap();
    // The random weights score no class above ~0.22, so a tiny threshold yields boxes to check.
    let out = Command::new(env!("CARGO_BIN_EXE_detector"))
        .args(["detect", "--weights", WEIGHTS, "--imgsz", "320", "--batch", "2", "--conf", "0.00012", "--draw"])
        .arg(dir.path().join("drawn"))
        .args([&a, &b])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let lines: Vec<serde_json::Value> = String::from_utf8(out.stdout).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(lines.len(), 2);
    assert_eq!((lines[0]["width"].as_u64(), lines[1]["height"].as_u64()), (Some(200), Some(240)));
    for line in &lines {
        let detections = line["detections"].as_array().unwrap();
        assert!(!detections.is_empty() && detections.len() <= 300, "{line}");
        let (w, h) = (line["width"].as_f64().unwrap(), line["height"].as_f64().unwrap());
        for d in detections {
            let bx: Vec<f64> = d["box"].as_array().unwrap().iter().map(|v| v.as_f64().unwrap()).collect();
            assert!(bx[0] >= 0.0 && bx[1] >= 0.0 && bx[2] <= w && bx[3] <= h && bx[0] <= bx[2] && bx[1] <= bx[3], "{d}");
            assert!(d["confidence"].as_f64().unwrap() >= 0.00012 && d["class_name"].is_string());
        }
    }
    assert!(dir.path().join("drawn/a.png").exists() && dir.path().join("drawn/b.png").exists());
}

#[test]
fn a_corrupt_image_is_named_and_the_others_still_run() {
    let dir = tempfile::tempdir().unwrap();
    let (good, bad) = (dir.path().join("good.png"), dir.path().join("bad.jpg"));
    picture(64, 64).save(&good).unwrap();
    let mut jpeg = Vec::new();
    picture(64, 64).write_to(&mut std::io::Cursor::new(&mut jpeg), image::ImageFormat::Jpeg).unwrap();
    std::fs::write(&bad, &jpeg[..jpeg.len() / 3]).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_detector")).args(["detect", "--weights", WEIGHTS, "--imgsz", "64"]).args([&bad, &good]).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert!(stderr.contains("bad.jpg") && stderr.contains("corrupt"), "{stderr}");
    assert_eq!(String::from_utf8(out.stdout).unwrap().lines().count(), 1, "the good image is still detected");

    let out = Command::new(env!("CARGO_BIN_EXE_detector")).args(["detect", "--weights"]).arg(&good).arg(&good).output().unwrap();
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr.starts_with("error: weights") && stderr.trim().lines().count() == 1, "{stderr}");
}
