//! `/save FILE`: the conversation as Markdown, one heading per speaker.

use super::app::{Message, Role};

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
