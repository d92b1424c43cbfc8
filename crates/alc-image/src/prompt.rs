//! Prompt expansion of `<image>` placeholders, as `Idefics3Processor` does.

use crate::ImageError;

/// The placeholder in user text, and the token repeated `image_seq_len` times per tile.
pub const IMAGE_TOKEN: &str = "<image>";
/// Wraps each tile's tokens.
pub const FAKE_TOKEN: &str = "<fake_token_around_image>";
/// Marks the global view.
pub const GLOBAL_IMG_TOKEN: &str = "<global-img>";

/// The text one image's placeholder becomes. `rows = cols = 0` is the unsplit form.
pub fn image_replacement(rows: u32, cols: u32, image_seq_len: usize) -> String {
    let image_run = IMAGE_TOKEN.repeat(image_seq_len);
    let global = format!("{FAKE_TOKEN}{GLOBAL_IMG_TOKEN}{image_run}{FAKE_TOKEN}");
    if rows == 0 && cols == 0 {
        return global;
    }
    let mut s = String::with_capacity((rows as usize * cols as usize + 1) * (image_run.len() + 40));
    for r in 1..=rows {
        for c in 1..=cols {
            s.push_str(FAKE_TOKEN);
            s.push_str(&format!("<row_{r}_col_{c}>"));
            s.push_str(&image_run);
        }
        s.push('\n');
    }
    s.push('\n');
    s.push_str(&global);
    s
}

/// Replaces the i-th `<image>` of `text` with [`image_replacement`] of `grids[i]`
/// (`(rows, cols)` from [`crate::Preprocessed`]). Errors when the number of
/// placeholders differs from `grids.len()`.
pub fn expand_prompt(
    text: &str,
    grids: &[(u32, u32)],
    image_seq_len: usize,
) -> Result<String, ImageError> {
    let in_text = text.matches(IMAGE_TOKEN).count();
    if in_text != grids.len() {
        return Err(ImageError::PlaceholderCount {
            in_text,
            images: grids.len(),
        });
    }
    let mut out = String::with_capacity(text.len() + grids.len() * 64 * image_seq_len);
    for (i, part) in text.split(IMAGE_TOKEN).enumerate() {
        if i > 0 {
            let (r, c) = grids[i - 1];
            out.push_str(&image_replacement(r, c, image_seq_len));
        }
        out.push_str(part);
    }
    Ok(out)
}
