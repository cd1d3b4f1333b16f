//! Output of a running action: each chunk goes to the coordinator as it
//! comes, and a bounded copy is kept for the result, with a visible marker
//! where it was cut.

use std::sync::Mutex;
use tokio::sync::mpsc;

/// Most bytes of output kept with a result.
pub const LIMIT: usize = 64 * 1024;

pub struct Output {
    live: Option<mpsc::UnboundedSender<String>>,
    kept: Mutex<(String, usize)>,
}

impl Output {
    /// `live` receives every chunk as it is written.
    pub fn new(live: Option<mpsc::UnboundedSender<String>>) -> Self {
        Self { live, kept: Mutex::new((String::new(), 0)) }
    }

    /// A sink that only keeps (for tests).
    pub fn quiet() -> Self {
        Self::new(None)
    }

    pub fn write(&self, chunk: &str) {
        if let Some(tx) = &self.live {
            let _ = tx.send(chunk.to_string());
        }
        let mut kept = self.kept.lock().unwrap_or_else(|e| e.into_inner());
        let room = LIMIT.saturating_sub(kept.0.len());
        if chunk.len() <= room {
            kept.0.push_str(chunk);
        } else {
            let mut cut = room;
            while !chunk.is_char_boundary(cut) {
                cut -= 1;
            }
            kept.0.push_str(&chunk[..cut]);
            kept.1 += chunk.len() - cut;
        }
    }

    pub fn line(&self, line: &str) {
        self.write(&format!("{line}\n"));
    }

    /// What was kept, ending with `[… N bytes of output truncated …]` if cut.
    pub fn text(&self) -> String {
        let kept = self.kept.lock().unwrap_or_else(|e| e.into_inner());
        if kept.1 > 0 {
            format!("{}\n[… {} bytes of output truncated …]\n", kept.0, kept.1)
        } else {
            kept.0.clone()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn output_is_bounded_with_a_marker() {
        let o = Output::quiet();
        o.write(&"x".repeat(LIMIT - 2));
        o.write("abcdef");
        let t = o.text();
        assert!(t.starts_with(&"x".repeat(LIMIT - 2)));
        assert!(t.contains("ab\n[… 4 bytes of output truncated …]"), "{}", &t[t.len() - 60..]);
    }
}
