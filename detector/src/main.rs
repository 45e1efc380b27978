//! `detector detect IMAGE...`: YOLOv8 detections as JSON, one line per image, optionally drawn onto
//! copies of the images.

use std::path::PathBuf;

use anyhow::Context;
use clap::{Parser, Subcommand};
use detector::{Detection, Detector};
use image::RgbImage;

#[derive(Parser)]
#[command(name = "detector", version, about = "YOLOv8 object detection in Burn")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Detects objects in images and prints one JSON line per image.
    Detect {
        /// Weights: the ONNX file `yolo export format=onnx` writes, or safetensors.
        #[arg(long, env = "CLOUDBENCH_WEIGHTS")]
        weights: PathBuf,
        /// JPEG or PNG images.
        #[arg(required = true)]
        images: Vec<PathBuf>,
        /// Device: flex (CPU), or wgpu / lavapipe / cuda when built with those features.
        #[arg(long, default_value = "flex")]
        device: String,
        /// Images per forward pass.
        #[arg(long, default_value_t = 1)]
        batch: usize,
        /// Minimum class score.
        #[arg(long, default_value_t = 0.25)]
        conf: f32,
        /// IoU above which boxes of one class are suppressed.
        #[arg(long, default_value_t = 0.7)]
        iou: f32,
        /// Side of the square network input (a multiple of 32).
        #[arg(long, default_value_t = detector::INPUT_SIZE)]
        imgsz: u32,
        /// Writes a copy of each image with its boxes drawn into this folder.
        #[arg(long)]
        draw: Option<PathBuf>,
    },
    /// Checks the model against ONNX Runtime's reference outputs and measures its speed, on each
    /// device given (the first under test, the last the baseline), writing one JSON of figures.
    Selfcheck {
        /// The fixture folder: yolov8n-random.onnx, fixture.json and the reference outputs.
        #[arg(long)]
        fixtures: PathBuf,
        /// Devices, comma-separated: e.g. wgpu,flex.
        #[arg(long, value_delimiter = ',', default_value = "flex")]
        devices: Vec<String>,
        /// Batch sizes, comma-separated.
        #[arg(long, value_delimiter = ',', default_value = "1,8,32")]
        batches: Vec<usize>,
        /// Timed seconds per device and batch.
        #[arg(long, default_value_t = 10.0)]
        seconds: f64,
        /// Writes the JSON here (and prints it).
        #[arg(long)]
        out: Option<PathBuf>,
    },
}

/// Images up to 100 megapixels are decoded; larger ones are refused before allocating for them.
const MAX_PIXELS: u64 = 100_000_000;

fn main() {
    let cli = Cli::parse();
    if let Err(e) = run(cli) {
        eprintln!("error: {e:#}");
        std::process::exit(1);
    }
}

fn run(cli: Cli) -> anyhow::Result<()> {
    let (weights, images, device, batch, conf, iou, imgsz, draw) = match cli.command {
        Command::Detect { weights, images, device, batch, conf, iou, imgsz, draw } => (weights, images, device, batch, conf, iou, imgsz, draw),
        Command::Selfcheck { fixtures, devices, batches, seconds, out } => return selfcheck(&fixtures, devices, batches, seconds, out),
    };
    anyhow::ensure!(imgsz >= 32 && imgsz % 32 == 0, "--imgsz must be a positive multiple of 32");
    let device = detector::device(&device).map_err(anyhow::Error::msg)?;
    let mut model = Detector::load(&weights, &device)?;
    model.input_size = imgsz;
    model.options.confidence = conf;
    model.options.iou = iou;
    if let Some(dir) = &draw {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    let mut failed = 0;
    for chunk in images.chunks(batch.max(1)) {
        let (mut paths, mut pixels): (Vec<&PathBuf>, Vec<RgbImage>) = (Vec::new(), Vec::new());
        for path in chunk {
            match std::fs::read(path).map_err(|e| e.to_string()).and_then(|b| detector::pre::decode(&b, MAX_PIXELS).map_err(|e| e.to_string())) {
                Ok(image) => {
                    paths.push(path);
                    pixels.push(image);
                }
                Err(e) => {
                    eprintln!("error: {}: {e}", path.display());
                    failed += 1;
                }
            }
        }
        let (found, took) = model.detect(&pixels);
        let per_image_ms = took.as_secs_f64() * 1000.0 / pixels.len().max(1) as f64;
        for ((path, image), result) in paths.into_iter().zip(pixels).zip(found) {
            let detections: Vec<serde_json::Value> = result
                .detections
                .iter()
                .map(|d| {
                    serde_json::json!({
                        "class_id": d.class_id,
                        "class_name": model.class_name(d.class_id),
                        "confidence": d.confidence,
                        "box": [d.x1, d.y1, d.x2, d.y2],
                    })
                })
                .collect();
            println!(
                "{}",
                serde_json::json!({
                    "image": path.display().to_string(),
                    "width": result.width,
                    "height": result.height,
                    "inference_ms": per_image_ms,
                    "detections": detections,
                })
            );
            if let Some(dir) = &draw {
                let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_else(|| "image".into());
                let out = dir.join(name).with_extension("png");
                drawn(image, &result.detections).save(&out).with_context(|| format!("writing {}", out.display()))?;
            }
        }
    }
    anyhow::ensure!(failed == 0, "{failed} of {} images could not be read", images.len());
    Ok(())
}

fn selfcheck(fixtures: &std::path::Path, devices: Vec<String>, batches: Vec<usize>, seconds: f64, out: Option<PathBuf>) -> anyhow::Result<()> {
    anyhow::ensure!(seconds > 0.0 && seconds.is_finite(), "--seconds must be positive, got {seconds}");
    anyhow::ensure!(!batches.is_empty() && !batches.contains(&0), "--batches must be sizes of at least 1");
    let figures = detector::selfcheck::run(fixtures, &detector::selfcheck::Settings { devices, batches, seconds }).map_err(anyhow::Error::msg)?;
    let text = serde_json::to_string_pretty(&figures)?;
    if let Some(out) = out {
        std::fs::write(&out, &text).with_context(|| format!("writing {}", out.display()))?;
    }
    println!("{text}");
    let failed: Vec<&str> = figures["devices"].as_array().into_iter().flatten().filter(|d| d["matches_onnx_runtime"] != true).filter_map(|d| d["device"].as_str()).collect();
    anyhow::ensure!(failed.is_empty(), "no match with ONNX Runtime on {}", failed.join(", "));
    Ok(())
}

/// A copy of `image` with a 2-pixel frame around each detection, coloured by class.
fn drawn(mut image: RgbImage, detections: &[Detection]) -> RgbImage {
    const COLOURS: [[u8; 3]; 6] = [[255, 56, 56], [72, 249, 10], [0, 194, 255], [255, 178, 29], [207, 210, 49], [146, 204, 23]];
    let (w, h) = image.dimensions();
    for d in detections {
        let colour = image::Rgb(COLOURS[d.class_id % COLOURS.len()]);
        let (x1, y1) = ((d.x1.max(0.0) as u32).min(w.saturating_sub(1)), (d.y1.max(0.0) as u32).min(h.saturating_sub(1)));
        let (x2, y2) = ((d.x2 as u32).min(w.saturating_sub(1)), (d.y2 as u32).min(h.saturating_sub(1)));
        for t in 0..2 {
            for x in x1..=x2 {
                for y in [y1.saturating_add(t).min(y2), y2.saturating_sub(t).max(y1)] {
                    image.put_pixel(x, y, colour);
                }
            }
            for y in y1..=y2 {
                for x in [x1.saturating_add(t).min(x2), x2.saturating_sub(t).max(x1)] {
                    image.put_pixel(x, y, colour);
                }
            }
        }
    }
    image
}
