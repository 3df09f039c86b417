//! nginx's configuration syntax, read as nginx reads it: the one tokenizer of the crate. The
//! include and the upstream file ([`crate::nginx`]), `nginx -T`'s dump
//! ([`crate::operator::nginx_conf`]) and `validate`'s look at the statements all read through
//! it.
//!
//! The rules: `#` starts a comment to the end of the line where no word is being read (inside a
//! word it is part of it: `a#b`); `"…"` and `'…'` quote, with `\"`, `\'` and `\\` escaped
//! (any other backslash is kept), and a quote inside a word is part of it; a closed quote goes
//! on as the same word until a space or `;`, `{`, `}`; `${name}` inside a word keeps its braces;
//! `;` ends a statement, `{` opens a block and `}` closes it, each also ending the word before
//! it. Every token carries the line it starts on.

/// One token of nginx's syntax.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Token {
    /// A word, its quotes removed.
    Word(String),
    /// `;`
    End,
    /// `{`
    Open,
    /// `}`
    Close,
}

/// A token and the line (from 1) where it starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lexed {
    pub token: Token,
    pub line: usize,
}

/// The tokens of `text` and, when a quote is not closed, that error (its word, up to the end of
/// the text, is the last token).
pub fn tokens(text: &str) -> (Vec<Lexed>, Option<String>) {
    let mut out = vec![];
    let mut word = String::new();
    // A word is being read (it may be empty: `""`), and the line it started on.
    let mut in_word = false;
    let mut word_line = 0usize;
    // Inside `${name}` in a word: braces belong to the word.
    let mut var_brace = false;
    let mut line = 1usize;
    let mut chars = text.chars();
    let end_word = |out: &mut Vec<Lexed>, word: &mut String, in_word: &mut bool, at: usize| {
        if *in_word {
            out.push(Lexed {
                token: Token::Word(std::mem::take(word)),
                line: at,
            });
            *in_word = false;
        }
    };
    while let Some(c) = chars.next() {
        if var_brace {
            word.push(c);
            if c == '\n' {
                line += 1;
            }
            if c == '}' {
                var_brace = false;
            }
            continue;
        }
        match c {
            '#' if word.is_empty() => {
                for n in chars.by_ref() {
                    if n == '\n' {
                        line += 1;
                        break;
                    }
                }
            }
            '"' | '\'' if !in_word => {
                in_word = true;
                word_line = line;
                loop {
                    match chars.next() {
                        None => {
                            end_word(&mut out, &mut word, &mut in_word, word_line);
                            return (out, Some("unterminated quote".into()));
                        }
                        Some('\\') => match chars.next() {
                            Some(n) if n == c || n == '\\' => word.push(n),
                            Some(n) => {
                                if n == '\n' {
                                    line += 1;
                                }
                                word.push('\\');
                                word.push(n);
                            }
                            None => {
                                word.push('\\');
                                end_word(&mut out, &mut word, &mut in_word, word_line);
                                return (out, Some("unterminated quote".into()));
                            }
                        },
                        Some(n) if n == c => break,
                        Some(n) => {
                            if n == '\n' {
                                line += 1;
                            }
                            word.push(n);
                        }
                    }
                }
            }
            '{' if in_word && word.ends_with('$') => {
                word.push(c);
                var_brace = true;
            }
            ';' | '{' | '}' => {
                end_word(&mut out, &mut word, &mut in_word, word_line);
                out.push(Lexed {
                    token: match c {
                        ';' => Token::End,
                        '{' => Token::Open,
                        _ => Token::Close,
                    },
                    line,
                });
            }
            c if c.is_whitespace() => {
                end_word(&mut out, &mut word, &mut in_word, word_line);
                if c == '\n' {
                    line += 1;
                }
            }
            c => {
                if !in_word {
                    in_word = true;
                    word_line = line;
                }
                word.push(c);
            }
        }
    }
    end_word(&mut out, &mut word, &mut in_word, word_line);
    (out, None)
}

/// nginx's statements in `text`, checked as nginx checks them: each ended by `;`; `{` and `}`
/// end a statement too and are returned as one-word statements. An unclosed quote, a `;`
/// without words, or words left at the end are errors.
pub fn statements(text: &str) -> Result<Vec<Vec<String>>, String> {
    let (tokens, error) = tokens(text);
    let mut out = vec![];
    let mut words: Vec<String> = vec![];
    for t in tokens {
        match t.token {
            Token::Word(w) => words.push(w),
            Token::End if words.is_empty() => return Err("unexpected \";\"".into()),
            Token::End => out.push(std::mem::take(&mut words)),
            Token::Open | Token::Close => {
                if !words.is_empty() {
                    out.push(std::mem::take(&mut words));
                }
                out.push(vec![if t.token == Token::Open { "{" } else { "}" }.into()]);
            }
        }
    }
    if let Some(e) = error {
        return Err(e);
    }
    if !words.is_empty() {
        return Err("unexpected end of file, expecting \";\"".into());
    }
    Ok(out)
}

/// The words of each statement and block head in `text`, split at `;`, `{` and `}` (what is
/// left unfinished is kept, nothing is an error): for a look at what a file says.
pub fn words(text: &str) -> Vec<Vec<String>> {
    let mut out = vec![];
    let mut words = vec![];
    for t in tokens(text).0 {
        match t.token {
            Token::Word(w) => words.push(w),
            _ if words.is_empty() => {}
            _ => out.push(std::mem::take(&mut words)),
        }
    }
    if !words.is_empty() {
        out.push(words);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kinds(text: &str) -> Vec<(String, usize)> {
        tokens(text)
            .0
            .into_iter()
            .map(|t| {
                let s = match t.token {
                    Token::Word(w) => format!("w:{w}"),
                    Token::End => ";".into(),
                    Token::Open => "{".into(),
                    Token::Close => "}".into(),
                };
                (s, t.line)
            })
            .collect()
    }

    #[test]
    fn comments_end_at_the_line_and_only_outside_a_word() {
        let t = kinds("a b#c; # x { ;\n#y\nd;");
        let want = [("w:a", 1), ("w:b#c", 1), (";", 1), ("w:d", 3), (";", 3)];
        assert_eq!(t, want.map(|(s, l)| (s.to_string(), l)).to_vec(), "{t:?}");
    }

    #[test]
    fn quotes_escapes_and_lines() {
        let t = kinds("x \"q ; {\" 'r' \"a\\\"b\\\\c\\n\";\n\"two\nlines\" y;");
        let words: Vec<&str> = t.iter().map(|(s, _)| s.as_str()).collect();
        assert_eq!(
            words,
            [
                "w:x",
                "w:q ; {",
                "w:r",
                "w:a\"b\\c\\n",
                ";",
                "w:two\nlines",
                "w:y",
                ";"
            ]
        );
        // A word starts where its quote is; the one after a two-line quote on the next line.
        assert_eq!(t[5].1, 2);
        assert_eq!(t[6].1, 3);
        // A quote inside a word is part of it; a closed quote goes on as the same word.
        assert_eq!(kinds("a\"b c;")[0].0, "w:a\"b");
        assert_eq!(kinds("\"a\"b c;")[0].0, "w:ab");
        assert_eq!(kinds("\"\";")[0].0, "w:");
        // `#` right after a quote that left the word empty is a comment, after text it is not.
        assert_eq!(kinds("\"\"#c\n;").len(), 2);
        assert_eq!(kinds("\"a\"#c;")[0].0, "w:a#c");
        let (t, e) = tokens("set $x \"http://x:1;");
        assert_eq!(e.as_deref(), Some("unterminated quote"));
        assert_eq!(t.last().unwrap().token, Token::Word("http://x:1;".into()));
    }

    #[test]
    fn braces_of_a_variable_stay_in_the_word() {
        let t = kinds("b {\n  c ${x}y http://${u}/;\n}\n");
        let words: Vec<&str> = t.iter().map(|(s, _)| s.as_str()).collect();
        assert_eq!(
            words,
            ["w:b", "{", "w:c", "w:${x}y", "w:http://${u}/", ";", "}"]
        );
        assert_eq!((t[1].1, t[2].1, t[6].1), (1, 2, 3));
        // `}` ends a word; `{` after anything but `$` does too.
        assert_eq!(words_of("a} b{c"), [["a"], ["b"], ["c"]]);
    }

    fn words_of(text: &str) -> Vec<Vec<String>> {
        words(text)
    }

    #[test]
    fn statements_are_checked_and_words_are_not() {
        assert_eq!(
            statements("a 1; b { c; }").unwrap(),
            [vec!["a", "1"], vec!["b"], vec!["{"], vec!["c"], vec!["}"]]
        );
        assert_eq!(statements(";").unwrap_err(), "unexpected \";\"");
        assert_eq!(statements("a; b 'c").unwrap_err(), "unterminated quote");
        assert_eq!(
            statements("a; b").unwrap_err(),
            "unexpected end of file, expecting \";\""
        );
        // A `;` too many is the first error, before a quote left open later.
        assert_eq!(statements("; 'c").unwrap_err(), "unexpected \";\"");
        assert_eq!(
            words("upstream u {\n server h:1 down; # x; y\n}\n;; z"),
            [
                vec!["upstream", "u"],
                vec!["server", "h:1", "down"],
                vec!["z"]
            ]
        );
    }
}
