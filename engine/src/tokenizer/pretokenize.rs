//! The `tokenizer.ggml.pre` table: which regex split a byte-level BPE vocab expects.
//!
//! The names, the regex lists and the flags are llama.cpp's (`src/llama-vocab.cpp`: the `pre` switch in
//! `llama_vocab::impl::load` and the `llm_tokenizer_bpe` constructor). The regexes are applied in
//! order, each one splitting the pieces the previous one produced, keeping both the matches and the
//! text between them (llama.cpp's `unicode_regex_split`; `tokenizers`' `Split(.., Isolated)`, which
//! `bpe.rs` reproduces with the same engine, `fancy-regex`).
//!
//! Pre-tokenizers that llama.cpp implements with hand-written code rather than a regex (`kimi-k2`,
//! `afmoe`, the zero-width `superbpe` split), and `deepseek-llm` (whose huge literal character class
//! `fancy-regex` rejects), are not supported: an unknown `pre` is an error, never a guess.

use crate::error::{Error, Result};

/// GPT-2's regex, the base of most variants.
const GPT2: &str = r"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)";
/// Llama 3's regex (llama.cpp's case-insensitive rewrite of the contractions).
const LLAMA3: &str = r"(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";
/// Qwen2's: Llama 3's with single digits.
const QWEN2: &str = r"(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";
const TEKKEN: &str = r"[^\r\n\p{L}\p{N}]?((?=[\p{L}])([^a-z]))*((?=[\p{L}])([^A-Z]))+|[^\r\n\p{L}\p{N}]?((?=[\p{L}])([^a-z]))+((?=[\p{L}])([^A-Z]))*|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n/]*|\s*[\r\n]+|\s+(?!\S)|\s+";
const GPT4O: &str = r"[^\r\n\p{L}\p{N}]?((?=[\p{L}])([^a-z]))*((?=[\p{L}])([^A-Z]))+(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])?|[^\r\n\p{L}\p{N}]?((?=[\p{L}])([^a-z]))+((?=[\p{L}])([^A-Z]))*(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])?|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n/]*|\s*[\r\n]+|\s+(?!\S)|\s+";
const SEED_CODER: &str = r"(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1}| ?[^\s\p{L}\p{N}\r\n]+|\s*[\r\n]+|\s+(?!\S)|\s+";
const BAILINGMOE: &str = r"'(?:[sSdDmMtT]|[lL][lL]|[vV][eE]|[rR][eE])|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]|\s+(?!\S)|\s+";
const PORO: &str = r" ?[^(\s|.,!?…。，、।۔،)]+";

/// How a `pre` name tokenizes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PreSpec {
    /// llama.cpp's canonical family name (for messages).
    pub family: &'static str,
    /// Regexes applied in order.
    pub regexes: &'static [&'static str],
    /// A word that is itself in the vocab is emitted whole, without merging (Llama 3, Tekken).
    pub ignore_merges: bool,
    /// llama.cpp's default for `add_bos` when `tokenizer.ggml.add_bos_token` is absent.
    pub add_bos_default: bool,
    /// The family has no BOS token at all (ChatGLM4).
    pub no_bos: bool,
}

const fn spec(family: &'static str, regexes: &'static [&'static str]) -> PreSpec {
    PreSpec {
        family,
        regexes,
        ignore_merges: false,
        add_bos_default: false,
        no_bos: false,
    }
}

/// Every `pre` value accepted, grouped as llama.cpp groups them.
pub const KNOWN_PRE: &[&str] = &[
    "default",
    "llama3",
    "llama-v3",
    "llama-bpe",
    "falcon3",
    "falcon-h1",
    "pixtral",
    "midm-2.0",
    "lfm2",
    "dbrx",
    "smaug-bpe",
    "deepseek-coder",
    "deepseek-v3",
    "hunyuan-dense",
    "falcon",
    "starcoder",
    "refact",
    "command-r",
    "smollm",
    "codeshell",
    "exaone",
    "minerva-7b",
    "gpt-2",
    "phi-2",
    "jina-es",
    "jina-de",
    "gigachat",
    "jina-v1-en",
    "jina-v2-es",
    "jina-v2-de",
    "jina-v2-code",
    "roberta-bpe",
    "a.x-4.0",
    "mellum",
    "exaone4",
    "mpt",
    "olmo",
    "jais",
    "trillion",
    "granite-docling",
    "qwen2",
    "deepseek-r1-qwen",
    "kormo",
    "megrez",
    "stablelm2",
    "hunyuan",
    "poro-chat",
    "bloom",
    "gpt3-finnish",
    "glm4",
    "chatglm-bpe",
    "viking",
    "tekken",
    "chameleon",
    "gpt-4o",
    "llama4",
    "minimax-m2",
    "seed-coder",
    "grok-2",
    "bailingmoe",
    "bailingmoe2",
    "llada-moe",
];

/// The spec for a `tokenizer.ggml.pre` value; `None` (key absent) means `default`, as in llama.cpp.
pub fn pre_spec(pre: Option<&str>) -> Result<PreSpec> {
    let pre = pre.unwrap_or("default");
    Ok(match pre {
        "default" => spec(
            "default",
            &[r"[\p{P}\$\+<=>\^~\|]+", GPT2, r"\p{N}+", r"[0-9][0-9][0-9]"],
        ),
        "llama3" | "llama-v3" | "llama-bpe" | "falcon3" | "falcon-h1" | "pixtral" | "midm-2.0"
        | "lfm2" => PreSpec {
            ignore_merges: true,
            add_bos_default: true,
            ..spec("llama3", &[LLAMA3])
        },
        "dbrx" | "smaug-bpe" => spec("dbrx", &[LLAMA3]),
        "deepseek-coder" => spec(
            "deepseek-coder",
            &[
                r"[\r\n]",
                r"\s?\p{L}+",
                r"\s?\p{P}+",
                r"[一-龥ࠀ-一가-퟿]+",
                r"\p{N}",
            ],
        ),
        "deepseek-v3" | "hunyuan-dense" => spec(
            "deepseek-v3",
            &[
                r"\p{N}{1,3}",
                r"[一-龥぀-ゟ゠-ヿ]+",
                r##"[!"#$%&'()*+,\-./:;<=>?@\[\\\]^_`{|}~][A-Za-z]+|[^\r\n\p{L}\p{P}\p{S}]?[\p{L}\p{M}]+| ?[\p{P}\p{S}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"##,
            ],
        ),
        "falcon" => spec(
            "falcon",
            &[r"[\p{P}\$\+<=>\^~\|`]+", GPT2, r"[0-9][0-9][0-9]"],
        ),
        "starcoder" | "refact" | "command-r" | "smollm" | "codeshell" | "exaone" | "minerva-7b" => {
            spec("starcoder", &[r"\p{N}", GPT2])
        }
        "gpt-2" | "phi-2" | "jina-es" | "jina-de" | "gigachat" | "jina-v1-en" | "jina-v2-es"
        | "jina-v2-de" | "jina-v2-code" | "roberta-bpe" | "a.x-4.0" | "mellum" | "exaone4"
        | "mpt" | "olmo" | "jais" | "trillion" | "granite-docling" => spec("gpt-2", &[GPT2]),
        "qwen2" | "deepseek-r1-qwen" | "kormo" | "megrez" | "stablelm2" | "hunyuan" => {
            spec("qwen2", &[QWEN2])
        }
        "poro-chat" | "bloom" | "gpt3-finnish" => spec("bloom", &[PORO]),
        "glm4" | "chatglm-bpe" => PreSpec {
            no_bos: true,
            ..spec("chatglm4", &[LLAMA3])
        },
        "viking" => spec("viking", &[PORO, r"\p{N}"]),
        "tekken" => PreSpec {
            ignore_merges: true,
            add_bos_default: true,
            ..spec("tekken", &[TEKKEN])
        },
        "chameleon" => PreSpec {
            add_bos_default: true,
            ..spec(
                "chameleon",
                &[
                    r"<sentinel:[0-9]+>",
                    r"(IMGIMG)((A|B|C|D|E|F|G|H|I){1,4})Z",
                    r"([\t\n]|    |  )",
                    r"\p{N}",
                    r"[\p{P}!-/:-@\[-`{-~]",
                    GPT2,
                ],
            )
        },
        "gpt-4o" | "llama4" | "minimax-m2" => spec("gpt-4o", &[GPT4O]),
        "seed-coder" => spec("seed-coder", &[SEED_CODER]),
        "grok-2" => spec("grok-2", &[QWEN2]),
        "bailingmoe" | "bailingmoe2" | "llada-moe" => spec("bailingmoe", &[BAILINGMOE]),
        other => {
            return Err(Error::Tokenizer(format!(
                "unknown pre-tokenizer tokenizer.ggml.pre = '{other}'; known: {}",
                KNOWN_PRE.join(", ")
            )))
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_known_pre_compiles() {
        for pre in KNOWN_PRE {
            let s = pre_spec(Some(pre)).unwrap();
            for re in s.regexes {
                fancy_regex::Regex::new(re)
                    .unwrap_or_else(|e| panic!("pre {pre}: regex {re:?}: {e}"));
            }
        }
    }

    #[test]
    fn unknown_pre_lists_known() {
        let e = pre_spec(Some("nope")).unwrap_err().to_string();
        assert!(
            e.contains("'nope'") && e.contains("smollm") && e.contains("llama-bpe"),
            "{e}"
        );
        assert_eq!(pre_spec(None).unwrap().family, "default");
    }
}
