//! `/save FILE`: the conversation as Markdown, one heading per speaker.

use super::app::{Message, Role};
use sparsetop_engine::safe_write::{write_atomic, Busy};
use std::path::{Path, PathBuf};

/// Writes `markdown` to `path` whole or not at all (a temporary file renamed into place), never
/// over one of `inputs` (the model, the profile, a recording being written or replayed) or a
/// special file. Another writer of `path` makes it fail at once rather than freeze the screen.
/// The error is a sentence for the chat.
pub fn save(path: &Path, markdown: &str, inputs: &[PathBuf]) -> Result<(), String> {
    let inputs: Vec<&Path> = inputs.iter().map(|p| p.as_path()).collect();
    write_atomic(path, markdown.as_bytes(), &inputs, Busy::Fail).map_err(|e| match e {
        sparsetop_engine::Error::Invalid(m) => m,
        e => format!("cannot write {}: {e}", path.display()),
    })
}

pub fn to_markdown(model: &str, messages: &[Message]) -> String {
    let mut out = format!("# sparsetop chat\n\nModel: {model}\n");
    for m in messages {
        let (head, body) = match m.role {
            Role::User => ("## You", m.text.clone()),
            Role::Assistant => ("## Model", m.text.clone()),
            Role::Notice => ("", format!("> {}", m.text)),
            Role::Error => ("", format!("> **error:** {}", m.text)),
        };
        out.push('\n');
        if !head.is_empty() {
            out.push_str(head);
            out.push_str("\n\n");
        }
        out.push_str(body.trim_end());
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn save_refuses_an_input_and_a_folder_and_leaves_nothing_behind() {
        let d = std::env::temp_dir().join(format!("sparsetop-transcript-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        let model = d.join("m.gguf");
        std::fs::write(&model, b"GGUF").unwrap();
        let e = save(&model, "# chat", std::slice::from_ref(&model)).unwrap_err();
        assert!(e.contains("is the input"), "{e}");
        assert_eq!(std::fs::read(&model).unwrap(), b"GGUF");
        let e = save(&d, "# chat", &[]).unwrap_err();
        assert!(e.contains("a directory"), "{e}");
        save(&d.join("chat.md"), "# chat", std::slice::from_ref(&model)).unwrap();
        assert_eq!(
            std::fs::read_to_string(d.join("chat.md")).unwrap(),
            "# chat"
        );
        let mut names: Vec<_> = std::fs::read_dir(&d)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        names.sort();
        assert_eq!(names, ["chat.md", "m.gguf"]);
        std::fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn writes_headings_and_notices() {
        let md = to_markdown(
            "m",
            &[
                Message {
                    role: Role::User,
                    text: "hi".into(),
                },
                Message {
                    role: Role::Assistant,
                    text: "hello\n".into(),
                },
                Message {
                    role: Role::Notice,
                    text: "stopped".into(),
                },
            ],
        );
        assert_eq!(
            md,
            "# sparsetop chat\n\nModel: m\n\n## You\n\nhi\n\n## Model\n\nhello\n\n> stopped\n"
        );
    }
}
