//! Progress output of a debug sync: plain lines, or on a terminal one status
//! line rewritten in place, so a sync with hundreds of checkpoints stays readable.

use std::{
    fmt,
    io::{self, IsTerminal as _, Write},
};

/// Where progress goes. Write errors are ignored: progress is a courtesy and
/// must never fail a sync.
pub struct Console {
    out: Box<dyn Write + Send>,
    tty: bool,
    /// A rewritten status line is on screen without its newline.
    status_open: bool,
}

impl fmt::Debug for Console {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Console")
            .field("tty", &self.tty)
            .finish_non_exhaustive()
    }
}

impl Console {
    /// Standard error; a status line when it is a terminal.
    pub fn stderr() -> Self {
        let tty = io::stderr().is_terminal();
        Self::new(Box::new(io::stderr()), tty)
    }

    /// Discards everything (tests).
    pub fn silent() -> Self {
        Self::new(Box::new(io::sink()), false)
    }

    /// Any writer; `tty` selects the rewritten status line.
    pub fn new(out: Box<dyn Write + Send>, tty: bool) -> Self {
        Self {
            out,
            tty,
            status_open: false,
        }
    }

    /// One permanent line.
    pub(crate) fn line(&mut self, text: &str) {
        self.close_status();
        let _ = writeln!(self.out, "{text}");
        let _ = self.out.flush();
    }

    /// A progress update: rewrites the status line on a terminal; a plain
    /// line (`plain`) otherwise.
    pub(crate) fn status(&mut self, status: &str, plain: &str) {
        if self.tty {
            // Return to column 0 and clear the line, then draw the new status.
            let _ = write!(self.out, "\r\x1b[2K{status}");
            let _ = self.out.flush();
            self.status_open = true;
        } else {
            self.line(plain);
        }
    }

    /// Ends the status line, keeping its last state on screen.
    pub(crate) fn close_status(&mut self) {
        if self.status_open {
            let _ = writeln!(self.out);
            let _ = self.out.flush();
            self.status_open = false;
        }
    }
}
