//! The SpaceTime seed's image task: cut a PNG into 60×60 tiles, shuffle where the tiles go, and
//! leave the edge strips no whole tile covers as they were.
//!
//! Pixels are moved as raw samples in the image's own colour type and bit depth, so the output
//! has the input's size, colour type, palette and colour metadata, and exactly its multiset of
//! pixels. Sub-byte depths (1, 2, 4 bits) are unpacked to a byte per pixel for the move.

use std::io::Cursor;

use png::{Compression, Decoder, Encoder, Limits, Transformations};
use rand::Rng;
use rand::seq::SliceRandom;

/// The side of a tile, in pixels.
pub(crate) const TILE: usize = 60;

/// Why an upload is not a task.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum ImageError {
    /// Not a PNG, or a damaged one (400).
    #[error("not a valid PNG: {0}")]
    Invalid(String),
    /// The header declares more pixels than the limit (413): a decompression bomb or simply
    /// too big to hold in memory.
    #[error("the image is {width}x{height} = {pixels} pixels, over the limit of {limit}")]
    TooManyPixels {
        width: u32,
        height: u32,
        pixels: u64,
        limit: u64,
    },
}

/// What the header says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Header {
    pub width: u32,
    pub height: u32,
}

fn decoder(png: &[u8], max_pixels: u64) -> Decoder<Cursor<&[u8]>> {
    // At most 8 bytes a pixel (RGBA, 16 bits), plus room for the metadata chunks.
    let bytes = usize::try_from(max_pixels.saturating_mul(8)).unwrap_or(usize::MAX);
    let mut decoder = Decoder::new_with_limits(
        Cursor::new(png),
        Limits {
            bytes: bytes.saturating_add(16 << 20),
        },
    );
    decoder.set_transformations(Transformations::IDENTITY);
    decoder
}

/// Reads the header only, so a bad or oversized upload is refused before it is queued.
pub(crate) fn inspect(png: &[u8], max_pixels: u64) -> Result<Header, ImageError> {
    let reader = decoder(png, max_pixels)
        .read_info()
        .map_err(|e| ImageError::Invalid(e.to_string()))?;
    let info = reader.info();
    check_size(info.width, info.height, max_pixels)
}

fn check_size(width: u32, height: u32, limit: u64) -> Result<Header, ImageError> {
    let pixels = u64::from(width) * u64::from(height);
    if pixels > limit {
        return Err(ImageError::TooManyPixels {
            width,
            height,
            pixels,
            limit,
        });
    }
    Ok(Header { width, height })
}

/// The randomized PNG.
pub(crate) fn randomize(
    png: &[u8],
    max_pixels: u64,
    rng: &mut impl Rng,
) -> Result<Vec<u8>, ImageError> {
    let invalid = |e: png::DecodingError| ImageError::Invalid(e.to_string());
    let mut reader = decoder(png, max_pixels).read_info().map_err(invalid)?;
    let (width, height) = (reader.info().width, reader.info().height);
    check_size(width, height, max_pixels)?;
    let size = reader
        .output_buffer_size()
        .ok_or_else(|| ImageError::Invalid("the image is too large to decode".into()))?;
    let mut pixels = vec![0; size];
    let frame = reader.next_frame(&mut pixels).map_err(invalid)?;
    pixels.truncate(frame.buffer_size());
    let info = reader.info();
    let bits = info.bit_depth as usize;
    let samples = info.color_type.samples();
    let (width, height) = (width as usize, height as usize);

    let mut layout = Layout {
        width,
        height,
        stride: frame.line_size,
        pixel_bytes: samples * bits.max(8) / 8,
    };
    let shuffled = if bits >= 8 {
        shuffle_tiles(&pixels, layout, rng)
    } else {
        let unpacked = unpack(&pixels, layout, bits);
        let unpacked_layout = Layout {
            stride: width,
            pixel_bytes: 1,
            ..layout
        };
        let shuffled = shuffle_tiles(&unpacked, unpacked_layout, rng);
        layout.pixel_bytes = 1;
        pack(&shuffled, layout, bits)
    };

    let mut out_info = info.clone();
    out_info.interlaced = false;
    out_info.animation_control = None;
    out_info.frame_control = None;
    let mut out = Vec::with_capacity(png.len() + 1024);
    let encoding = |e: png::EncodingError| ImageError::Invalid(format!("re-encoding: {e}"));
    let mut encoder = Encoder::with_info(&mut out, out_info).map_err(encoding)?;
    encoder.set_compression(Compression::Fast);
    let mut writer = encoder.write_header().map_err(encoding)?;
    writer.write_image_data(&shuffled).map_err(encoding)?;
    writer.finish().map_err(encoding)?;
    Ok(out)
}

/// Rows of pixels in a byte buffer.
#[derive(Debug, Clone, Copy)]
struct Layout {
    width: usize,
    height: usize,
    /// Bytes from one row to the next.
    stride: usize,
    /// Bytes a pixel takes (1 once sub-byte pixels are unpacked).
    pixel_bytes: usize,
}

/// Moves whole tiles to shuffled places; bytes outside the tile grid are copied as they were.
fn shuffle_tiles(pixels: &[u8], layout: Layout, rng: &mut impl Rng) -> Vec<u8> {
    let (across, down) = (layout.width / TILE, layout.height / TILE);
    let mut order: Vec<usize> = (0..across * down).collect();
    order.shuffle(rng);
    let mut out = pixels.to_vec();
    let tile_row_bytes = TILE * layout.pixel_bytes;
    for (to, &from) in order.iter().enumerate() {
        let (to_x, to_y) = (to % across, to / across);
        let (from_x, from_y) = (from % across, from / across);
        for row in 0..TILE {
            let src = (from_y * TILE + row) * layout.stride + from_x * tile_row_bytes;
            let dst = (to_y * TILE + row) * layout.stride + to_x * tile_row_bytes;
            out[dst..dst + tile_row_bytes].copy_from_slice(&pixels[src..src + tile_row_bytes]);
        }
    }
    out
}

/// One byte per pixel from rows of `bits`-bit pixels (1, 2 or 4), most significant first.
fn unpack(pixels: &[u8], layout: Layout, bits: usize) -> Vec<u8> {
    let per_byte = 8 / bits;
    let mask = (1u16 << bits) as u8 - 1;
    let mut out = Vec::with_capacity(layout.width * layout.height);
    for row in pixels.chunks(layout.stride).take(layout.height) {
        for x in 0..layout.width {
            let shift = 8 - bits * (x % per_byte + 1);
            out.push((row[x / per_byte] >> shift) & mask);
        }
    }
    out
}

/// The inverse of [`unpack`], with rows `layout.stride` bytes long.
fn pack(values: &[u8], layout: Layout, bits: usize) -> Vec<u8> {
    let per_byte = 8 / bits;
    let stride = layout.width.div_ceil(per_byte);
    let mut out = vec![0u8; stride * layout.height];
    for (y, row) in values.chunks(layout.width).enumerate() {
        for (x, &value) in row.iter().enumerate() {
            let shift = 8 - bits * (x % per_byte + 1);
            out[y * stride + x / per_byte] |= value << shift;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use png::{BitDepth, ColorType};
    use rand::SeedableRng;
    use rand::rngs::StdRng;

    fn encode(width: u32, height: u32, color: ColorType, depth: BitDepth, data: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        let mut encoder = Encoder::new(&mut out, width, height);
        encoder.set_color(color);
        encoder.set_depth(depth);
        if color == ColorType::Indexed {
            encoder.set_palette(vec![0u8; 3 * 16]);
        }
        encoder
            .write_header()
            .unwrap()
            .write_image_data(data)
            .unwrap();
        out
    }

    fn decode(png: &[u8]) -> (png::OutputInfo, Vec<u8>) {
        let mut reader = decoder(png, u64::MAX / 16).read_info().unwrap();
        let mut buf = vec![0; reader.output_buffer_size().unwrap()];
        let info = reader.next_frame(&mut buf).unwrap();
        (info, buf)
    }

    /// An RGB image whose every pixel is distinct: (x, y, 0) in 16-bit samples, big-endian.
    fn distinct_rgb16(width: usize, height: usize) -> Vec<u8> {
        let mut data = Vec::with_capacity(width * height * 6);
        for y in 0..height {
            for x in 0..width {
                for v in [x as u16, y as u16, 7] {
                    data.extend_from_slice(&v.to_be_bytes());
                }
            }
        }
        data
    }

    #[test]
    fn tiles_move_edges_stay_and_no_pixel_is_lost() {
        let (w, h) = (250, 130); // 4 x 2 whole tiles, 10 and 10 pixels of edge
        let data = distinct_rgb16(w, h);
        let png = encode(w as u32, h as u32, ColorType::Rgb, BitDepth::Sixteen, &data);
        let out = randomize(&png, 1 << 20, &mut StdRng::seed_from_u64(3)).unwrap();
        let (info, pixels) = decode(&out);
        assert_eq!((info.width, info.height), (w as u32, h as u32));
        assert_eq!(
            (info.color_type, info.bit_depth),
            (ColorType::Rgb, BitDepth::Sixteen)
        );
        let px =
            |buf: &[u8], x: usize, y: usize| buf[(y * w + x) * 6..(y * w + x) * 6 + 6].to_vec();
        let mut moved = 0;
        for y in 0..h {
            for x in 0..w {
                if x >= 240 || y >= 120 {
                    assert_eq!(px(&pixels, x, y), px(&data, x, y), "edge ({x},{y})");
                } else if px(&pixels, x, y) != px(&data, x, y) {
                    moved += 1;
                }
            }
        }
        assert!(moved > 0, "eight tiles, seed 3: the order changes");
        let mut before: Vec<_> = data.chunks(6).collect();
        let mut after: Vec<_> = pixels.chunks(6).collect();
        before.sort();
        after.sort();
        assert_eq!(before, after);
        // Each tile arrives whole: its top-left pixel says where it came from.
        for ty in 0..2 {
            for tx in 0..4 {
                let origin = px(&pixels, tx * 60, ty * 60);
                let (ox, oy) = (
                    u16::from_be_bytes([origin[0], origin[1]]) as usize,
                    u16::from_be_bytes([origin[2], origin[3]]) as usize,
                );
                assert!(ox % 60 == 0 && oy % 60 == 0);
                for (dx, dy) in [(59, 0), (0, 59), (59, 59), (17, 42)] {
                    let p = px(&pixels, tx * 60 + dx, ty * 60 + dy);
                    assert_eq!(u16::from_be_bytes([p[0], p[1]]) as usize, ox + dx);
                    assert_eq!(u16::from_be_bytes([p[2], p[3]]) as usize, oy + dy);
                }
            }
        }
    }

    #[test]
    fn a_fixed_seed_gives_the_same_order() {
        let data = distinct_rgb16(180, 180);
        let png = encode(180, 180, ColorType::Rgb, BitDepth::Sixteen, &data);
        let a = randomize(&png, 1 << 20, &mut StdRng::seed_from_u64(9)).unwrap();
        let b = randomize(&png, 1 << 20, &mut StdRng::seed_from_u64(9)).unwrap();
        let c = randomize(&png, 1 << 20, &mut StdRng::seed_from_u64(10)).unwrap();
        assert_eq!(decode(&a).1, decode(&b).1);
        assert_ne!(decode(&a).1, decode(&c).1);
    }

    #[test]
    fn sub_byte_depths_keep_their_colour_type() {
        for (color, depth, bits) in [
            (ColorType::Grayscale, BitDepth::One, 1),
            (ColorType::Grayscale, BitDepth::Two, 2),
            (ColorType::Indexed, BitDepth::Four, 4),
        ] {
            let (w, h) = (125usize, 61usize);
            let stride = (w * bits).div_ceil(8);
            let data: Vec<u8> = (0..stride * h).map(|i| (i * 37 % 251) as u8).collect();
            // Unused low bits of each row's last byte must be zero in a valid image.
            let data = pack(
                &unpack(
                    &data,
                    Layout {
                        width: w,
                        height: h,
                        stride,
                        pixel_bytes: 1,
                    },
                    bits,
                ),
                Layout {
                    width: w,
                    height: h,
                    stride,
                    pixel_bytes: 1,
                },
                bits,
            );
            let png = encode(w as u32, h as u32, color, depth, &data);
            let out = randomize(&png, 1 << 20, &mut StdRng::seed_from_u64(1)).unwrap();
            let (info, pixels) = decode(&out);
            assert_eq!((info.color_type, info.bit_depth), (color, depth));
            let layout = Layout {
                width: w,
                height: h,
                stride,
                pixel_bytes: 1,
            };
            let (mut a, mut b) = (unpack(&data, layout, bits), unpack(&pixels, layout, bits));
            for y in 0..h {
                for x in 120..w {
                    assert_eq!(a[y * w + x], b[y * w + x], "right edge");
                }
            }
            a.sort_unstable();
            b.sort_unstable();
            assert_eq!(a, b);
        }
    }

    #[test]
    fn an_image_smaller_than_a_tile_comes_back_unchanged() {
        let data = distinct_rgb16(59, 200);
        let png = encode(59, 200, ColorType::Rgb, BitDepth::Sixteen, &data);
        let out = randomize(&png, 1 << 20, &mut StdRng::seed_from_u64(1)).unwrap();
        assert_eq!(decode(&out).1[..data.len()], data[..]);
    }

    #[test]
    fn bad_and_oversized_images_are_refused_from_the_header() {
        assert!(matches!(inspect(b"", 100), Err(ImageError::Invalid(_))));
        assert!(matches!(
            inspect(b"GIF89a....", 100),
            Err(ImageError::Invalid(_))
        ));
        let png = encode(
            100,
            100,
            ColorType::Grayscale,
            BitDepth::Eight,
            &[0; 10_000],
        );
        assert_eq!(
            inspect(&png, 10_000),
            Ok(Header {
                width: 100,
                height: 100
            })
        );
        assert_eq!(
            inspect(&png, 9_999),
            Err(ImageError::TooManyPixels {
                width: 100,
                height: 100,
                pixels: 10_000,
                limit: 9_999
            })
        );
        // A truncated file passes the header check and fails at the work, not with a panic.
        let truncated = &png[..png.len() - 20];
        assert!(inspect(truncated, 10_000).is_ok());
        assert!(matches!(
            randomize(truncated, 10_000, &mut StdRng::seed_from_u64(1)),
            Err(ImageError::Invalid(_))
        ));
    }
}
