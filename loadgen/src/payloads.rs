//! Request bodies made up on the spot: a PNG to shuffle and number files to sum, each with
//! the answer a correct service gives.

use rand::Rng;

/// An RGB PNG of `width`×`height` with a colour gradient, so a shuffled result is visibly
/// different.
pub fn png(width: u32, height: u32) -> Vec<u8> {
    let mut pixels = Vec::with_capacity((width * height * 3) as usize);
    for y in 0..height {
        for x in 0..width {
            pixels.extend([
                (x * 255 / width.max(1)) as u8,
                (y * 255 / height.max(1)) as u8,
                ((x + y) % 256) as u8,
            ]);
        }
    }
    let mut out = Vec::new();
    let mut encoder = png::Encoder::new(&mut out, width, height);
    encoder.set_color(png::ColorType::Rgb);
    encoder.set_depth(png::BitDepth::Eight);
    let mut writer = encoder
        .write_header()
        .expect("writing to a Vec cannot fail");
    writer
        .write_image_data(&pixels)
        .expect("the pixel buffer has the header's size");
    writer.finish().expect("writing to a Vec cannot fail");
    out
}

/// A file for `/sum-evens`: `count` integers of random sign and length, separated by
/// spaces, newlines and commas, and the sum of its even numbers as glassbox prints it.
pub fn numbers(rng: &mut impl Rng, count: usize) -> (String, String) {
    let mut text = String::with_capacity(count * 12);
    let mut sum: i128 = 0;
    for i in 0..count {
        let digits = rng.random_range(1..=18u32);
        let magnitude = rng.random_range(0..10i64.pow(digits));
        let n = if rng.random_bool(0.3) {
            -magnitude
        } else {
            magnitude
        };
        if n % 2 == 0 {
            sum += i128::from(n);
        }
        if i > 0 {
            text.push(match rng.random_range(0..10) {
                0 => ',',
                1..=3 => '\n',
                _ => ' ',
            });
        }
        text.push_str(&n.to_string());
    }
    text.push('\n');
    (text, sum.to_string())
}

#[cfg(test)]
mod tests {
    use rand::SeedableRng;
    use rand::rngs::SmallRng;

    use super::*;

    #[test]
    fn the_png_decodes_to_its_size() {
        let bytes = png(240, 180);
        let decoder = png::Decoder::new(std::io::Cursor::new(bytes));
        let reader = decoder.read_info().unwrap();
        let info = reader.info();
        assert_eq!((info.width, info.height), (240, 180));
    }

    #[test]
    fn the_expected_sum_is_that_of_the_even_numbers() {
        let mut rng = SmallRng::seed_from_u64(7);
        let (text, sum) = numbers(&mut rng, 2000);
        let expected: i128 = text
            .split(|c: char| c.is_ascii_whitespace() || c == ',')
            .filter(|t| !t.is_empty())
            .map(|t| t.parse::<i128>().unwrap())
            .filter(|n| n % 2 == 0)
            .sum();
        assert_eq!(sum, expected.to_string());
        assert_eq!(
            text.split_ascii_whitespace()
                .flat_map(|t| t.split(','))
                .count(),
            2000
        );
    }
}
