//! The JSON the server speaks and its clients read: one contract for `/invocations`, `/score` and the
//! web page.
//!
//! Requests carry either one image as the raw body (`image/jpeg`, `image/png`, `application/x-image`)
//! or JSON with base64 images: `{"image": "..."}` or `{"images": ["...", ...]}` (the Azure ML and App
//! Service style). A confidence threshold can come as `?conf=` or a `"conf"` field.

use base64::Engine;
use serde::{Deserialize, Serialize};

/// One detected object, its box in the original image's pixels.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Detection {
    pub class_id: usize,
    pub class_name: String,
    pub confidence: f32,
    /// Left, top, right, bottom.
    #[serde(rename = "box")]
    pub bbox: [f32; 4],
}

/// Detections of one image of a request.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Prediction {
    pub width: u32,
    pub height: u32,
    pub detections: Vec<Detection>,
}

/// Which model answered.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelInfo {
    pub variant: String,
    pub classes: usize,
    pub input_size: u32,
    pub sha256: String,
    pub device: String,
}

/// A successful answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Response {
    /// One entry per image, in request order.
    pub predictions: Vec<Prediction>,
    /// Time in the network for the forward passes that served this request (the longest one when the
    /// images went into several), milliseconds.
    pub inference_ms: f64,
    /// Longest time an image of this request waited in the queue before its forward pass.
    pub queue_ms: f64,
    /// Most images that shared a forward pass with an image of this request.
    pub batch_size: usize,
    pub model: ModelInfo,
}

/// A failed request: one line.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ErrorBody {
    pub error: String,
}

/// The JSON request body.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JsonRequest {
    pub image: Option<String>,
    #[serde(default)]
    pub images: Vec<String>,
    pub conf: Option<f32>,
}

/// A request body the server cannot use, and why.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum BodyError {
    #[error("unsupported content type {0:?}: send image/jpeg, image/png, application/x-image or application/json")]
    ContentType(String),
    #[error("{0}")]
    Json(String),
    #[error("no image in the request")]
    Empty,
    #[error("{given} images in one request; at most {limit}")]
    TooMany { given: usize, limit: usize },
}

/// The images of a request and the threshold it asked for.
#[derive(Debug, Default)]
pub struct Parsed {
    pub images: Vec<Vec<u8>>,
    pub conf: Option<f32>,
}

/// Splits a request body into its images, by content type; refuses more than `max_images`.
pub fn parse_body(content_type: Option<&str>, body: &[u8], max_images: usize) -> Result<Parsed, BodyError> {
    let essence = content_type.unwrap_or("application/octet-stream").split(';').next().unwrap_or("").trim().to_ascii_lowercase();
    let parsed = match essence.as_str() {
        "image/jpeg" | "image/jpg" | "image/png" | "application/x-image" | "application/octet-stream" => {
            Parsed { images: vec![body.to_vec()], conf: None }
        }
        "application/json" => {
            let request: JsonRequest = serde_json::from_slice(body).map_err(|e| BodyError::Json(format!("invalid JSON body: {e}")))?;
            let mut encoded = request.images;
            encoded.extend(request.image);
            let images = encoded
                .iter()
                .enumerate()
                .map(|(i, text)| {
                    base64::engine::general_purpose::STANDARD
                        .decode(strip_data_url(text))
                        .map_err(|e| BodyError::Json(format!("image {i} is not base64: {e}")))
                })
                .collect::<Result<Vec<_>, _>>()?;
            Parsed { images, conf: request.conf }
        }
        other => return Err(BodyError::ContentType(other.to_owned())),
    };
    if parsed.images.is_empty() || parsed.images.iter().all(Vec::is_empty) {
        return Err(BodyError::Empty);
    }
    if parsed.images.len() > max_images {
        return Err(BodyError::TooMany { given: parsed.images.len(), limit: max_images });
    }
    Ok(parsed)
}

/// Accepts `data:image/jpeg;base64,....` as browsers produce it, as well as bare base64.
fn strip_data_url(text: &str) -> &str {
    match text.split_once(";base64,") {
        Some((head, data)) if head.starts_with("data:") => data,
        _ => text,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn raw_and_json_bodies_give_their_images() {
        let raw = parse_body(Some("image/jpeg"), b"\xff\xd8jpeg", 4).unwrap();
        assert_eq!((raw.images, raw.conf), (vec![b"\xff\xd8jpeg".to_vec()], None));
        let b64 = base64::engine::general_purpose::STANDARD.encode(b"png!");
        let body = format!(r#"{{"images": ["{b64}", "data:image/png;base64,{b64}"], "conf": 0.5}}"#);
        let json = parse_body(Some("application/json; charset=utf-8"), body.as_bytes(), 4).unwrap();
        assert_eq!((json.images.len(), json.images[1].as_slice(), json.conf), (2, &b"png!"[..], Some(0.5)));
        let one = parse_body(Some("application/json"), format!(r#"{{"image": "{b64}"}}"#).as_bytes(), 1).unwrap();
        assert_eq!(one.images.len(), 1);
    }

    #[test]
    fn bad_bodies_are_one_line_errors() {
        assert!(matches!(parse_body(Some("text/plain"), b"x", 4), Err(BodyError::ContentType(_))));
        assert_eq!(parse_body(Some("image/png"), b"", 4).unwrap_err(), BodyError::Empty);
        assert_eq!(parse_body(Some("application/json"), b"{}", 4).unwrap_err(), BodyError::Empty);
        let err = parse_body(Some("application/json"), b"{\"image\": 3}", 4).unwrap_err().to_string();
        assert!(err.starts_with("invalid JSON body") && !err.contains('\n'), "{err}");
        assert!(parse_body(Some("application/json"), b"{\"image\": \"!!\"}", 4).unwrap_err().to_string().contains("not base64"));
        let many = format!(r#"{{"images": [{}]}}"#, ["\"AA==\""; 3].join(","));
        assert_eq!(parse_body(Some("application/json"), many.as_bytes(), 2).unwrap_err(), BodyError::TooMany { given: 3, limit: 2 });
    }
}
